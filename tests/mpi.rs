//! Data-parallel training under MPI (`cargo test --features mpi --test mpi`; `.ci/run` runs it
//! and installs Open MPI when it is missing). Each test launches `mpirun` on loopback with
//! `--oversubscribe` (more ranks than cores) and `--allow-run-as-root` (CI runs as root), under
//! `timeout`, so a hang fails the test instead of stalling the suite.
//!
//! Weights are compared per tensor as max|a − b| / max|a| (relative to the tensor's scale, so a
//! weight near zero does not blow up the measure).
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{field, temp_dir};
use netc::runtime::weights::{self, Weight};

/// One mpirun at a time: ranks busy-wait in MPI, and the CI machine has two cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// Seconds after which a job counts as hung.
const LIMIT: u64 = 120;

const SPIRAL: &str = "tests/data/mpi/spiral.net";
const REGRESSION: &str = "tests/data/mpi/regression.net";
const BATCHNORM: &str = "tests/data/mpi/batchnorm.net";
const TEXT: &str = "examples/text_classify.net";

struct Job {
    code: i32,
    stdout: String,
    stderr: String,
    seconds: f64,
}

fn netc() -> &'static str {
    env!("CARGO_BIN_EXE_netc")
}

/// `mpirun` with the given application contexts (`np` ranks running `argv` each; several
/// contexts are joined with `:`, MPMD style), with `env` exported to every rank.
fn mpirun(contexts: &[(usize, Vec<String>)], env: &[(&str, &str)]) -> Job {
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=10", &LIMIT.to_string(), "mpirun", "--allow-run-as-root", "--oversubscribe"]);
    for (k, v) in env {
        cmd.arg("-x").arg(format!("{k}={v}"));
    }
    for (i, (np, argv)) in contexts.iter().enumerate() {
        if i > 0 {
            cmd.arg(":");
        }
        cmd.arg("-np").arg(np.to_string()).args(argv);
    }
    run(cmd)
}

fn run(mut cmd: Command) -> Job {
    let started = Instant::now();
    let out = cmd
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cannot start timeout/mpirun (is Open MPI installed?)");
    let job = Job {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        seconds: started.elapsed().as_secs_f64(),
    };
    assert_ne!(job.code, 124, "the job hung (killed after {LIMIT} s)\nstderr: {}", job.stderr);
    job
}

/// `netc ARGS` as an argv.
fn argv(args: &[&str]) -> Vec<String> {
    std::iter::once(netc()).chain(args.iter().copied()).map(str::to_string).collect()
}

/// `np` ranks of `netc ARGS`; the job must succeed.
fn ranks(np: usize, args: &[&str]) -> Job {
    ranks_with(np, args, &[])
}

fn ranks_with(np: usize, args: &[&str], env: &[(&str, &str)]) -> Job {
    let job = mpirun(&[(np, argv(args))], env);
    assert_eq!(job.code, 0, "mpirun -np {np} netc {}\nstderr: {}", args.join(" "), job.stderr);
    job
}

/// One process, without MPI.
fn single(args: &[&str]) -> Job {
    let mut cmd = Command::new(netc());
    cmd.args(args);
    let job = run(cmd);
    assert_eq!(job.code, 0, "netc {}\nstderr: {}", args.join(" "), job.stderr);
    job
}

fn load(path: &Path) -> Vec<Weight> {
    weights::load(path).unwrap_or_else(|d| panic!("{}: {d}", path.display()))
}

/// max|a − b| / max|a| over the tensor.
fn relative(a: &Weight, b: &Weight) -> f64 {
    assert_eq!((&a.name, &a.shape), (&b.name, &b.shape));
    let scale = a.data.iter().fold(0f64, |m, &x| m.max((x as f64).abs())).max(1e-30);
    let diff = a.data.iter().zip(&b.data).fold(0f64, |m, (&x, &y)| m.max((x as f64 - y as f64).abs()));
    diff / scale
}

/// Every tensor of `b` within `model` (model parameters: the first `n_model`) or `state`
/// (optimizer state) of `a`.
fn assert_close(a: &Path, b: &Path, n_model: usize, model: f64, state: f64) {
    let (a, b) = (load(a), load(b));
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let tol = if i < n_model { model } else { state };
        let r = relative(x, y);
        assert!(r <= tol, "{}: relative difference {r:.2e} > {tol:e}", x.name);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// N ranks × batch/N give the weights of 1 process × batch, up to the order of the sums: for
/// 1, 2 and 3 ranks, with momentum (spiral) and with Adam, warmup, cosine schedule, clipping,
/// weight decay, a frozen layer and uneven shares of a last partial batch (regression); and
/// with each reduction algorithm; and with integer inputs (text_classify's token ids).
#[test]
fn ranks_give_the_weights_of_one_process() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir("mpi", "equivalence");
    for (file, extra, n_model) in [(SPIRAL, vec![], 4), (REGRESSION, vec!["--data-dir", "examples/data"], 6)] {
        let one = dir.join("one.safetensors");
        let mut args = vec!["run", file, "--quiet", "--save", path(&one)];
        args.extend(&extra);
        single(&args);
        for (np, algorithm) in [(1, "ring"), (2, "ring"), (3, "ring"), (3, "gather"), (3, "mpi")] {
            let many = dir.join(&format!("{np}-{algorithm}.safetensors"));
            let mut args = vec!["run", file, "--quiet", "--save", path(&many)];
            args.extend(&extra);
            ranks_with(np, &args, &[("NETC_ALLREDUCE", algorithm)]);
            assert_close(&one, &many, n_model, 1e-6, 1e-5);
        }
    }
    // Integer inputs (token ids into an embedding) are shared like float fields.
    let one = dir.join("text-one.safetensors");
    single(&["run", TEXT, "--quiet", "--steps", "20", "--save", path(&one)]);
    let two = dir.join("text-two.safetensors");
    ranks(2, &["run", TEXT, "--quiet", "--steps", "20", "--save", path(&two)]);
    assert_close(&one, &two, 5, 1e-6, 1e-5);
}

/// Two runs on the same number of ranks write the same bytes: the reduction order is fixed
/// (on 3 ranks, where floating-point addition's order matters, for both fixed-order
/// algorithms), and so are the dropout masks of each rank's shard and the batch-norm state.
#[test]
fn runs_on_the_same_ranks_are_bit_identical() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir("mpi", "identical");
    let runs = [(2, "ring", REGRESSION), (3, "ring", REGRESSION), (3, "gather", REGRESSION), (2, "ring", BATCHNORM)];
    for (np, algorithm, file) in runs {
        let bytes: Vec<Vec<u8>> = (0..2)
            .map(|k| {
                let out = dir.join(&format!("{np}-{algorithm}-{k}.safetensors"));
                let args = ["run", file, "--data-dir", "examples/data", "--quiet", "--save", path(&out)];
                ranks_with(np, &args, &[("NETC_ALLREDUCE", algorithm)]);
                std::fs::read(&out).unwrap()
            })
            .collect();
        assert!(bytes[0] == bytes[1], "{file} on {np} ranks ({algorithm}): two runs differ");
    }
}

/// Rank 0 alone prints; evaluation sums every rank's share of the data sets, so the scores are
/// one process's (up to the order of the sums, and the weights' last bits).
#[test]
fn rank_zero_reports_the_scores_of_the_whole_data() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let one = single(&["run", SPIRAL, "--json"]);
    let two = ranks(2, &["run", SPIRAL, "--json"]);
    assert_eq!(two.stdout.lines().count(), 1, "one JSON line, from rank 0: {}", two.stdout);
    for key in ["steps", "train_accuracy", "test_accuracy"] {
        assert_eq!(field(&one.stdout, key), field(&two.stdout, key), "{key}");
    }
    for key in ["final_loss", "train_loss", "test_loss"] {
        let (a, b): (f64, f64) = (field(&one.stdout, key).parse().unwrap(), field(&two.stdout, key).parse().unwrap());
        assert!((a - b).abs() <= 1e-5 * a.abs(), "{key}: {a} vs {b}");
    }
    let table = ranks(2, &["run", SPIRAL]);
    assert_eq!(table.stdout.matches("trained spiral_net").count(), 1, "{}", table.stdout);
}

/// A checkpoint written by 2 ranks continues on 1 process (and one of 1 process on 3 ranks):
/// it holds the global step and the parameters, not per-rank state, so the continued run ends
/// where the uninterrupted one does.
#[test]
fn a_checkpoint_resumes_on_another_number_of_ranks() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir("mpi", "resume");
    let full = dir.join("full.safetensors");
    single(&["run", SPIRAL, "--quiet", "--save", path(&full)]);

    let half = dir.join("half.safetensors");
    ranks(2, &["run", SPIRAL, "--quiet", "--stop-after", "10", "--save", path(&half)]);
    let rest = dir.join("rest.safetensors");
    let resumed = single(&["run", SPIRAL, "--json", "--resume", path(&half), "--save", path(&rest)]);
    assert_eq!(field(&resumed.stdout, "steps"), "20");
    assert_close(&full, &rest, 4, 1e-6, 1e-5);

    let half1 = dir.join("half1.safetensors");
    single(&["run", SPIRAL, "--quiet", "--stop-after", "10", "--save", path(&half1)]);
    let rest3 = dir.join("rest3.safetensors");
    let resumed = ranks(3, &["run", SPIRAL, "--json", "--resume", path(&half1), "--save", path(&rest3)]);
    assert_eq!(field(&resumed.stdout, "steps"), "20");
    assert_close(&full, &rest3, 4, 1e-6, 1e-5);
}

/// Copy `examples/data/regression` into `dir/regression`.
fn data_copy(dir: &Path) -> PathBuf {
    let to = dir.join("regression");
    std::fs::create_dir_all(&to).unwrap();
    for f in ["x.npy", "y.npy"] {
        std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/regression").join(f), to.join(f))
            .unwrap();
    }
    dir.to_path_buf()
}

/// Rank 0 on good data, rank 1 on `bad`: the job fails fast with rank 1's reason, printed once.
fn rank_one_on(bad: &Path) -> Job {
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    let on = |data: &Path| argv(&["run", REGRESSION, "--data-dir", path(data)]);
    mpirun(&[(1, on(&good)), (1, on(bad))], &[])
}

/// A rank whose data file is corrupt stops the job before training, naming the rank and the
/// file; the job exits non-zero within the limit.
#[test]
fn a_corrupt_data_file_on_one_rank_fails_the_job() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir("mpi", "corrupt");
    let bad = data_copy(&dir);
    let x = bad.join("regression/x.npy");
    let bytes = std::fs::read(&x).unwrap();
    std::fs::write(&x, &bytes[..bytes.len() / 2]).unwrap();
    let job = rank_one_on(&bad);
    assert_eq!(job.code, 1, "stderr: {}", job.stderr);
    assert!(job.stderr.contains("rank 1: ") && job.stderr.contains("x.npy"), "{}", job.stderr);
    assert_eq!(job.stderr.matches("rank 1: ").count(), 1, "printed once: {}", job.stderr);
    assert!(job.seconds < 60.0, "took {:.1} s", job.seconds);
}

/// Data that loads but differs between ranks (one value changed) would train on the wrong
/// samples: the ranks compare fingerprints of their data and refuse.
#[test]
fn data_that_differs_between_ranks_is_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir("mpi", "differ");
    let bad = data_copy(&dir);
    let y = bad.join("regression/y.npy");
    let mut bytes = std::fs::read(&y).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&y, &bytes).unwrap();
    let job = rank_one_on(&bad);
    assert_eq!(job.code, 1, "stderr: {}", job.stderr);
    assert!(job.stderr.contains("rank 1 differs from rank 0 in the data of `samples`"), "{}", job.stderr);
}

/// A file or flags that differ between ranks are a diagnostic naming the ranks.
#[test]
fn a_program_that_differs_between_ranks_is_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = |lr: &str| argv(&["run", SPIRAL, "--lr", lr]);
    let job = mpirun(&[(2, run("0.3")), (1, run("0.1"))], &[]);
    assert_eq!(job.code, 1, "stderr: {}", job.stderr);
    assert!(job.stderr.contains("rank 2 differs from rank 0 in their program"), "{}", job.stderr);
    assert_eq!(job.stderr.matches("E-distributed").count(), 1, "printed once: {}", job.stderr);
}

/// A batch that does not split evenly over the ranks is refused before any step.
#[test]
fn a_batch_that_does_not_split_is_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let job = mpirun(&[(2, argv(&["run", SPIRAL, "--batch", "25"]))], &[]);
    assert_eq!(job.code, 1, "stderr: {}", job.stderr);
    assert_eq!(job.stderr.matches("the batch of 25 samples does not split evenly over 2 processes").count(), 1);
    assert!(!job.stdout.contains("trained"), "{}", job.stdout);
}

/// A run that diverges (the summed loss turns non-finite) stops on every rank at the same
/// step, the one a single process stops at; rank 0 alone says so, and the job exits 1.
#[test]
fn a_diverging_run_stops_every_rank_at_the_same_step() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let args = ["run", SPIRAL, "--lr", "1e30"];
    let mut alone = Command::new(netc());
    alone.args(args);
    let alone = run(alone);
    assert_eq!(alone.code, 1, "stderr: {}", alone.stderr);
    let at = "the loss became non-finite at step 2";
    assert!(alone.stderr.contains(at), "{}", alone.stderr);
    let job = mpirun(&[(2, argv(&args))], &[]);
    assert_eq!(job.code, 1, "stderr: {}", job.stderr);
    assert_eq!(job.stderr.matches(at).count(), 1, "printed once, by rank 0: {}", job.stderr);
    assert!(job.seconds < 60.0, "took {:.1} s", job.seconds);
}

/// A rank killed while training (SIGKILL, as the OOM killer does) ends the job: mpirun sees
/// its process die and stops the others, which wait for it in the reduction. Never a hang.
#[test]
fn a_killed_rank_ends_the_job() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir("mpi", "killed");
    let pid_file = dir.join("pid");
    let train = argv(&["run", SPIRAL, "--steps", "100000000", "--quiet"]);
    // Rank 1 writes its pid, then becomes netc (exec keeps the pid).
    let script = format!("echo $$ > {}; exec \"$@\"", path(&pid_file));
    let rank1: Vec<String> = ["sh", "-c", &script, "sh"].iter().map(|s| s.to_string()).chain(train.clone()).collect();
    let contexts = [(1, train), (1, rank1)];
    let killer = std::thread::spawn(move || {
        let started = Instant::now();
        while !pid_file.exists() || std::fs::read_to_string(&pid_file).unwrap_or_default().trim().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(60), "rank 1 never started");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Let it compile and start training.
        std::thread::sleep(Duration::from_secs(3));
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        Command::new("kill").args(["-KILL", pid.trim()]).status().unwrap();
    });
    let job = mpirun(&contexts, &[]);
    killer.join().unwrap();
    assert_ne!(job.code, 0, "stderr: {}", job.stderr);
    assert!(job.stderr.contains("rank 1") && job.stderr.contains("signal 9"), "{}", job.stderr);
}
