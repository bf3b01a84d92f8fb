//! What `netc run` does with a train block: load the data, build and compile the train step,
//! train with a progress bar, report, plot and save. (Argument parsing is in main.rs.)

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;
use crate::frontend::checked::Checked;
use crate::training::{self, Engine, Overrides, Progress, Report};

pub struct RunOptions {
    pub overrides: Overrides,
    pub quiet: bool,
    pub json: bool,
    pub plot: Option<PathBuf>,
    pub save: Option<PathBuf>,
    pub load: Option<PathBuf>,
    /// Continue from a checkpoint written by `--save`: parameters, optimizer state and step.
    pub resume: Option<PathBuf>,
    /// Stop after this many steps in all (the rest of the run can be resumed).
    pub stop_after: Option<usize>,
    /// Resolve data paths against this directory instead of the .net file's.
    pub data_dir: Option<PathBuf>,
    pub stats: bool,
    pub engine: String,
    /// Refuse models whose parameters or activations need more bytes than this.
    pub memory_limit: u64,
    /// Compile with bounds checks (`CompileOptions::checked`; JIT engine only).
    pub checked: bool,
}

/// A progress bar on stderr (indicatif), only when stderr is a terminal.
struct Bar(Option<indicatif::ProgressBar>);

impl Progress for Bar {
    fn start(&mut self, total: usize) {
        if let Some(old) = &self.0 {
            old.finish_and_clear();
        }
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} step {pos}/{len}  {msg}  eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        self.0 = Some(bar);
    }
    fn update(&mut self, step: usize, loss: f32, samples_per_second: f64) {
        if let Some(b) = &self.0 {
            b.set_position(step as u64);
            b.set_message(format!("loss {loss:.4}  {samples_per_second:.0} samples/s"));
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.0.take() {
            b.finish_and_clear();
        }
    }
}

fn err(msg: impl Into<String>) -> Diagnostic {
    Diagnostic::new("E-run", msg)
}

pub fn train_command(c: &Checked, file: &Path, opts: &RunOptions) -> Result<(), Diagnostic> {
    let text = train_report(c, file, opts)?;
    print!("{text}");
    Ok(())
}

/// Train the program's train block and return what `netc run` prints.
pub fn train_report(c: &Checked, file: &Path, opts: &RunOptions) -> Result<String, Diagnostic> {
    if opts.overrides.batch == Some(0) {
        return Err(err("--batch must be at least 1"));
    }
    let (t, d) = training::find(c).ok_or_else(|| err("the file has no train block"))?;
    let mut t = t.clone();
    opts.overrides.apply(&mut t);
    let d = d.ok_or_else(|| err(format!("train {}: no data block to train on (add `data: NAME`)", t.model)))?;
    let base = match &opts.data_dir {
        Some(dir) => dir.as_path(),
        None => file.parent().unwrap_or(Path::new(".")),
    };
    let (input, sample, classes) = training::model_signature(&t.graph).map_err(err)?;
    let quiet = opts.quiet || opts.json;
    let mut note = |missing: &Path| {
        if !quiet {
            eprintln!("note: {} not found; data `{}` uses its `otherwise` source", missing.display(), d.name);
        }
    };
    let data = training::load_data(d, base, &input, &sample, classes, &mut note)?;
    training::check_integer_input(&t.graph, &data)?;

    let batch = t.batch.unwrap_or(data.train.len()).max(1);
    crate::ir::limits::check(&t.graph, batch, opts.memory_limit, &format!("train {}", t.model))?;
    let program = training::TrainGraphs::new(&t).map_err(err)?;
    let model_params = program.step.model_params;
    // Weights about to be loaded are not drawn (AlexNet's take seconds): zeros hold their place.
    let mut params = if opts.resume.is_some() || opts.load.is_some() {
        program
            .step
            .graph
            .params
            .iter()
            .map(|p| vec![0.0; p.shape.iter().map(|d| d.known().unwrap_or(1)).product()])
            .collect()
    } else {
        training::initial_params(&program.step.graph, t.seed)
    };
    let names: Vec<(String, Vec<usize>)> = program
        .step
        .graph
        .params
        .iter()
        .map(|p| (p.name.clone(), p.shape.iter().map(|d| d.known().unwrap_or(1)).collect()))
        .collect();
    let mut resume_at = 0;
    if let Some(path) = &opts.resume {
        let expected: Vec<(&str, &[usize])> = names.iter().map(|(n, s)| (n.as_str(), s.as_slice())).collect();
        for (i, w) in crate::runtime::weights::load_for(path, &expected)?.into_iter().enumerate() {
            params[i] = w.data;
        }
        let meta = crate::runtime::weights::load_metadata(path)?;
        resume_at = meta.get("netc.step").and_then(|s| s.parse().ok()).ok_or_else(|| {
            err(format!("{}: not a checkpoint (no step count); use --load for plain weights", path.display()))
        })?;
    } else if let Some(path) = &opts.load {
        let g = &program.step.graph;
        let shapes: Vec<(String, Vec<usize>)> = g.params[..model_params]
            .iter()
            .map(|p| (p.name.clone(), p.shape.iter().map(|d| d.known().unwrap_or(1)).collect()))
            .collect();
        let expected: Vec<(&str, &[usize])> = shapes.iter().map(|(n, s)| (n.as_str(), s.as_slice())).collect();
        for (i, w) in crate::runtime::weights::load_for(path, &expected)?.into_iter().enumerate() {
            params[i] = w.data;
        }
    }
    let mut engine: Box<dyn Engine> = match opts.engine.as_str() {
        "interp" => Box::new(training::Interpreter::new(program)),
        "jit" => crate::training::jit_engine::jit_engine_with(
            program,
            &crate::codegen::CompileOptions { checked: opts.checked, ..Default::default() },
        )?,
        other => return Err(err(format!("unknown engine `{other}`; use jit or interp"))),
    };
    if opts.stats && !opts.quiet {
        eprintln!("{}", engine.stats());
    }

    let _ = ctrlc::set_handler(|| training::INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst));
    let show_bar = !opts.quiet && !opts.json && std::io::stderr().is_terminal();
    let mut bar = Bar(None);
    let mut silent = training::Silent;
    let progress: &mut dyn Progress = if show_bar { &mut bar } else { &mut silent };
    let report = training::train(&t, &data, engine.as_mut(), &mut params, progress, resume_at, opts.stop_after)
        .map_err(bounds_diagnostic)?;

    if let Some(path) = &opts.plot {
        plot_losses(path, &report.losses)?;
    }
    if let Some(path) = &opts.save {
        // The model's parameters under their names, the optimizer state after them, and the
        // step count: a weights file that is also a checkpoint for --resume.
        let refs: Vec<crate::runtime::weights::WeightRef> =
            names.iter().zip(&params).map(|((n, s), v)| (n.as_str(), s.as_slice(), v.as_slice())).collect();
        // One key: a map of several would serialise in random order, and the same run must
        // write the same bytes.
        let meta = [("netc.step".to_string(), report.steps.to_string())];
        crate::runtime::weights::save_with_metadata(path, &refs, Some(meta.into_iter().collect()))?;
    }
    Ok(if opts.json {
        format!("{}\n", json(&report))
    } else if !opts.quiet {
        table(&t.model, &report)
    } else {
        String::new()
    })
}

/// A refused out-of-bounds access of checked mode (`jit::Compiled::run`'s "bounds check
/// failed: ..." error) as an `E-bounds` diagnostic; other diagnostics unchanged.
pub fn bounds_diagnostic(d: Diagnostic) -> Diagnostic {
    if !d.message.starts_with(crate::drivers::jit::BOUNDS_FAILED) {
        return d;
    }
    Diagnostic { code: "E-bounds", ..d }
        .help("this is a netc bug: its generated code went outside a buffer; please report it with the .net file")
}

fn fmt_opt(x: Option<f64>, pct: bool) -> String {
    match x {
        Some(v) if pct => format!("{:.2}%", 100.0 * v),
        Some(v) => format!("{v:.4}"),
        None => "-".into(),
    }
}

pub fn table(model: &str, r: &Report) -> String {
    let mut s = format!(
        "trained {model}: {} steps in {:.2} s ({:.0} samples/s){}\n",
        r.steps,
        r.seconds,
        r.samples_per_second,
        if r.interrupted { ", interrupted" } else { "" }
    );
    s.push_str("        loss      accuracy\n");
    s.push_str(&format!("train   {:<9} {}\n", fmt_opt(Some(r.train_loss), false), fmt_opt(r.train_accuracy, true)));
    s.push_str(&format!("test    {:<9} {}\n", fmt_opt(r.test_loss, false), fmt_opt(r.test_accuracy, true)));
    s
}

fn json_num(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v}"),
        _ => "null".into(),
    }
}

pub fn json(r: &Report) -> String {
    format!(
        "{{\"steps\": {}, \"seconds\": {}, \"final_loss\": {}, \"train_loss\": {}, \"train_accuracy\": {}, \"test_loss\": {}, \"test_accuracy\": {}, \"samples_per_second\": {}, \"interrupted\": {}}}",
        r.steps,
        json_num(Some(r.seconds)),
        json_num(Some(r.final_loss)),
        json_num(Some(r.train_loss)),
        json_num(r.train_accuracy),
        json_num(r.test_loss),
        json_num(r.test_accuracy),
        json_num(Some(r.samples_per_second)),
        r.interrupted
    )
}

/// The loss curve as an SVG line chart.
pub fn plot_losses(path: &Path, losses: &[f32]) -> Result<(), Diagnostic> {
    use plotters::prelude::*;
    let io = |e: String| Diagnostic::new("E-io", format!("{}: cannot draw the plot: {e}", path.display()));
    let finite: Vec<(f32, f32)> =
        losses.iter().enumerate().filter(|(_, l)| l.is_finite()).map(|(i, &l)| (i as f32 + 1.0, l)).collect();
    let max = finite.iter().map(|p| p.1).fold(f32::MIN, f32::max).max(1e-6);
    let min = finite.iter().map(|p| p.1).fold(f32::MAX, f32::min).min(max);
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| io(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("training loss", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(1f32..(losses.len().max(2) as f32), min..max)
        .map_err(|e| io(e.to_string()))?;
    chart.configure_mesh().x_desc("step").y_desc("loss").draw().map_err(|e| io(e.to_string()))?;
    chart.draw_series(LineSeries::new(finite, &BLUE)).map_err(|e| io(e.to_string()))?;
    root.present().map_err(|e| io(e.to_string()))?;
    Ok(())
}
