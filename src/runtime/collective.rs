//! Communication between the processes of a data-parallel run: the `Collective` trait that
//! training calls (sum a buffer across ranks, gather, broadcast, abort), `Local` for one
//! process, and `Launch`, what the environment says about an MPI launcher. The MPI
//! implementation is `runtime::mpi` (cargo feature `mpi`); nothing here needs an MPI library.
//!
//! Every sum is reduced in an order fixed by the ranks alone (never by message timing), so
//! two runs on the same number of ranks give the same bits.

use std::cell::Cell;

use crate::diag::{Diagnostic, Span};

/// The processes of one run and the operations training needs between them. Every rank must
/// make the same calls in the same order with buffers of the same lengths (as MPI's
/// collectives require); a rank that cannot go on calls `abort`, which ends every rank.
pub trait Collective {
    /// This process's rank, 0-based.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Element-wise sum over all ranks, in place; every rank ends with the same bits.
    fn sum_f32(&self, buf: &mut [f32]);
    /// As `sum_f32`, in f64 (evaluation sums).
    fn sum_f64(&self, buf: &mut [f64]);
    /// Every rank's bytes (of any length), in rank order.
    fn all_gather_bytes(&self, mine: &[u8]) -> Vec<Vec<u8>>;
    /// Rank 0's values in `buf` on every rank.
    fn broadcast_f32(&self, buf: &mut [f32]);
    /// Print `rank k: message` on stderr and end every rank of the job with exit code 1. Used
    /// when this rank fails where the others wait for it in a collective.
    fn abort(&self, message: &str) -> !;
    /// Seconds spent in `sum_f32` so far, and bytes summed (for `--stats`).
    fn reduce_stats(&self) -> (f64, u64) {
        (0.0, 0)
    }
}

/// One process: every collective is the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct Local;

impl Collective for Local {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum_f32(&self, _: &mut [f32]) {}
    fn sum_f64(&self, _: &mut [f64]) {}
    fn all_gather_bytes(&self, mine: &[u8]) -> Vec<Vec<u8>> {
        vec![mine.to_vec()]
    }
    fn broadcast_f32(&self, _: &mut [f32]) {}
    fn abort(&self, message: &str) -> ! {
        eprintln!("rank 0: {message}");
        std::process::exit(1)
    }
}

/// Go on only if every rank can: `r` is this rank's outcome of a stage that may fail on some
/// ranks only (reading its data, compiling). Every rank gets the same answer: `Ok` when all
/// succeeded, else one diagnostic — a failure the ranks share as it is, failures of some ranks
/// as `rank k: …` (the first failing rank's, with the others' messages as notes).
pub fn agree<T>(group: &dyn Collective, r: Result<T, Diagnostic>) -> Result<T, Diagnostic> {
    let mine = match &r {
        Ok(_) => vec![],
        Err(d) => encode(d),
    };
    let all = group.all_gather_bytes(&mine);
    let failed: Vec<(usize, Diagnostic)> =
        all.iter().enumerate().filter(|(_, b)| !b.is_empty()).map(|(k, b)| (k, decode(b))).collect();
    let Some((first, d)) = failed.first().cloned() else { return r };
    if failed.len() == all.len() && failed.iter().all(|(_, e)| *e == d) {
        return Err(d);
    }
    let mut out = Diagnostic { message: format!("rank {first}: {}", d.message), ..d };
    for (k, e) in &failed[1..] {
        out.notes.push(format!("rank {k}: error[{}]: {}", e.code, e.message));
    }
    let ok = all.len() - failed.len();
    out.notes.push(format!("{} of {} ranks failed; {ok} were ready", failed.len(), all.len()));
    Err(out)
}

/// Rank 0's `value` on every rank.
pub fn broadcast_u64(group: &dyn Collective, value: u64) -> u64 {
    let all = group.all_gather_bytes(&value.to_le_bytes());
    u64::from_le_bytes(all[0][..8].try_into().unwrap_or_default())
}

/// A diagnostic unless every rank has the same `value` (a fingerprint of `what`), naming the
/// ranks that differ from rank 0.
pub fn same_everywhere(group: &dyn Collective, what: &str, value: u64) -> Result<(), Diagnostic> {
    let all = group.all_gather_bytes(&value.to_le_bytes());
    let differ: Vec<String> =
        all.iter().enumerate().filter(|(_, v)| **v != all[0]).map(|(k, _)| k.to_string()).collect();
    if differ.is_empty() {
        return Ok(());
    }
    let ranks = if differ.len() == 1 { "rank {} differs" } else { "ranks {} differ" }.replace("{}", &differ.join(", "));
    Err(Diagnostic::new("E-distributed", format!("{ranks} from rank 0 in {what}"))
        .note("every rank must run the same netc on the same file, flags and data"))
}

/// A diagnostic as bytes for `agree` (JSON: code, message, labels, notes, help).
pub fn encode(d: &Diagnostic) -> Vec<u8> {
    let labels: Vec<_> = d.labels.iter().map(|(s, t)| serde_json::json!([s.start, s.end, t])).collect();
    serde_json::json!({ "code": d.code, "message": d.message, "labels": labels, "notes": d.notes, "help": d.help })
        .to_string()
        .into_bytes()
}

/// The diagnostic `encode` wrote.
pub fn decode(bytes: &[u8]) -> Diagnostic {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let code = text(&v["code"]);
    // Codes are a small fixed set of literals; keep this one alive as the type requires.
    let code: &'static str = Box::leak(code.into_boxed_str());
    let mut d = Diagnostic::new(code, text(&v["message"]));
    for l in v["labels"].as_array().into_iter().flatten() {
        let at = |i: usize| l[i].as_u64().unwrap_or(0) as usize;
        d.labels.push((Span::new(at(0), at(1)), text(&l[2])));
    }
    d.notes = v["notes"].as_array().into_iter().flatten().map(text).collect();
    d.help = v["help"].as_str().map(str::to_string);
    d
}

/// How `sum_f32` reduces. Every algorithm fixes its order of summation by rank, except
/// `Mpi` (the MPI library's allreduce), which is there to compare speed against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// Ring reduce-scatter then allgather over point-to-point messages: each rank sends and
    /// receives 2(p−1)/p of the buffer. Chunk c is summed as (((g_c + g_c+1) + g_c+2) + …),
    /// ranks taken around the ring from c.
    Ring,
    /// Allgather every rank's buffer, then sum in rank order (g_0 + g_1) + g_2 + …: each rank
    /// receives (p−1) buffers.
    Gather,
    /// `MPI_Allreduce` with `MPI_SUM`; MPI does not promise an order, so runs on more than
    /// two ranks may differ in the last bits.
    Mpi,
}

impl Algorithm {
    /// The algorithm named by `NETC_ALLREDUCE` (ring, gather or mpi; default ring).
    pub fn from_env() -> Result<Algorithm, String> {
        match std::env::var("NETC_ALLREDUCE").as_deref().map(str::trim) {
            Err(_) | Ok("") | Ok("ring") => Ok(Algorithm::Ring),
            Ok("gather") => Ok(Algorithm::Gather),
            Ok("mpi") => Ok(Algorithm::Mpi),
            Ok(other) => Err(format!("NETC_ALLREDUCE={other:?} is not an algorithm: use ring, gather or mpi")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ring => "ring",
            Algorithm::Gather => "gather",
            Algorithm::Mpi => "mpi",
        }
    }
}

/// Time and bytes of the reductions of a run.
#[derive(Debug, Default)]
pub struct ReduceClock {
    seconds: Cell<f64>,
    bytes: Cell<u64>,
}

impl ReduceClock {
    pub fn add(&self, seconds: f64, bytes: usize) {
        self.seconds.set(self.seconds.get() + seconds);
        self.bytes.set(self.bytes.get() + bytes as u64);
    }
    pub fn get(&self) -> (f64, u64) {
        (self.seconds.get(), self.bytes.get())
    }
}

/// The chunk of `len` elements that ring step `c` of `p` owns: [c·len/p, (c+1)·len/p).
pub fn chunk(len: usize, p: usize, c: usize) -> std::ops::Range<usize> {
    c * len / p..(c + 1) * len / p
}

/// One step of the ring: the chunk a rank sends to its right neighbour, and the chunk it
/// receives from its left one.
pub type RingStep = (usize, usize);

/// The ring's reduce-scatter and allgather as the list of (send chunk, receive chunk) of each
/// step, for rank `r` of `p`: in reduce-scatter step k, rank r sends chunk r−k to its right
/// neighbour and adds chunk r−k−1 from its left one; after p−1 steps it holds the whole sum of
/// chunk r+1, which the allgather passes on around the ring.
pub fn ring_schedule(r: usize, p: usize) -> (Vec<RingStep>, Vec<RingStep>) {
    let m = |x: usize| x % p;
    let scatter = (0..p - 1).map(|k| (m(r + p - k), m(r + 2 * p - k - 1))).collect();
    let gather = (0..p - 1).map(|k| (m(r + 1 + p - k), m(r + p - k))).collect();
    (scatter, gather)
}

/// What the environment says about the launcher that started this process: set by Open MPI's
/// `mpirun` (`OMPI_COMM_WORLD_*`), by PMIx launchers (`PMIX_RANK`: Open MPI 4+, Slurm's
/// `srun --mpi=pmix`) and by PMI ones (`PMI_RANK`/`PMI_SIZE`: MPICH's hydra, `srun
/// --mpi=pmi2`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// The variable that gave it away.
    pub variable: &'static str,
    pub rank: Option<usize>,
    pub size: Option<usize>,
}

impl Launch {
    /// The launcher of this process, if an MPI launcher started it.
    pub fn detect() -> Option<Launch> {
        Launch::from_vars(|name| std::env::var(name).ok())
    }

    /// `detect` over any source of variables (for tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<Launch> {
        let num = |name: &str| var(name).and_then(|v| v.trim().parse::<usize>().ok());
        const LAUNCHERS: [(&str, &str); 3] =
            [("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"), ("PMIX_RANK", ""), ("PMI_RANK", "PMI_SIZE")];
        LAUNCHERS.iter().find(|(rank, _)| var(rank).is_some()).map(|&(rank, size)| Launch {
            variable: rank,
            rank: num(rank),
            size: if size.is_empty() { None } else { num(size) },
        })
    }
}

/// A 64-bit fingerprint (FNV-1a over 32-bit words) that is the same on every machine and
/// build: what ranks compare to find out that they run different programs or data.
#[derive(Clone, Copy, Debug)]
pub struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Fingerprint {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }
}

impl Fingerprint {
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub fn word(&mut self, w: u32) -> &mut Fingerprint {
        self.0 = (self.0 ^ w as u64).wrapping_mul(Fingerprint::PRIME);
        self
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Fingerprint {
        self.word(b.len() as u32);
        for c in b.chunks(4) {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            self.word(u32::from_le_bytes(w));
        }
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Fingerprint {
        self.bytes(s.as_bytes())
    }

    pub fn floats(&mut self, v: &[f32]) -> &mut Fingerprint {
        self.word(v.len() as u32);
        for x in v {
            self.word(x.to_bits());
        }
        self
    }

    pub fn value(&self) -> u64 {
        self.0
    }
}
