//! The `netc` command line: reads a `.net` file, runs the pipeline, reports diagnostics.
//! Exit codes: 0 success, 1 bad input (with a diagnostic), 2 a command not implemented yet.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use netc::check::{self, Checked};
use netc::diag::{self, Diagnostic, SourceFile};

#[derive(Parser)]
#[command(name = "netc", version, about = "A compiler for a small language that describes neural networks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train and evaluate the models of a .net file (runs its eval and train blocks).
    Run { file: PathBuf },
    /// Type-check a .net file: print each model's inputs, outputs and parameter count.
    Check { file: PathBuf },
    /// Draw the forward and backward computational graphs (Graphviz DOT, or text).
    Graph { file: PathBuf },
    /// Compare analytic gradients with finite differences.
    Gradcheck { file: PathBuf },
    /// Compile a model into an object file and a C header.
    Build { file: PathBuf },
    /// An interactive prompt that JIT-compiles every line.
    Repl,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file } => cmd_check(&file),
        Command::Run { .. } => not_yet("run", 3),
        Command::Graph { .. } => not_yet("graph", 3),
        Command::Gradcheck { .. } => not_yet("gradcheck", 3),
        Command::Build { .. } => not_yet("build", 6),
        Command::Repl => not_yet("repl", 7),
    }
}

fn not_yet(cmd: &str, issue: u32) -> ExitCode {
    eprintln!("netc {cmd}: not implemented yet (planned in issue #{issue})");
    ExitCode::from(2)
}

/// Print diagnostics to stderr (colored on a terminal) and return exit code 1.
fn fail(diags: &[Diagnostic], file: &Path, src: Option<&str>) -> ExitCode {
    let name = file.display().to_string();
    let source = src.map(|text| SourceFile { name: &name, text });
    eprint!("{}", diag::render(diags, source.as_ref(), std::io::stderr().is_terminal()));
    ExitCode::from(1)
}

/// Read a source file; a missing file or invalid UTF-8 is a diagnostic.
fn read_source(file: &Path) -> Result<String, Diagnostic> {
    let bytes = std::fs::read(file)
        .map_err(|e| Diagnostic::new("E-io", format!("cannot read {}: {}", file.display(), io_reason(&e))))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let src = String::from_utf8_lossy(e.as_bytes());
        let line = src[..at.min(src.len())].lines().count().max(1);
        Diagnostic::new(
            "E-io",
            format!("{} is not UTF-8 text: invalid byte at offset {at} (line {line})", file.display()),
        )
    })
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
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
    print!("{}", netc::report::summary(&checked));
    ExitCode::SUCCESS
}
