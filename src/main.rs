//! The `netc` command line: reads a `.net` file, runs the pipeline, reports diagnostics.
//! Exit codes: 0 success, 1 bad input (with a diagnostic).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use netc::diag::{self, Diagnostic, SourceFile};
use netc::frontend::check;
use netc::frontend::checked::Checked;
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
    /// Start from saved weights.
    #[arg(long)]
    load: Option<PathBuf>,
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
    /// Execute with the JIT (default) or the reference interpreter.
    #[arg(long, default_value = "jit")]
    engine: String,
    /// Refuse models needing more memory than this many MiB (default: 3/4 of the machine's).
    #[arg(long, value_name = "MIB")]
    memory_limit: Option<u64>,
    /// Check every memory access of the generated code against its buffer (slower; for
    /// debugging netc): an access outside is refused and reported, exit code 1.
    #[arg(long)]
    checked: bool,
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
}

#[derive(Subcommand)]
enum Command {
    /// Train and evaluate the models of a .net file (runs its eval and train blocks).
    Run(RunArgs),
    /// Type-check a .net file: print each model's inputs, outputs and parameter count.
    Check { file: PathBuf },
    /// Draw the forward and backward computational graphs (Graphviz DOT, or text).
    Graph {
        file: PathBuf,
        /// dot (Graphviz) or text (one line per node).
        #[arg(long, default_value = "dot")]
        format: String,
        /// Label every edge with its forward value and its gradient (the lecture's picture).
        #[arg(long)]
        values: bool,
        /// Write here instead of stdout; a .svg name renders with Graphviz's `dot`.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Which eval, train or model to draw (default: the first).
        #[arg(long)]
        name: Option<String>,
        /// Run the optimisation passes (fold, simplify, cse, dce) on the graph first.
        #[arg(long)]
        optimize: bool,
        /// Print the text form after each run of this pass (fold, simplify, cse or dce).
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
        Command::Check { file } => cmd_check(&file),
        Command::Run(args) => cmd_run(&args),
        Command::Graph { file, format, values, output, name, optimize, print_after } => {
            let opts = GraphOptions { values, optimize, print_after, name };
            cmd_graph(&file, if opts.print_after.is_some() { "text" } else { &format }, output.as_deref(), &opts)
        }
        Command::Gradcheck { file, threshold, batch, all } => {
            cmd_gradcheck(&file, threshold, batch, if all { usize::MAX } else { netc::ir::gradcheck::MAX_CHECKED })
        }
        Command::Build(args) => cmd_build(&args),
        Command::Bench(args) => netc::commands::bench::main(&args, started),
        Command::Repl => match netc::commands::repl::main() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("netc repl: {e}");
                ExitCode::from(1)
            }
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

/// Print diagnostics to stderr (colored on a terminal) and return exit code 1.
fn fail(diags: &[Diagnostic], file: &Path, src: Option<&str>) -> ExitCode {
    let name = file.display().to_string();
    let source = src.map(|text| SourceFile { name: &name, text });
    eprint!("{}", diag::render(diags, source.as_ref(), std::io::stderr().is_terminal()));
    ExitCode::from(1)
}

/// Read a source file: a missing file, one that is not a regular file (a device, a FIFO),
/// one over `files::MAX_SOURCE_BYTES` or invalid UTF-8 is a diagnostic.
fn read_source(file: &Path) -> Result<String, Diagnostic> {
    netc::runtime::files::read_text(file, netc::runtime::files::MAX_SOURCE_BYTES)
        .map_err(|m| Diagnostic::new("E-io", m))
}

/// Read, parse and check a file, or report why not.
fn load(file: &Path) -> Result<(String, Checked), ExitCode> {
    let src = read_source(file).map_err(|d| fail(&[d], file, None))?;
    let checked = check::check_source(&src).map_err(|diags| fail(&diags, file, Some(&src)))?;
    Ok((src, checked))
}

fn cmd_check(file: &Path) -> ExitCode {
    let (_, checked) = match load(file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    print!("{}", netc::commands::report::summary(&checked));
    ExitCode::SUCCESS
}

fn cmd_run(args: &RunArgs) -> ExitCode {
    let file = args.file.as_path();
    let (_, checked) = match load(file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    for e in &checked.evals {
        let exec =
            if args.engine == "interp" { netc::commands::eval::Exec::Interp } else { netc::commands::eval::Exec::Jit };
        match netc::commands::eval::evaluate_checked(e, args.seed.unwrap_or(0), exec, args.checked) {
            Ok(out) => {
                if !args.quiet {
                    print!("{}", netc::commands::eval::format_eval(e.name.as_deref(), &out))
                }
            }
            Err(msg) => {
                return fail(&[netc::commands::train::bounds_diagnostic(Diagnostic::new("E-eval", msg))], file, None)
            }
        }
    }
    if checked.trains.is_empty() {
        return ExitCode::SUCCESS;
    }
    match netc::commands::train::train_command(
        &checked,
        file,
        &netc::commands::train::RunOptions {
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
            resume: args.resume.clone(),
            stop_after: args.stop_after,
            data_dir: args.data_dir.clone(),
            stats: args.stats,
            engine: args.engine.clone(),
            memory_limit: args.memory_limit.map_or_else(netc::ir::limits::default_limit, |m| m.saturating_mul(1 << 20)),
            checked: args.checked,
        },
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(d) => fail(&[d], file, None),
    }
}

struct GraphOptions {
    values: bool,
    optimize: bool,
    print_after: Option<String>,
    name: Option<String>,
}

fn cmd_graph(file: &Path, format: &str, output: Option<&Path>, o: &GraphOptions) -> ExitCode {
    let (_, checked) = match load(file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let picture = match netc::commands::graph::picture(
        &checked,
        o.name.as_deref(),
        o.values,
        o.optimize,
        o.print_after.as_deref(),
    ) {
        Ok(p) => p,
        Err(msg) => return fail(&[Diagnostic::new("E-graph", msg)], file, None),
    };
    let text = match format {
        "dot" => picture.dot,
        "text" => picture.text,
        other => {
            return fail(
                &[Diagnostic::new("E-usage", format!("unknown format `{other}`; use dot or text"))],
                file,
                None,
            )
        }
    };
    let Some(out) = output else {
        print!("{text}");
        return ExitCode::SUCCESS;
    };
    let write = |path: &Path, bytes: &[u8]| {
        files::write_atomic(path, bytes, &[file])
            .map_err(|e| fail(&[Diagnostic::new("E-io", format!("cannot write {}: {e}", path.display()))], file, None))
    };
    if format != "dot" || out.extension().is_none_or(|e| e != "svg") {
        return write(out, text.as_bytes()).map_or_else(|code| code, |()| ExitCode::SUCCESS);
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
                "wrote {}; Graphviz `dot` is not installed, so no SVG (install graphviz, or open the .dot elsewhere)",
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
                eprintln!("gradcheck failed: a relative error is above {threshold:e}");
                ExitCode::from(1)
            }
        }
        Err(msg) => fail(&[Diagnostic::new("E-gradcheck", msg)], file, None),
    }
}
