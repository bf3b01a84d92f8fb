//! The `netc` command line: reads a `.net` file, runs the pipeline, reports diagnostics.
//! Exit codes: 0 success, 1 bad input (with a diagnostic), 2 bad command-line usage (clap).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use netc::codegen::ConvAlgorithm;
use netc::commands::distributed::Mode as Distributed;
use netc::commands::train::{EngineKind, Trained};
use netc::diag::{self, Diagnostic, SourceFile};
use netc::frontend::check;
use netc::frontend::checked::{Checked, EvalDecl};
use netc::runtime::files;

#[derive(Parser)]
#[command(name = "netc", version, about = "A compiler for a small language that describes neural networks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct RunArgs {
    file: PathBuf,
    /// The train block to run, by name (needed when the file has several).
    #[arg(long, value_name = "NAME")]
    train: Option<String>,
    /// Train for this many steps (overrides the file).
    #[arg(long)]
    steps: Option<usize>,
    /// Train for this many epochs (overrides the file).
    #[arg(long)]
    epochs: Option<usize>,
    /// Minibatch size (overrides the file).
    #[arg(long)]
    batch: Option<usize>,
    /// Learning rate (overrides the file).
    #[arg(long)]
    lr: Option<f64>,
    /// Seed of parameter initialisation and shuffling (overrides the file).
    #[arg(long)]
    seed: Option<u64>,
    /// Print nothing but errors.
    #[arg(long)]
    quiet: bool,
    /// Print one JSON object with the results at the end.
    #[arg(long)]
    json: bool,
    /// Draw the loss curve into this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Save the trained weights (safetensors; written atomically).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Start from saved weights (every parameter must be in the file).
    #[arg(long)]
    load: Option<PathBuf>,
    /// Start from the tensors of a weights file whose names and shapes match (partial
    /// initialisation); prints which were loaded, skipped and left at their initial values.
    #[arg(long, value_name = "WEIGHTS")]
    init_from: Option<PathBuf>,
    /// Continue from a checkpoint written by --save (parameters, optimizer state, step count).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Stop after this many steps in all; the run can be continued with --resume.
    #[arg(long)]
    stop_after: Option<usize>,
    /// Read the data files relative to this directory (default: the .net file's).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print compile times and the memory plan.
    #[arg(long)]
    stats: bool,
    /// How convolutions are computed: auto (Winograd for stride-1 3×3 and 5×5 layers of at
    /// least 16 channels in and out, im2col + GEMM for the rest), direct (im2col + GEMM
    /// everywhere), winograd (every stride-1 3×3 and 5×5 layer), winograd2 / winograd4 (with
    /// that output tile).
    #[arg(long, value_name = "ALGORITHM", default_value = "auto", value_parser = ConvAlgorithm::parse)]
    conv: ConvAlgorithm,
    /// Execute with the JIT or the reference interpreter.
    #[arg(long, value_enum, default_value_t = EngineKind::Jit)]
    engine: EngineKind,
    /// Refuse models needing more memory than this many MiB (default: 3/4 of the machine's).
    #[arg(long, value_name = "MIB")]
    memory_limit: Option<u64>,
    /// Check every memory access of the generated code against its buffer (slower; for
    /// debugging netc): an access outside is refused and reported, exit code 1.
    #[arg(long)]
    checked: bool,
    /// Train data-parallel on the processes of an MPI job: `auto` (default) when started by
    /// `mpirun` or `srun`; `--distributed` alone is `on` (docs/distributed.md).
    #[arg(long, value_enum, default_value_t = Distributed::Auto, num_args = 0..=1, default_missing_value = "on")]
    distributed: Distributed,
}

#[derive(clap::Args)]
struct BuildArgs {
    file: PathBuf,
    /// The object file to write (default: PREFIX.o); the header goes next to it as .h.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Write the C header here instead.
    #[arg(long)]
    header: Option<PathBuf>,
    /// Prefix of every exported symbol (default: the model's name).
    #[arg(long)]
    prefix: Option<String>,
    /// The model to build (default: the one the file trains, or its only model).
    #[arg(long)]
    model: Option<String>,
    /// Embed these trained weights (safetensors, as written by `netc run --save`).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Cross-compile for this target triple, e.g. aarch64-unknown-linux-gnu (default: this
    /// machine, using its CPU's features).
    #[arg(long, value_name = "TRIPLE")]
    target: Option<String>,
    /// Refuse models whose parameters need more than this many MiB (default: 3/4 of the
    /// machine's memory).
    #[arg(long, value_name = "MIB")]
    memory_limit: Option<u64>,
    /// How convolutions are computed: auto (Winograd for stride-1 3×3 and 5×5 layers of at
    /// least 16 channels in and out, im2col + GEMM for the rest), direct (im2col + GEMM
    /// everywhere), winograd (every stride-1 3×3 and 5×5 layer), winograd2 / winograd4 (with
    /// that output tile).
    #[arg(long, value_name = "ALGORITHM", default_value = "auto", value_parser = ConvAlgorithm::parse)]
    conv: ConvAlgorithm,
}

/// `netc graph --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum GraphFormat {
    /// Graphviz DOT (a `-o FILE.svg` is rendered with Graphviz's `dot`).
    Dot,
    /// One line per node.
    Text,
}

#[derive(clap::Args)]
struct PredictArgs {
    file: PathBuf,
    /// Trained weights (safetensors, as written by `netc run --save`).
    #[arg(long, value_name = "WEIGHTS")]
    load: Option<PathBuf>,
    /// An input file (.npy, or .csv with a header row): `FILE` for a model of one input, or
    /// `NAME=FILE` for the model input NAME. Repeat for several inputs.
    #[arg(long = "input", value_name = "[NAME=]FILE", required = true)]
    inputs: Vec<String>,
    /// Where to write the outputs, one row per sample (.npy or .csv; default: CSV on stdout).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The model to run (default: the one the file trains, or its only model).
    #[arg(long)]
    model: Option<String>,
    /// Which output, for a model with several.
    #[arg(long = "output-name", value_name = "NAME")]
    output_name: Option<String>,
    /// Samples per batch.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Print a JSON summary (needs -o).
    #[arg(long)]
    json: bool,
    /// Print nothing but errors.
    #[arg(long)]
    quiet: bool,
    /// Execute with the JIT or the reference interpreter.
    #[arg(long, value_enum, default_value_t = EngineKind::Jit)]
    engine: EngineKind,
}

#[derive(Subcommand)]
enum Command {
    /// Train and evaluate the models of a .net file (runs its eval and train blocks).
    Run(RunArgs),
    /// Type-check a .net file: print each model's inputs, outputs and parameter count.
    Check {
        file: PathBuf,
        /// Also print the per-layer table of `netc summary`.
        #[arg(long)]
        summary: bool,
    },
    /// A per-layer table of each model: output shapes, parameters, FLOPs; and totals, with
    /// the memory of a train step.
    Summary {
        file: PathBuf,
        /// Only this model.
        #[arg(long)]
        model: Option<String>,
        /// The batch for the train step's memory (default: the train block's).
        #[arg(long)]
        batch: Option<usize>,
    },
    /// Run a trained model on new data (NPY or CSV in, NPY or CSV out).
    Predict(PredictArgs),
    /// Draw the forward and backward computational graphs (Graphviz DOT, or text). Rendering
    /// a `-o FILE.svg` needs Graphviz's `dot` on PATH (e.g. `apt install graphviz`).
    Graph {
        file: PathBuf,
        /// The output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        /// With --values: the parameters' values from these weights (safetensors) instead of
        /// their initialisers.
        #[arg(long, value_name = "WEIGHTS")]
        load: Option<PathBuf>,
        /// Label every edge with its forward value and its gradient (the lecture's picture).
        #[arg(long)]
        values: bool,
        /// Write here instead of stdout; a .svg name renders with Graphviz's `dot`.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Which eval, train or model to draw (default: the first).
        #[arg(long)]
        name: Option<String>,
        /// Run the optimisation passes (fold, simplify, cse, dce, hoist) on the graph first.
        #[arg(long)]
        optimize: bool,
        /// Print the text form after each run of this pass (fold, simplify, cse, dce or hoist).
        #[arg(long, value_name = "PASS")]
        print_after: Option<String>,
    },
    /// Compare analytic gradients with central finite differences (in f64).
    Gradcheck {
        file: PathBuf,
        /// Largest relative error accepted.
        #[arg(long, default_value_t = 1e-6)]
        threshold: f64,
        /// Batch size of the random inputs.
        #[arg(long, default_value_t = 4)]
        batch: usize,
        /// Check every element of every tensor (default: a spread sample of 32 per tensor).
        #[arg(long)]
        all: bool,
    },
    /// Compile a model into an object file and a C header.
    Build(BuildArgs),
    /// An interactive prompt that JIT-compiles every line.
    Repl,
    /// Time a model's train step, inference and compilation on synthetic inputs.
    Bench(netc::commands::bench::BenchArgs),
}

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let cli = Cli::parse();
    // The work runs on a thread with a large stack, so that the deepest expression the parser
    // accepts (`parser::MAX_NESTING`) is checked without overflowing it. Should the system
    // refuse such a thread, the work runs here (deep inputs may then overflow).
    let stack = netc::frontend::parser::STACK_BYTES;
    match std::thread::Builder::new().name("netc".into()).stack_size(stack).spawn(move || run(cli, started)) {
        Ok(worker) => worker.join().unwrap_or(ExitCode::from(101)), // a panic was printed already
        Err(_) => run(Cli::parse(), started),
    }
}

fn run(cli: Cli, started: std::time::Instant) -> ExitCode {
    match cli.command {
        Command::Check { file, summary } => cmd_check(&file, summary),
        Command::Summary { file, model, batch } => cmd_summary(&file, model.as_deref(), batch),
        Command::Predict(args) => cmd_predict(&args),
        Command::Run(args) => cmd_run(&args),
        Command::Graph { file, format, load, values, output, name, optimize, print_after } => {
            let format = if print_after.is_some() { GraphFormat::Text } else { format };
            let opts = GraphOptions { values, optimize, print_after, name, load };
            cmd_graph(&file, format, output.as_deref(), &opts)
        }
        Command::Gradcheck { file, threshold, batch, all } => {
            cmd_gradcheck(&file, threshold, batch, if all { usize::MAX } else { netc::ir::gradcheck::MAX_CHECKED })
        }
        Command::Build(args) => cmd_build(&args),
        Command::Bench(args) => netc::commands::bench::main(&args, started),
        Command::Repl => match netc::commands::repl::main() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&[Diagnostic::new("E-io", format!("netc repl: {e}"))], Path::new("repl"), None),
        },
    }
}

fn cmd_build(args: &BuildArgs) -> ExitCode {
    let file = args.file.as_path();
    let (_, checked) = match load(file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let opts = netc::drivers::object::BuildOptions {
        model: args.model.clone(),
        prefix: args.prefix.clone(),
        weights: args.weights.clone(),
        target: args.target.clone(),
        source_name: file.display().to_string(),
        conv: args.conv,
        memory_limit: args.memory_limit.map(|m| m.saturating_mul(1 << 20)),
    };
    let mut inputs = vec![file];
    inputs.extend(args.weights.as_deref());
    // The outputs' paths are known before compiling when -o is given; check them first.
    let refuse = |path: &Path, e: files::WriteError| {
        fail(&[Diagnostic::new("E-build", format!("cannot write {}: {e}", path.display()))], file, None)
    };
    if let Some(object) = &args.output {
        let header = args.header.clone().unwrap_or_else(|| object.with_extension("h"));
        if let Err((path, e)) = files::check_output_paths(&[object, &header], &inputs) {
            return refuse(&path, e);
        }
    }
    let built = match netc::drivers::object::build(&checked, &opts) {
        Ok(b) => b,
        Err(d) => return fail(&[d], file, None),
    };
    let object = args.output.clone().unwrap_or_else(|| PathBuf::from(format!("{}.o", built.prefix)));
    let header = args.header.clone().unwrap_or_else(|| object.with_extension("h"));
    // `-o out/m.o` makes `out/` when it is missing.
    for path in [&object, &header] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            if let Err(e) = std::fs::create_dir_all(dir) {
                let d = Diagnostic::new("E-io", format!("cannot create the folder {}: {e}", dir.display()));
                return fail(&[d], file, None);
            }
        }
    }
    if let Err(d) = netc::drivers::object::write(&built, &object, &header, &inputs) {
        return fail(&[d], file, None);
    }
    eprintln!(
        "wrote {} ({} bytes) and {}: {}",
        object.display(),
        built.object.len(),
        header.display(),
        built.functions.join(", ")
    );
    ExitCode::SUCCESS
}

/// Print diagnostics to stderr (colored on a terminal, unless NO_COLOR is set) and return
/// exit code 1.
fn fail(diags: &[Diagnostic], file: &Path, src: Option<&str>) -> ExitCode {
    let name = file.display().to_string();
    let source = src.map(|text| SourceFile { name: &name, text });
    eprint!("{}", diag::render(diags, source.as_ref(), diag::stderr_color()));
    ExitCode::from(1)
}

/// Read, parse and check a file, or report why not.
fn load(file: &Path) -> Result<(String, Checked), ExitCode> {
    let src = netc::session::read_source(file).map_err(|d| fail(&[d], file, None))?;
    let checked = check::check_source(&src).map_err(|diags| fail(&diags, file, Some(&src)))?;
    Ok((src, checked))
}

fn cmd_check(file: &Path, summary: bool) -> ExitCode {
    let (src, checked) = match load(file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    print!("{}", netc::commands::report::summary(&checked));
    if !checked.notes.is_empty() {
        let name = file.display().to_string();
        let source = SourceFile { name: &name, text: &src };
        eprint!("{}", diag::render(&checked.notes, Some(&source), diag::stderr_color()));
    }
    if summary && !checked.models.is_empty() {
        match netc::commands::summary::summary(&checked, None, None) {
            Ok(text) => print!("\n{text}"),
            Err(msg) => return fail(&[Diagnostic::new("E-usage", msg)], file, None),
        }
    }
    ExitCode::SUCCESS
}

fn cmd_summary(file: &Path, model: Option<&str>, batch: Option<usize>) -> ExitCode {
    let (_, checked) = match load(file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if batch == Some(0) {
        return fail(&[Diagnostic::new("E-usage", "--batch must be at least 1")], file, None);
    }
    match netc::commands::summary::summary(&checked, model, batch) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(msg) => fail(&[Diagnostic::new("E-usage", msg)], file, None),
    }
}

fn cmd_predict(args: &PredictArgs) -> ExitCode {
    let file = args.file.as_path();
    let (_, checked) = match load(file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let opts = netc::commands::predict::PredictOptions {
        model: args.model.clone(),
        load: args.load.clone(),
        inputs: args.inputs.clone(),
        output: args.output.clone(),
        output_name: args.output_name.clone(),
        batch: args.batch,
        json: args.json,
        quiet: args.quiet,
        interpreter: args.engine == EngineKind::Interp,
    };
    match netc::commands::predict::predict(&checked, file, &opts) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(d) => fail(&[d], file, None),
    }
}

fn cmd_run(args: &RunArgs) -> ExitCode {
    let file = args.file.as_path();
    if args.distributed.active() {
        let evals = |c: &Checked, trained: Option<&Trained>| eval_blocks(c, args, trained);
        let hooks = netc::commands::distributed::Hooks { read: &netc::session::read_source, evals: &evals };
        return netc::commands::distributed::run(file, &run_options(args), &hooks);
    }
    let (_, checked) = match load(file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if checked.trains.is_empty() {
        // Training flags on a file that trains nothing are a mistake, not a no-op. (`--load`
        // also fills the parameters of models that eval blocks call.)
        let evals_have_params = checked.evals.iter().any(|e| !e.graph.params.is_empty());
        let given: Vec<&str> = [
            ("--plot", args.plot.is_some()),
            ("--save", args.save.is_some()),
            ("--load", args.load.is_some() && !evals_have_params),
            ("--init-from", args.init_from.is_some()),
            ("--resume", args.resume.is_some()),
            ("--stop-after", args.stop_after.is_some()),
            ("--train", args.train.is_some()),
            ("--steps", args.steps.is_some()),
            ("--epochs", args.epochs.is_some()),
            ("--batch", args.batch.is_some()),
            ("--lr", args.lr.is_some()),
            ("--json", args.json),
            ("--data-dir", args.data_dir.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, on)| on.then_some(flag))
        .collect();
        if !given.is_empty() {
            let d = Diagnostic::new(
                "E-usage",
                format!(
                    "{} {} nothing: {} has no train block",
                    given.join(", "),
                    if given.len() == 1 { "does" } else { "do" },
                    file.display()
                ),
            );
            return fail(&[d], file, None);
        }
    }
    let before = match eval_blocks(&checked, args, None) {
        Ok(text) => text,
        Err(d) => return fail(&[d], file, None),
    };
    print!("{before}");
    if checked.trains.is_empty() {
        return ExitCode::SUCCESS;
    }
    let trained = match netc::commands::train::train_command(&checked, file, &run_options(args)) {
        Ok(t) => t,
        Err(d) => return fail(&[d], file, None),
    };
    match eval_blocks(&checked, args, Some(&trained)) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(d) => fail(&[d], file, None),
    }
}

/// Run eval blocks of a `netc run`; what they print on stdout (with `--json` the eval text
/// goes to stderr, so that stdout stays one JSON object). Eval blocks that call the model
/// this run trains run after training, on its trained parameters (a language model's
/// sample, a caption): with `trained` None, the others run (from `--load` or the seed);
/// with `trained` Some, those, on its weights.
fn eval_blocks(checked: &Checked, args: &RunArgs, trained: Option<&Trained>) -> Result<String, Diagnostic> {
    let trained_model = netc::training::find(checked, args.train.as_deref()).ok().map(|(t, _)| format!("{}.", t.model));
    let calls_trained =
        |e: &EvalDecl| trained_model.as_ref().is_some_and(|m| e.graph.params.iter().any(|p| p.name.starts_with(m)));
    let mut text = String::new();
    for e in checked.evals.iter().filter(|e| calls_trained(e) == trained.is_some()) {
        let exec = if args.engine == EngineKind::Interp {
            netc::commands::eval::Exec::Interp
        } else {
            netc::commands::eval::Exec::Jit
        };
        let opts = netc::codegen::CompileOptions { checked: args.checked, conv: args.conv, ..Default::default() };
        let seed = args.seed.unwrap_or(0);
        let out = match trained {
            Some(t) => {
                netc::commands::eval::evaluate_weights(e, seed, exec, &opts, Some((&t.weights, "the trained model")))
            }
            None => netc::commands::eval::evaluate_loaded(e, seed, exec, &opts, args.load.as_deref()),
        }
        .map_err(|msg| netc::commands::train::bounds_diagnostic(Diagnostic::new("E-eval", msg)))?;
        if args.stats && !args.quiet {
            eprintln!("{}", netc::commands::eval::format_stats(e.name.as_deref(), &out));
        }
        if !args.quiet {
            let shown = netc::commands::eval::format_eval(e.name.as_deref(), &out);
            if args.json {
                eprint!("{shown}");
            } else {
                text.push_str(&shown);
            }
        }
    }
    Ok(text)
}

/// The training settings of a `netc run`.
fn run_options(args: &RunArgs) -> netc::commands::train::RunOptions {
    netc::commands::train::RunOptions {
        train: args.train.clone(),
        overrides: netc::training::Overrides {
            steps: args.steps,
            epochs: args.epochs,
            batch: args.batch,
            lr: args.lr,
            seed: args.seed,
        },
        quiet: args.quiet,
        json: args.json,
        plot: args.plot.clone(),
        save: args.save.clone(),
        load: args.load.clone(),
        init_from: args.init_from.clone(),
        resume: args.resume.clone(),
        stop_after: args.stop_after,
        data_dir: args.data_dir.clone(),
        stats: args.stats,
        engine: args.engine,
        memory_limit: args.memory_limit.map_or_else(netc::ir::limits::default_limit, |m| m.saturating_mul(1 << 20)),
        checked: args.checked,
        conv: args.conv,
    }
}

struct GraphOptions {
    values: bool,
    optimize: bool,
    print_after: Option<String>,
    name: Option<String>,
    load: Option<PathBuf>,
}

fn cmd_graph(file: &Path, format: GraphFormat, output: Option<&Path>, o: &GraphOptions) -> ExitCode {
    let (_, checked) = match load(file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if let Some(out) = output {
        if let Err(d) = netc::commands::train::check_output_path(out, "-o") {
            return fail(&[d], file, None);
        }
    }
    if o.load.is_some() && !o.values {
        let d = Diagnostic::new("E-usage", "--load gives the values drawn by --values; add --values");
        return fail(&[d], file, None);
    }
    let picture = match netc::commands::graph::picture(
        &checked,
        o.name.as_deref(),
        o.values,
        o.optimize,
        o.print_after.as_deref(),
        o.load.as_deref(),
    ) {
        Ok(p) => p,
        Err(msg) => return fail(&[Diagnostic::new("E-graph", msg)], file, None),
    };
    let format_is_dot = format == GraphFormat::Dot;
    let text = match format {
        GraphFormat::Dot => picture.dot,
        GraphFormat::Text => picture.text,
    };
    let Some(out) = output else {
        print!("{text}");
        return ExitCode::SUCCESS;
    };
    let write = |path: &Path, bytes: &[u8]| {
        files::write_atomic(path, bytes, &[file])
            .map_err(|e| fail(&[Diagnostic::new("E-io", format!("cannot write {}: {e}", path.display()))], file, None))
    };
    if !format_is_dot || out.extension().is_none_or(|e| e != "svg") {
        return match write(out, text.as_bytes()) {
            Ok(()) => {
                eprintln!("wrote {}", out.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        };
    }
    // An SVG: the DOT text beside it, and Graphviz's rendering of it, each written atomically.
    let dot_path = out.with_extension("dot");
    if let Err((path, e)) = files::check_output_paths(&[&dot_path, out], &[file]) {
        return fail(&[Diagnostic::new("E-io", format!("cannot write {}: {e}", path.display()))], file, None);
    }
    if let Err(code) = write(&dot_path, text.as_bytes()) {
        return code;
    }
    match std::process::Command::new("dot").arg("-Tsvg").arg(&dot_path).output() {
        Ok(r) if r.status.success() => match write(out, &r.stdout) {
            Ok(()) => {
                eprintln!("wrote {} and {}", dot_path.display(), out.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Ok(_) => fail(&[Diagnostic::new("E-io", "Graphviz `dot` failed to render the graph")], file, None),
        Err(_) => {
            eprintln!(
                "wrote {}; no SVG: rendering needs Graphviz's `dot` on PATH (e.g. `apt install graphviz` or `brew install graphviz`), or open the .dot elsewhere",
                dot_path.display()
            );
            ExitCode::SUCCESS
        }
    }
}

fn cmd_gradcheck(file: &Path, threshold: f64, batch: usize, elements: usize) -> ExitCode {
    if !(threshold.is_finite() && threshold > 0.0) {
        let d = Diagnostic::new("E-usage", format!("--threshold must be a positive finite number, not {threshold}"))
            .help("a relative error bound such as 1e-6");
        return fail(&[d], file, None);
    }
    let (_, checked) = match load(file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    match netc::commands::graph::gradcheck(&checked, batch, elements, threshold) {
        Ok((report, ok)) => {
            print!("{report}");
            if ok {
                ExitCode::SUCCESS
            } else {
                let d = Diagnostic::new(
                    "E-gradcheck",
                    format!("a relative error is above {threshold:e}, or every element of a tensor was at a kink"),
                );
                fail(&[d], file, None)
            }
        }
        Err(msg) => fail(&[Diagnostic::new("E-gradcheck", msg)], file, None),
    }
}
