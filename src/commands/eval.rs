//! `netc run` for eval blocks: differentiate the requested values, evaluate the graph, print
//! each value and gradient. (Training runs live in `train.rs`.)

use crate::frontend::checked::EvalDecl;
use crate::ir::autodiff;
use crate::ir::graph::NodeId;
use crate::ir::tensor::Tensor;

/// The values of an eval block: every shown expression, and per `grad` request the value of
/// `f` and its gradient wrt each variable.
pub struct EvalOutput {
    pub shows: Vec<(String, Tensor)>,
    /// Per show, the alphabet that prints it as text (`decode`).
    pub alphabets: Vec<Option<String>>,
    pub grads: Vec<GradValues>,
    /// The compiled function's statistics (`netc run --stats`); None when interpreted.
    pub stats: Option<crate::drivers::jit::Stats>,
}

/// How an eval block is executed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Exec {
    /// Compiled with Cranelift.
    Jit,
    /// The reference interpreter.
    Interp,
}

/// (name of f, value of f, [(variable, gradient)]) of one `grad` request.
pub type GradValues = (String, Tensor, Vec<(String, Tensor)>);

/// Evaluate an eval block (parameters of called models are initialised from `seed`).
pub fn evaluate(e: &EvalDecl, seed: u64) -> Result<EvalOutput, String> {
    evaluate_with(e, seed, Exec::Jit)
}

pub fn evaluate_with(e: &EvalDecl, seed: u64, exec: Exec) -> Result<EvalOutput, String> {
    evaluate_checked(e, seed, exec, false)
}

/// `evaluate_with`, the JIT compiling with bounds checks when `checked`
/// (`CompileOptions::checked`; a refused access is an error starting `jit::BOUNDS_FAILED`).
pub fn evaluate_checked(e: &EvalDecl, seed: u64, exec: Exec, checked: bool) -> Result<EvalOutput, String> {
    let opts = crate::codegen::CompileOptions { checked, ..Default::default() };
    evaluate_loaded(e, seed, exec, &opts, None)
}

/// `evaluate_with`, the JIT compiling with `opts`, and the parameters of called models read
/// from the weights file `load`
/// (`netc run --load`) instead of drawn from `seed`: the parameter `MODEL.NAME` takes the
/// file's tensor `NAME` (the model's own name for it, as `--save` writes it), or `MODEL.NAME`
/// if the file has that.
pub fn evaluate_loaded(
    e: &EvalDecl,
    seed: u64,
    exec: Exec,
    opts: &crate::codegen::CompileOptions,
    load: Option<&std::path::Path>,
) -> Result<EvalOutput, String> {
    let weights = match load {
        Some(path) => Some((crate::runtime::weights::load(path).map_err(|d| d.message)?, path.display().to_string())),
        None => None,
    };
    evaluate_weights(e, seed, exec, opts, weights.as_ref().map(|(w, from)| (w.as_slice(), from.as_str())))
}

/// `evaluate_loaded` with the parameters taken from `weights` (tensors, and where they come
/// from for messages: a file, or "the trained model" after `netc run` trained it).
pub fn evaluate_weights(
    e: &EvalDecl,
    seed: u64,
    exec: Exec,
    opts: &crate::codegen::CompileOptions,
    weights: Option<(&[crate::runtime::weights::Weight], &str)>,
) -> Result<EvalOutput, String> {
    crate::ir::limits::check(&e.graph, 1, crate::ir::limits::default_limit(), "eval").map_err(|d| {
        let help = d.help.clone().unwrap_or_default();
        format!("{} ({help})", d.message)
    })?;
    let mut g = e.graph.clone();
    let mut grad_ids: Vec<Vec<NodeId>> = vec![];
    for req in &e.grads {
        let wrt: Vec<NodeId> = req.wrt.iter().map(|w| w.1).collect();
        grad_ids.push(autodiff::differentiate(&mut g, req.of, &wrt)?);
    }
    // Everything to print becomes an output: the shown values, then per request f and its grads.
    g.outputs = e.shows.iter().map(|(text, id)| (text.clone(), *id)).collect();
    for (req, ids) in e.grads.iter().zip(&grad_ids) {
        g.outputs.push((req.of_name.clone(), req.of));
        for ((name, _), id) in req.wrt.iter().zip(ids) {
            g.outputs.push((format!("d_{name}"), *id));
        }
    }
    let mut params = crate::runtime::params::init_params(&g, seed);
    if let Some((weights, from)) = weights {
        assign_params(&g, weights, from, &mut params)?;
    }
    let (values, stats): (Vec<Tensor>, _) = match exec {
        Exec::Interp => (crate::ir::interp::outputs(&g, &e.values, &params)?, None),
        Exec::Jit => {
            crate::ir::opt::optimize(&mut g, None)?;
            let mut compiled = crate::drivers::jit::compile(&g, opts).map_err(|d| d.message)?;
            let values = compiled.run_tensors(&e.values, &mut params)?;
            (values, Some(compiled.stats()))
        }
    };
    let mut next = values.into_iter();
    let shows = e.shows.iter().map(|(text, _)| (text.clone(), next.next().unwrap_or_default())).collect();
    let grads = e
        .grads
        .iter()
        .map(|req| {
            let f = next.next().unwrap_or_default();
            let per_var = req.wrt.iter().map(|(name, _)| (name.clone(), next.next().unwrap_or_default())).collect();
            (req.of_name.clone(), f, per_var)
        })
        .collect();
    Ok(EvalOutput { shows, alphabets: e.alphabets.clone(), grads, stats })
}

/// Overwrite every parameter with its tensor in `weights` (from `from`): `MODEL.NAME` takes the
/// tensor `MODEL.NAME`, else `NAME`.
fn assign_params(
    g: &crate::ir::graph::Graph,
    weights: &[crate::runtime::weights::Weight],
    from: &str,
    params: &mut [Tensor],
) -> Result<(), String> {
    for (info, value) in g.params.iter().zip(params.iter_mut()) {
        let own_name = info.name.split_once('.').map_or(info.name.as_str(), |(_, rest)| rest);
        let Some(w) =
            weights.iter().find(|w| w.name == info.name).or_else(|| weights.iter().find(|w| w.name == own_name))
        else {
            return Err(format!("{from}: no tensor named `{own_name}` (for `{}`)", info.name));
        };
        if w.shape != value.shape {
            return Err(format!(
                "{from}: tensor `{}` has shape {:?} there, but `{}` is {:?}",
                w.name, w.shape, info.name, value.shape
            ));
        }
        value.data = w.data.iter().map(|&v| v as f64).collect();
    }
    Ok(())
}

/// `name = value`, with a multi-line tensor indented under its name.
fn line(name: &str, t: &Tensor) -> String {
    let text = t.to_string();
    let indent = " ".repeat(name.len() + 5);
    let text = text.replace('\n', &format!("\n{indent}"));
    let shape = if t.shape.is_empty() { String::new() } else { format!("   {:?}", t.shape) };
    format!("  {name} = {text}{shape}\n")
}

/// Token ids as text, one quoted line per row of the last axis: id k is `alphabet`'s k-th
/// character (`?` for an id that is not one).
fn decoded(name: &str, t: &Tensor, alphabet: &str) -> String {
    let chars: Vec<char> = alphabet.chars().collect();
    let row = t.shape.last().copied().unwrap_or(1).max(1);
    let rows: Vec<String> = t
        .data
        .chunks(row)
        .map(|ids| {
            let text: String = ids
                .iter()
                .map(|&id| {
                    let ok = id.fract() == 0.0 && id >= 0.0 && (id as usize) < chars.len();
                    if ok {
                        chars[id as usize]
                    } else {
                        '?'
                    }
                })
                .collect();
            format!("{text:?}")
        })
        .collect();
    let indent = " ".repeat(name.len() + 5);
    format!("  {name} = {}\n", rows.join(&format!("\n{indent}")))
}

/// `netc run --stats` of an eval block: how its graph was compiled, in the form the train
/// step's statistics take.
pub fn format_stats(name: Option<&str>, out: &EvalOutput) -> String {
    let name = name.unwrap_or("(unnamed)");
    match &out.stats {
        Some(s) => format!(
            "eval {name}: compiled in {:.1} ms, {} kernels, workspace {} bytes planned vs {} for every intermediate",
            s.compile_ms, s.kernels, s.planned_bytes, s.naive_bytes
        ),
        None => format!("eval {name}: interpreted (--engine interp), nothing compiled"),
    }
}

pub fn format_eval(name: Option<&str>, out: &EvalOutput) -> String {
    let mut s = format!("eval {}\n", name.unwrap_or("(unnamed)"));
    for (k, (text, t)) in out.shows.iter().enumerate() {
        match out.alphabets.get(k) {
            Some(Some(alphabet)) => s.push_str(&decoded(text, t, alphabet)),
            _ => s.push_str(&line(text, t)),
        }
    }
    for (f, value, grads) in &out.grads {
        s.push_str(&line(f, value));
        for (x, g) in grads {
            s.push_str(&line(&format!("d{f}/d{x}"), g));
        }
    }
    s
}
