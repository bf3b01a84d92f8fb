//! `netc run` on the ranks of an MPI job (`mpirun -np N netc run model.net`, `srun`, or
//! `--distributed`): data-parallel training, as docs/distributed.md describes.
//!
//! Each rank runs this same function. In order:
//! 1. initialise MPI; compare a fingerprint of the program (the source text, the flags that
//!    change training, netc's version, the reduction algorithm) across the ranks;
//! 2. check the source (the ranks now agree on it, so they meet the same errors);
//! 3. rank 0 runs the eval blocks; every rank prepares training (data, weights, compiling) and
//!    the ranks agree that all are ready (`collective::agree`), then compare their data;
//! 4. train (`train_report_on`); rank 0 prints, plots and saves.
//!
//! Errors every rank meets alike are printed once, by rank 0; a failure of some ranks only
//! reaches the others before training (`agree`) or ends the job from where it happens
//! (`Collective::abort`). A panic ends the job too. So a failure never leaves ranks waiting.

use std::path::Path;
#[cfg(not(feature = "mpi"))]
use std::process::ExitCode;

use crate::commands::train::{RunOptions, Trained};
use crate::diag::{self, Diagnostic, SourceFile};
use crate::frontend::checked::Checked;
use crate::runtime::collective::{Fingerprint, Launch};

/// Whether `netc run` trains data-parallel (`--distributed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    /// When an MPI launcher started the process (`mpirun`, `srun`: see `Launch`).
    #[default]
    Auto,
    On,
    /// Never, even under a launcher (e.g. one process of a job script).
    Off,
}

impl Mode {
    /// Whether this run is distributed.
    pub fn active(self) -> bool {
        match self {
            Mode::Auto => Launch::detect().is_some(),
            Mode::On => true,
            Mode::Off => false,
        }
    }
}

/// What main.rs does for `netc run` that a distributed run does too.
pub struct Hooks<'a> {
    /// Read the source file.
    pub read: &'a dyn Fn(&Path) -> Result<String, Diagnostic>,
    /// Run the eval blocks and return what they print: with no trained weights, those that
    /// run before training; with rank 0's trained weights, those that call the trained model.
    pub evals: &'a dyn Fn(&Checked, Option<&Trained>) -> Result<String, Diagnostic>,
}

/// A fingerprint of what decides the computation of a run: netc's version, the source, the
/// flags that change training and the reduction algorithm. Not the paths (of data, weights,
/// outputs), which may differ between machines, and not what only rank 0 does (printing).
pub fn program_fingerprint(src: &str, opts: &RunOptions, algorithm: &str) -> u64 {
    let o = &opts.overrides;
    let flags = format!(
        "train={:?} steps={:?} epochs={:?} batch={:?} lr={:?} seed={:?} stop_after={:?} engine={:?} \
         checked={} resume={} load={} init_from={} allreduce={algorithm}",
        opts.train,
        o.steps,
        o.epochs,
        o.batch,
        o.lr.map(f64::to_bits),
        o.seed,
        opts.stop_after,
        opts.engine,
        opts.checked,
        opts.resume.is_some(),
        opts.load.is_some(),
        opts.init_from.is_some(),
    );
    Fingerprint::default().str(env!("CARGO_PKG_VERSION")).str(src).str(&flags).value()
}

/// Print diagnostics the way `netc` does (with the source when they point into it).
fn render(diags: &[Diagnostic], file: &Path, src: Option<&str>) {
    let name = file.display().to_string();
    let source = src.map(|text| SourceFile { name: &name, text });
    eprint!("{}", diag::render(diags, source.as_ref(), diag::stderr_color()));
}

/// A build without the `mpi` feature cannot train across processes: say how to build one.
/// (Printed by the first process only: a launcher starts N copies.)
#[cfg(not(feature = "mpi"))]
pub fn run(file: &Path, _opts: &RunOptions, _hooks: &Hooks) -> ExitCode {
    let launch = Launch::detect();
    if launch.as_ref().and_then(|l| l.rank).unwrap_or(0) == 0 {
        let mut d = Diagnostic::new("E-distributed", "this netc was built without MPI, so it cannot train across processes")
            .help("build it with `cargo build --release --features mpi` (needs an MPI library, e.g. Debian's libopenmpi-dev, and libclang); `--distributed off` runs one process");
        if let Some(l) = launch {
            d = d.note(format!("{} is set: an MPI launcher started this process", l.variable));
        }
        render(&[d], file, None);
    }
    ExitCode::from(1)
}

#[cfg(feature = "mpi")]
pub use with_mpi::run;

#[cfg(feature = "mpi")]
mod with_mpi {
    use std::path::Path;
    use std::process::ExitCode;
    use std::rc::Rc;

    use super::{program_fingerprint, render, Hooks};
    use crate::commands::train::{train_run_on, RunOptions};
    use crate::diag::Diagnostic;
    use crate::runtime::collective::{agree, same_everywhere, Algorithm, Collective};
    use crate::runtime::mpi::Mpi;

    /// Train on this rank of the MPI job; the exit code.
    pub fn run(file: &Path, opts: &RunOptions, hooks: &Hooks) -> ExitCode {
        let algorithm = Algorithm::from_env();
        let mpi = match Mpi::init(*algorithm.as_ref().unwrap_or(&Algorithm::Ring)) {
            Ok(m) => m,
            Err(e) => {
                render(&[Diagnostic::new("E-distributed", e)], file, None);
                return ExitCode::from(1);
            }
        };
        crate::runtime::mpi::abort_on_panic(mpi.rank());
        let leader = mpi.rank() == 0;
        let group: Rc<dyn Collective> = Rc::new(mpi);
        let result = session(file, opts, hooks, &group, algorithm);
        if let (Err((diags, src)), true) = (&result, leader) {
            render(diags, file, src.as_deref());
        }
        // No rank leaves before rank 0 has printed: mpirun ends the whole job as soon as one
        // rank exits non-zero, which cut rank 0's message off when the others, failing alike
        // but silently, exited first. Every rank gets here (a rank that cannot has aborted).
        let _ = std::io::Write::flush(&mut std::io::stdout());
        group.all_gather_bytes(&[]);
        // Every other holder of the group is gone: MPI is finalised here.
        drop(group);
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        }
    }

    type Failure = (Vec<Diagnostic>, Option<String>);

    fn session(
        file: &Path,
        opts: &RunOptions,
        hooks: &Hooks,
        group: &Rc<dyn Collective>,
        algorithm: Result<Algorithm, String>,
    ) -> Result<(), Failure> {
        let plain = |d: Diagnostic| (vec![d], None);
        let leader = group.rank() == 0;
        let setup = (hooks.read)(file)
            .and_then(|src| algorithm.map(|a| (src, a)).map_err(|e| Diagnostic::new("E-distributed", e)));
        let (src, algorithm) = agree(&**group, setup).map_err(plain)?;
        let with_src = |d: Diagnostic| (vec![d], Some(src.clone()));
        let program = program_fingerprint(&src, opts, algorithm.name());
        same_everywhere(&**group, &format!("their program ({}, its flags or netc's version)", file.display()), program)
            .map_err(plain)?;
        let checked = crate::frontend::check::check_source(&src).map_err(|diags| (diags, Some(src.clone())))?;
        if checked.trains.is_empty() {
            return Err(with_src(Diagnostic::new(
                "E-usage",
                format!("{} has no train block: nothing to train across processes", file.display()),
            )));
        }
        let evals = if leader { (hooks.evals)(&checked, None) } else { Ok(String::new()) };
        print!("{}", agree(&**group, evals).map_err(with_src)?);
        let trained = train_run_on(&checked, file, opts, Some(group.clone())).map_err(with_src)?;
        print!("{}", trained.text);
        // Eval blocks that call the trained model run on rank 0, on its trained weights.
        let evals = if leader { (hooks.evals)(&checked, Some(&trained)) } else { Ok(String::new()) };
        print!("{}", agree(&**group, evals).map_err(with_src)?);
        Ok(())
    }
}
