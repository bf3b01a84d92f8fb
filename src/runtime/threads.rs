//! The GEMM's worker pool: a few threads, started once, that help the calling thread run the
//! chunks of one job (`Pool::run`).
//!
//! - Size: [`count`] — `MATMUL_NUM_THREADS` (what `netc bench --threads` and bench/run.py set),
//!   else the available parallelism (which follows `taskset`) capped at the physical cores.
//!   The pool has `count() - 1` workers; the caller is the remaining thread.
//! - Scheduling: a job is `chunks` calls `f(0) .. f(chunks - 1)`. The caller publishes it and
//!   claims chunks itself like any worker, so a worker that wakes late (or whose core another
//!   process holds) finds the chunks taken and costs nothing; the caller then waits only for
//!   chunks already started.
//! - Idle workers spin for [`SPIN`] after their last chunk (the next GEMM of a train step is
//!   usually that close), then park; the caller unparks only parked workers.
//!   [`Pool::run_awake`] leaves parked workers asleep and [`Pool::wake`] wakes them without
//!   work, so that a caller with a small job need not wait for a wake-up (tens of µs on a
//!   virtual machine) but still has the workers ready for the next one.
//! - Concurrent callers: one job at a time per pool. A caller that finds the pool busy runs
//!   all of its chunks alone on its own thread.
//!
//! The job (`&dyn Fn(usize)`) lives on the caller's stack. A worker reads it only after a
//! successful claim of one of its chunks, and the caller returns only after every claimed
//! chunk is done, so a worker never sees a job that has gone.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How long an idle worker spins, waiting for the next job, before it parks. (200 µs, 1 ms
/// and 3 ms gave the same W2, W3 and W7 step times within the noise of a shared 2-core VM.)
pub const SPIN: Duration = Duration::from_micros(200);

/// Most threads a pool takes (a bound on a mistyped MATMUL_NUM_THREADS).
pub const MAX_THREADS: usize = 64;

/// Threads the GEMM uses, read once: `MATMUL_NUM_THREADS` if set (clamped to
/// 1..=[`MAX_THREADS`]; unparsable means 1, as `matrixmultiply` read it), else the available
/// parallelism capped at the physical cores.
pub fn count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| match std::env::var("MATMUL_NUM_THREADS") {
        Ok(s) if !s.trim().is_empty() => match s.trim().parse::<usize>() {
            Ok(t) => t.clamp(1, MAX_THREADS),
            Err(_) => {
                eprintln!("netc: cannot parse MATMUL_NUM_THREADS={s:?}; using 1 GEMM thread");
                1
            }
        },
        _ => default_count(),
    })
}

/// Available parallelism (CPU affinity included) capped at the physical cores.
fn default_count() -> usize {
    let available = thread::available_parallelism().map_or(1, |n| n.get());
    available.min(physical_cores().unwrap_or(available)).clamp(1, MAX_THREADS)
}

/// Distinct (package, core) pairs among the online CPUs, from Linux's sysfs; `None` elsewhere.
fn physical_cores() -> Option<usize> {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    let mut cores = std::collections::BTreeSet::new();
    for range in online.trim().split(',') {
        let (lo, hi) = match range.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
            None => {
                let c = range.parse::<usize>().ok()?;
                (c, c)
            }
        };
        for cpu in lo..=hi {
            let topo = format!("/sys/devices/system/cpu/cpu{cpu}/topology");
            let read = |f: &str| std::fs::read_to_string(format!("{topo}/{f}")).ok().map(|s| s.trim().to_string());
            cores.insert((read("physical_package_id")?, read("core_id")?));
        }
    }
    (!cores.is_empty()).then_some(cores.len())
}

/// A set of worker threads that help their callers run jobs; see the module documentation.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<Worker>,
}

struct Worker {
    thread: Thread,
    /// Set by the worker just before it parks; cleared by whoever wakes it.
    sleeping: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// The job in flight, shared by the caller and the workers.
struct Shared {
    /// Taken by the caller that owns the job slot.
    busy: AtomicBool,
    /// Chunks of the current job: next unclaimed in the high 32 bits, count in the low 32.
    /// Claims are compare-exchanges on the whole word; a job is published by storing it.
    claim: AtomicU64,
    /// Chunks of the current job finished (by anyone).
    done: AtomicUsize,
    /// A chunk panicked on a worker.
    panicked: AtomicBool,
    shutdown: AtomicBool,
    /// The current job. Written only by the caller that holds `busy`, before it publishes
    /// `claim`; read only by a thread that has claimed one of its chunks.
    job: UnsafeCell<Option<&'static (dyn Fn(usize) + Sync)>>,
}

// SAFETY: `job` is accessed under the protocol described on the field (publication through
// `claim` with release/acquire, reuse only after `done` has counted every claimed chunk).
unsafe impl Sync for Shared {}

impl Shared {
    /// Claim an unclaimed chunk of the current job.
    fn claim_one(&self) -> Option<usize> {
        let mut word = self.claim.load(Acquire);
        loop {
            let (next, chunks) = (word >> 32, word & 0xffff_ffff);
            if next >= chunks {
                return None;
            }
            match self.claim.compare_exchange_weak(word, word + (1 << 32), AcqRel, Acquire) {
                Ok(_) => return Some(next as usize),
                Err(w) => word = w,
            }
        }
    }

    fn has_work(&self) -> bool {
        let word = self.claim.load(SeqCst);
        (word >> 32) < (word & 0xffff_ffff)
    }

    /// Claim and run chunks of the current job until none is left. The caller (`caller`)
    /// gets the first panic's payload back; a worker records it in `panicked`.
    fn work(&self, caller: bool) -> Option<Box<dyn std::any::Any + Send>> {
        let mut panic = None;
        while let Some(i) = self.claim_one() {
            // SAFETY: a chunk is claimed, so the job is published and stays alive until `done`
            // counts this chunk.
            let job = unsafe { (*self.job.get()).expect("published job") };
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| job(i))) {
                if caller {
                    panic.get_or_insert(p);
                } else {
                    // Before `done` counts the chunk, so that the caller sees it.
                    self.panicked.store(true, Relaxed);
                }
            }
            self.done.fetch_add(1, Release);
        }
        panic
    }
}

impl Pool {
    /// A pool for `threads` threads in all: the caller and `threads - 1` workers, started now
    /// (fewer if the system refuses to start more).
    pub fn new(threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            busy: AtomicBool::new(false),
            claim: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            job: UnsafeCell::new(None),
        });
        // A worker that cannot be started leaves a smaller pool (the caller runs what is left).
        let workers = (1..threads.clamp(1, MAX_THREADS))
            .map_while(|i| {
                let sleeping = Arc::new(AtomicBool::new(false));
                let (s, z) = (shared.clone(), sleeping.clone());
                let handle =
                    thread::Builder::new().name(format!("netc-gemm-{i}")).spawn(move || worker_loop(&s, &z)).ok()?;
                Some(Worker { thread: handle.thread().clone(), sleeping, handle: Some(handle) })
            })
            .collect();
        Pool { shared, workers }
    }

    /// The process's pool, of [`count`] threads, started at the first call.
    pub fn global() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| Pool::new(count()))
    }

    /// Threads in the pool, the caller included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Workers not parked (spinning for work, or working).
    pub fn awake(&self) -> usize {
        self.workers.iter().filter(|w| !w.sleeping.load(Relaxed)).count()
    }

    /// Wake the parked workers without giving them work: they spin for [`SPIN`], ready for
    /// the next job.
    pub fn wake(&self) {
        for w in &self.workers {
            if w.sleeping.swap(false, SeqCst) {
                w.thread.unpark();
            }
        }
    }

    /// Run `f(0)`, ..., `f(chunks - 1)`, each once, on this thread and the pool's workers, and
    /// return when all are done. If another caller is using the pool, runs them all here.
    /// A panic in a chunk is re-raised here once every chunk has finished.
    pub fn run(&self, chunks: usize, f: &(dyn Fn(usize) + Sync)) {
        self.run_waking(chunks, true, f)
    }

    /// [`Pool::run`] with the workers that are awake: parked workers are left asleep (a
    /// wake-up costs tens of µs on a virtual machine, more than a small job gains).
    pub fn run_awake(&self, chunks: usize, f: &(dyn Fn(usize) + Sync)) {
        self.run_waking(chunks, false, f)
    }

    fn run_waking(&self, chunks: usize, wake: bool, f: &(dyn Fn(usize) + Sync)) {
        let sh = &*self.shared;
        if chunks <= 1 || self.workers.is_empty() || sh.busy.compare_exchange(false, true, Acquire, Relaxed).is_err() {
            (0..chunks).for_each(f);
            return;
        }
        let chunks = chunks.min(u32::MAX as usize);
        // SAFETY: we hold `busy` and no chunk of an earlier job is claimable or running (its
        // caller waited for all of them), so nobody reads `job`. The lifetime is erased: every
        // use of it ends before this function returns (see `Shared::work`).
        unsafe {
            *sh.job.get() = Some(std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(f));
        }
        sh.done.store(0, Relaxed);
        sh.claim.store(chunks as u64, SeqCst);
        if wake {
            for w in self.workers.iter().take(chunks - 1) {
                // Pairs with the worker's store of `sleeping` and its load of `claim` (both
                // SeqCst): either it sees the job, or we see it asleep and wake it.
                if w.sleeping.swap(false, SeqCst) {
                    w.thread.unpark();
                }
            }
        }
        let panic = sh.work(true);
        let mut spins = 0u32;
        while sh.done.load(Acquire) < chunks {
            spins = spins.saturating_add(1);
            if spins < 1 << 14 {
                std::hint::spin_loop();
            } else {
                thread::yield_now();
            }
        }
        // SAFETY: as above; clear the now dangling reference.
        unsafe { *sh.job.get() = None };
        let worker_panicked = sh.panicked.swap(false, Relaxed);
        sh.busy.store(false, Release);
        if let Some(p) = panic {
            resume_unwind(p);
        }
        if worker_panicked {
            panic!("a chunk panicked on a GEMM worker thread");
        }
    }
}

fn worker_loop(sh: &Shared, sleeping: &AtomicBool) {
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        while !sh.has_work() {
            if sh.shutdown.load(Relaxed) {
                return;
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) && start.elapsed() >= SPIN {
                // Park until a caller publishes a job, wakes us (`Pool::wake`: `sleeping`
                // cleared) or shuts the pool down; other returns from `park` are spurious.
                sleeping.store(true, SeqCst);
                while !sh.has_work() && !sh.shutdown.load(SeqCst) && sleeping.load(SeqCst) {
                    thread::park();
                }
                sleeping.store(false, Relaxed);
                break;
            }
        }
        sh.work(false);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, SeqCst);
        for w in &mut self.workers {
            w.thread.unpark();
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
    }
}
