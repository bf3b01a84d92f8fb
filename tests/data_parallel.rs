//! Data-parallel training without MPI: the ranks are threads of this process, joined by a
//! `Collective` over shared memory (`Threads`), and each runs `train_report_on` as a rank of
//! `mpirun` does. So the default `cargo test` checks the split train step, the shares of each
//! batch, the reductions and the agreement of the ranks; `tests/mpi.rs` (feature `mpi`) runs
//! the same over real processes.

use crate::common;

use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Barrier, Mutex};

use common::temp_dir;
use netc::commands::train::{train_report_on, train_run_on, EngineKind, RunOptions};
use netc::diag::Diagnostic;
use netc::frontend::check::check_source;
use netc::runtime::collective::{Collective, Local};
use netc::runtime::weights::{self, Weight};
use netc::training::{self, optim, Overrides};

/// The ranks of one job, as threads.
struct Shared {
    barrier: Barrier,
    slots: Mutex<Vec<Vec<u8>>>,
}

struct Threads {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
}

impl Collective for Threads {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    /// Sum in rank order (what `NETC_ALLREDUCE=gather` does).
    fn sum_f32(&self, buf: &mut [f32]) {
        let all = self.all_gather_bytes(&buf.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
        for (i, x) in buf.iter_mut().enumerate() {
            let value = |b: &Vec<u8>| f32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap());
            *x = all.iter().skip(1).fold(value(&all[0]), |acc, b| acc + value(b));
        }
    }
    fn sum_f64(&self, buf: &mut [f64]) {
        let all = self.all_gather_bytes(&buf.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
        for (i, x) in buf.iter_mut().enumerate() {
            let value = |b: &Vec<u8>| f64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap());
            *x = all.iter().skip(1).fold(value(&all[0]), |acc, b| acc + value(b));
        }
    }
    fn all_gather_bytes(&self, mine: &[u8]) -> Vec<Vec<u8>> {
        self.shared.slots.lock().unwrap()[self.rank] = mine.to_vec();
        self.shared.barrier.wait();
        let all = self.shared.slots.lock().unwrap().clone();
        self.shared.barrier.wait();
        all
    }
    fn broadcast_f32(&self, buf: &mut [f32]) {
        let all = self.all_gather_bytes(&buf.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
        for (i, x) in buf.iter_mut().enumerate() {
            *x = f32::from_le_bytes(all[0][4 * i..4 * i + 4].try_into().unwrap());
        }
    }
    fn abort(&self, message: &str) -> ! {
        panic!("rank {} aborted: {message}", self.rank)
    }
}

fn options(save: &Path, data_dir: Option<&str>, overrides: Overrides) -> RunOptions {
    RunOptions {
        train: None,
        overrides,
        quiet: true,
        json: false,
        plot: None,
        save: Some(save.to_path_buf()),
        load: None,
        init_from: None,
        resume: None,
        stop_after: None,
        data_dir: data_dir.map(|d| Path::new(env!("CARGO_MANIFEST_DIR")).join(d)),
        stats: false,
        engine: EngineKind::Jit,
        memory_limit: 1 << 30,
        checked: false,
        conv: Default::default(),
    }
}

fn root(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(file)
}

/// Train `file` on `ranks` threads; rank 0 saves to `save`. Every rank's result.
fn train_on_threads(
    ranks: usize,
    file: &str,
    save: &Path,
    data_dir: Option<&'static str>,
    overrides: Overrides,
) -> Vec<Result<String, Diagnostic>> {
    let shared = Arc::new(Shared { barrier: Barrier::new(ranks), slots: Mutex::new(vec![vec![]; ranks]) });
    let handles: Vec<_> = (0..ranks)
        .map(|rank| {
            let (shared, file, save, overrides) = (shared.clone(), root(file), save.to_path_buf(), overrides.clone());
            std::thread::spawn(move || {
                let src = std::fs::read_to_string(&file).unwrap();
                let c = check_source(&src).unwrap();
                let group: Rc<dyn Collective> = Rc::new(Threads { rank, size: ranks, shared });
                train_report_on(&c, &file, &options(&save, data_dir, overrides), Some(group))
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// One process, the fused train step.
fn train_alone(file: &str, save: &Path, data_dir: Option<&str>, overrides: Overrides) {
    let path = root(file);
    let c = check_source(&std::fs::read_to_string(&path).unwrap()).unwrap();
    train_report_on(&c, &path, &options(save, data_dir, overrides), None).unwrap();
}

fn load(p: &Path) -> Vec<Weight> {
    weights::load(p).unwrap()
}

/// max|a − b| / max|a| of each tensor.
fn worst(a: &Path, b: &Path) -> Vec<(String, f64)> {
    worst_over(a, b, 1e-30)
}

/// max|a − b| / max(max|a|, floor) of each tensor.
fn worst_over(a: &Path, b: &Path, floor: f64) -> Vec<(String, f64)> {
    load(a)
        .iter()
        .zip(load(b))
        .map(|(x, y)| {
            assert_eq!((&x.name, &x.shape), (&y.name, &y.shape));
            let scale = x.data.iter().fold(0f64, |m, &v| m.max((v as f64).abs())).max(floor);
            let diff = x.data.iter().zip(&y.data).fold(0f64, |m, (&p, &q)| m.max((p as f64 - q as f64).abs()));
            (x.name.clone(), diff / scale)
        })
        .collect()
}

const CASES: [(&str, Option<&str>); 2] =
    [("tests/data/mpi/spiral.net", None), ("tests/data/mpi/regression.net", Some("examples/data"))];

/// The split step's update holds the fused step's parameters in the same order, so the
/// checkpoints of both are the same file layout (and `--resume` crosses between them).
#[test]
fn the_split_step_keeps_the_fused_steps_parameters() {
    for (file, _) in CASES {
        let c = check_source(&std::fs::read_to_string(root(file)).unwrap()).unwrap();
        let (t, _) = training::find(&c, None).unwrap();
        let fused = optim::build(t).unwrap();
        let split = optim::build_split(t).unwrap();
        let names =
            |g: &netc::ir::graph::Graph| g.params.iter().map(|p| (p.name.clone(), p.shape.clone())).collect::<Vec<_>>();
        assert_eq!(names(&fused.graph), names(&split.update), "{file}");
        assert_eq!(names(&t.graph), names(&split.gradients), "{file}");
        assert_eq!(split.gradients.outputs.len(), 1 + split.trainable.len());
        assert!(split.trainable.len() < t.graph.params.len() || !file.contains("regression"), "a layer is frozen");
    }
}

/// 1, 2 and 3 ranks (threads) train to the weights of one process within 1e-6 of each tensor's
/// scale; the optimizer state within 1e-5.
#[test]
fn threads_as_ranks_train_like_one_process() {
    let dir = temp_dir("data_parallel", "equivalence");
    for (file, data) in CASES {
        let one = dir.join("one.safetensors");
        train_alone(file, &one, data, Overrides::default());
        for ranks in 1..=3 {
            let many = dir.join(&format!("{ranks}.safetensors"));
            for r in train_on_threads(ranks, file, &many, data, Overrides::default()) {
                r.unwrap();
            }
            let model =
                check_source(&std::fs::read_to_string(root(file)).unwrap()).unwrap().trains[0].graph.params.len();
            for (i, (name, r)) in worst(&one, &many).into_iter().enumerate() {
                let tol = if i < model { 1e-6 } else { 1e-5 };
                assert!(r <= tol, "{file} on {ranks} ranks: {name} differs by {r:.2e}");
            }
        }
    }
}

/// Rank 0 of a data-parallel run returns the model's trained parameters (what `netc run`'s
/// eval blocks that call the trained model read), the same tensors it saves; the other ranks
/// return none.
#[test]
fn rank_zero_returns_the_trained_weights() {
    let dir = temp_dir("data_parallel", "trained_weights");
    let (file, data) = CASES[0];
    let save = dir.join("two.safetensors");
    let shared = Arc::new(Shared { barrier: Barrier::new(2), slots: Mutex::new(vec![vec![]; 2]) });
    let handles: Vec<_> = (0..2)
        .map(|rank| {
            let (shared, save) = (shared.clone(), save.clone());
            std::thread::spawn(move || {
                let c = check_source(&std::fs::read_to_string(root(file)).unwrap()).unwrap();
                let group: Rc<dyn Collective> = Rc::new(Threads { rank, size: 2, shared });
                let t =
                    train_run_on(&c, &root(file), &options(&save, data, Overrides::default()), Some(group)).unwrap();
                (t.model, t.weights)
            })
        })
        .collect();
    let results: Vec<(String, Vec<Weight>)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let c = check_source(&std::fs::read_to_string(root(file)).unwrap()).unwrap();
    let params = &c.trains[0].graph.params;
    let (model, weights) = &results[0];
    assert_eq!(model, &c.trains[0].model);
    assert_eq!(weights.len(), params.len());
    let saved = load(&save);
    for w in weights {
        let s = saved.iter().find(|s| s.name == w.name).unwrap_or_else(|| panic!("{} was not saved", w.name));
        assert_eq!(w.shape, s.shape, "{}", w.name);
        assert_eq!(w.data, s.data, "{}: rank 0 returned other values than it saved", w.name);
    }
    // Trained, not the initial draw.
    let initial = training::initial_params(&c.trains[0].graph, c.trains[0].seed);
    assert!(weights.iter().zip(&initial).any(|(w, i)| &w.data != i), "the weights did not move");
    assert!(results[1].1.is_empty(), "rank 1 returned weights");
}

/// Integer inputs (token ids feeding an embedding) are shared across the ranks like float
/// fields: 2 ranks of the text classifier give one process's weights after 20 steps. (Were the
/// ids not split, a rank would read zeros or another rank's tokens, and the embedding rows it
/// updates would differ.)
#[test]
fn integer_inputs_are_shared_like_float_fields() {
    let dir = temp_dir("data_parallel", "int_inputs");
    let file = "examples/text_classify.net";
    let steps = || Overrides { steps: Some(20), ..Default::default() };
    let one = dir.join("one.safetensors");
    train_alone(file, &one, None, steps());
    let two = dir.join("two.safetensors");
    for r in train_on_threads(2, file, &two, None, steps()) {
        r.unwrap();
    }
    let model = check_source(&std::fs::read_to_string(root(file)).unwrap()).unwrap().trains[0].graph.params.len();
    for (i, (name, r)) in worst(&one, &two).into_iter().enumerate() {
        let tol = if i < model { 1e-6 } else { 1e-5 };
        assert!(r <= tol, "{file} on 2 ranks: {name} differs by {r:.2e}");
    }
}

/// The measure is not blind: training on a slightly different batch (58 samples instead of
/// 60) moves the weights by far more than the 1e-6 allowed above.
#[test]
fn the_comparison_sees_a_wrong_batch() {
    let dir = temp_dir("data_parallel", "sensitivity");
    let (file, data) = CASES[0];
    let one = dir.join("one.safetensors");
    train_alone(file, &one, data, Overrides::default());
    let other = dir.join("other.safetensors");
    for r in train_on_threads(2, file, &other, data, Overrides { batch: Some(58), ..Default::default() }) {
        r.unwrap();
    }
    assert!(worst(&one, &other).iter().any(|(_, r)| *r > 1e-3));
}

/// Errors every rank meets come back the same on each; a batch that does not split is one.
#[test]
fn every_rank_gets_the_same_error() {
    let dir = temp_dir("data_parallel", "errors");
    let batch = Overrides { batch: Some(25), ..Default::default() };
    let results = train_on_threads(2, CASES[0].0, &dir.join("w.safetensors"), None, batch);
    let messages: Vec<String> = results.into_iter().map(|r| r.unwrap_err().message).collect();
    assert_eq!(messages[0], "the batch of 25 samples does not split evenly over 2 processes");
    assert_eq!(messages[0], messages[1]);
}

/// A failure on one rank only (its data is missing) reaches every rank before training, as
/// `rank k: …`.
#[test]
fn a_failure_of_one_rank_reaches_all() {
    let dir = temp_dir("data_parallel", "one_fails");
    let ranks = 2;
    let shared = Arc::new(Shared { barrier: Barrier::new(ranks), slots: Mutex::new(vec![vec![]; ranks]) });
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let handles: Vec<_> = (0..ranks)
        .map(|rank| {
            let shared = shared.clone();
            let save = dir.join("w.safetensors");
            let empty = empty.clone();
            std::thread::spawn(move || {
                let file = root(CASES[1].0);
                let c = check_source(&std::fs::read_to_string(&file).unwrap()).unwrap();
                let mut opts = options(&save, CASES[1].1, Overrides::default());
                if rank == 1 {
                    opts.data_dir = Some(empty);
                }
                let group: Rc<dyn Collective> = Rc::new(Threads { rank, size: ranks, shared });
                train_report_on(&c, &file, &opts, Some(group)).unwrap_err()
            })
        })
        .collect();
    let errors: Vec<Diagnostic> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(errors[0], errors[1]);
    assert!(errors[0].message.starts_with("rank 1: ") && errors[0].message.contains("x.npy"), "{}", errors[0].message);
    assert!(errors[0].notes.iter().any(|n| n == "1 of 2 ranks failed; 1 were ready"), "{:?}", errors[0].notes);
    // One process is its own group: nothing to agree with.
    assert_eq!(Local.size(), 1);
}

const BATCHNORM: &str = "tests/data/mpi/batchnorm.net";

/// With batch norm and dropout, one rank is one process: the same random key (step s·1 + 0 =
/// s) and the state averaged over one rank. (Measured against max(max|a|, 1): the bias before
/// batch norm has no gradient but rounding, so its relative error says nothing.)
#[test]
fn batch_norm_and_dropout_on_one_rank_are_one_process() {
    let dir = temp_dir("data_parallel", "bn_one");
    let one = dir.join("one.safetensors");
    train_alone(BATCHNORM, &one, None, Overrides::default());
    let split = dir.join("split.safetensors");
    for r in train_on_threads(1, BATCHNORM, &split, None, Overrides::default()) {
        r.unwrap();
    }
    for (name, r) in worst_over(&one, &split, 1.0) {
        assert!(r <= 1e-5, "{name} differs by {r:.2e}");
    }
}

/// After one step on 2 ranks, the running mean is one process's (the mean of the shards' means,
/// weighted by their sizes, is the batch's mean), and the running variance the mean of the
/// shards' variances, a little below the batch's.
#[test]
fn running_statistics_are_averaged_over_the_ranks() {
    let dir = temp_dir("data_parallel", "bn_stats");
    let one_step = || Overrides { steps: Some(1), ..Default::default() };
    let one = dir.join("one.safetensors");
    train_alone(BATCHNORM, &one, None, one_step());
    let two = dir.join("two.safetensors");
    for r in train_on_threads(2, BATCHNORM, &two, None, one_step()) {
        r.unwrap();
    }
    let diffs = worst(&one, &two);
    let get = |name: &str| diffs.iter().find(|(n, _)| n == name).unwrap().1;
    assert!(get("batchnorm_1.mean") <= 1e-6, "mean differs by {:.2e}", get("batchnorm_1.mean"));
    let var = get("batchnorm_1.var");
    assert!(var > 1e-6 && var < 1e-2, "var differs by {var:.2e}");
}

/// Without the `mpi` feature, a run that asks for data parallelism (or that an MPI launcher
/// started) says how to build netc with MPI; only the first process of a launch says it, and
/// `--distributed off` trains as one process anyway.
#[cfg(not(feature = "mpi"))]
#[test]
fn a_build_without_mpi_says_how_to_get_it() {
    use common::netc;
    let (code, _, err) = netc(&["run", BATCHNORM, "--distributed"]);
    assert_eq!(code, 1);
    assert!(err.contains("built without MPI") && err.contains("--features mpi"), "{err}");
    let launched = |rank: &str, args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_netc"))
            .args(args)
            .env("OMPI_COMM_WORLD_RANK", rank)
            .env("OMPI_COMM_WORLD_SIZE", "2")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = launched("0", &["run", BATCHNORM]);
    assert_eq!(code, Some(1));
    assert!(err.contains("OMPI_COMM_WORLD_RANK is set"), "{err}");
    assert_eq!(launched("1", &["run", BATCHNORM]), (Some(1), String::new()));
    assert_eq!(launched("1", &["run", BATCHNORM, "--distributed", "off", "--quiet"]).0, Some(0));
}
