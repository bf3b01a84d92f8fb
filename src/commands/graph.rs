//! The commands that show what netc does with a program: `netc graph` (pictures and text of
//! the forward and backward graphs) and `netc gradcheck` (analytic vs numerical gradients).

use std::collections::HashMap;
use std::fmt::Write;

use crate::frontend::checked::Checked;
use crate::ir::graph::{Dim, Graph, InputKind, NodeId, Op, ParamKind};
use crate::ir::tensor::Tensor;
use crate::runtime::rng::Rng;

/// The graph to draw or check: a graph, the scalar to differentiate, what to differentiate it
/// wrt, and values for its inputs and parameters.
pub struct Target {
    pub title: String,
    pub graph: Graph,
    pub of: NodeId,
    pub wrt: Vec<(String, NodeId)>,
    pub inputs: Vec<Tensor>,
    pub params: Vec<Tensor>,
}

/// Random inputs for a graph: a batch of `batch` for symbolic dims, Gaussian data, labels and
/// ids uniform over the classes or rows they index (`Graph::index_use`).
pub fn random_inputs(g: &Graph, batch: usize, seed: u64) -> Vec<Tensor> {
    let mut rng = Rng::new(seed);
    g.inputs
        .iter()
        .enumerate()
        .map(|(index, info)| {
            let shape: Vec<usize> = info
                .shape
                .iter()
                .map(|d| match d {
                    Dim::Known(n) => *n,
                    Dim::Sym(_) => batch,
                })
                .collect();
            let n: usize = shape.iter().product();
            // Class indices or row ids for inputs that index (below the axis they index), small
            // whole numbers for other integer inputs, Gaussian values for the rest.
            let data = match (info.kind, g.index_use(index).bound(), info.integer) {
                // Fixed random numbers (dropout masks) of step 0: central differences see the
                // same mask at every perturbation.
                (InputKind::RandomKey, _, _) => crate::ir::ops::random::key(seed, 0).data,
                (_, Some(k), _) => (0..n).map(|_| rng.below(k as u64) as f64).collect(),
                (_, None, true) => (0..n).map(|_| rng.below(2) as f64).collect(),
                _ => (0..n).map(|_| rng.normal()).collect(),
            };
            Tensor::new(shape, data)
        })
        .collect()
}

/// Every differentiable target of a program: each eval `grad` request, each train block's
/// loss (wrt parameters and data inputs). `command` names the command in a memory error.
pub fn targets(c: &Checked, batch: usize, command: &str) -> Result<Vec<Target>, String> {
    let limit = crate::ir::limits::default_limit();
    for g in c.evals.iter().map(|e| &e.graph).chain(c.trains.iter().map(|t| &t.graph)) {
        crate::ir::limits::check(g, batch, limit, command).map_err(|d| d.message)?;
    }
    let mut out = vec![];
    for e in &c.evals {
        for req in &e.grads {
            out.push(Target {
                title: format!("eval {}: {}", e.name.as_deref().unwrap_or("(unnamed)"), req.of_name),
                graph: e.graph.clone(),
                of: req.of,
                wrt: req.wrt.clone(),
                inputs: e.values.clone(),
                params: crate::runtime::params::init_params(&e.graph, 0),
            });
        }
    }
    for t in &c.trains {
        let g = t.graph.clone();
        let Some(&(_, loss)) = g.outputs.iter().find(|(n, _)| n == "loss") else { continue };
        let mut wrt: Vec<(String, NodeId)> = vec![];
        // Integer inputs (declared `int`, or read as indices) have no derivative: perturbing
        // them is not defined.
        let is_integer = |index: usize| g.inputs[index].integer || g.index_use(index).bound().is_some();
        for (i, node) in g.nodes.iter().enumerate() {
            match node.op {
                Op::Param { index } if g.params[index].kind == ParamKind::Trainable => {
                    wrt.push((g.params[index].name.clone(), NodeId(i as u32)))
                }
                Op::Input { index } if g.inputs[index].kind == InputKind::Data && !is_integer(index) => {
                    wrt.push((g.inputs[index].name.clone(), NodeId(i as u32)))
                }
                _ => {}
            }
        }
        out.push(Target {
            title: format!("train {}: loss", t.name),
            inputs: random_inputs(&g, batch, t.seed),
            params: crate::runtime::params::init_params(&g, t.seed),
            graph: g,
            of: loss,
            wrt,
        });
    }
    Ok(out)
}

pub struct Picture {
    pub dot: String,
    pub text: String,
}

/// The forward and backward graphs of the named (or first) target, optionally with values.
///
/// With `optimize`, the passes of `opt` run on the whole (forward + backward) graph first, and
/// with `print_after`, the text form is the graph after that pass.
pub fn picture(
    c: &Checked,
    name: Option<&str>,
    values: bool,
    optimize: bool,
    print_after: Option<&str>,
    load: Option<&std::path::Path>,
) -> Result<Picture, String> {
    let all = targets(c, 4, "graph")?;
    let mut target = match name {
        Some(n) => {
            all.into_iter().find(|t| t.title.contains(n)).ok_or_else(|| format!("nothing named `{n}` to draw"))?
        }
        None => all.into_iter().next().ok_or("the file has no eval `grad` request and no train block to draw")?,
    };
    if let Some(path) = load {
        // The parameters' trained values instead of their initialisers.
        let weights = crate::runtime::weights::load_params(path, &target.graph.params).map_err(|d| d.message)?;
        target.params =
            weights.into_iter().map(|w| Tensor::new(w.shape, w.data.iter().map(|&v| v as f64).collect())).collect();
    }
    let mut g = target.graph;
    let forward_len = g.nodes.len();
    // With values, differentiate wrt every forward node that feeds `of`, so each edge of the
    // picture gets its gradient (but integer inputs, which have none); without, wrt the
    // target's variables only.
    let feeds = ancestors(&g, target.of);
    let integer = |id: NodeId| matches!(g.node(id).op, Op::Input { index } if g.inputs[index].integer);
    let wrt_all: Vec<NodeId> = if values {
        (0..forward_len as u32).map(NodeId).filter(|&id| feeds[id.index()] && !integer(id)).collect()
    } else {
        target.wrt.iter().map(|w| w.1).filter(|id| feeds[id.index()]).collect()
    };
    let grads = crate::ir::autodiff::differentiate(&mut g, target.of, &wrt_all)?;
    if (optimize || print_after.is_some()) && !values {
        // Keep the value and its gradients alive through dead-code elimination.
        g.outputs = vec![(target.title.rsplit(": ").next().unwrap_or("f").to_string(), target.of)];
        for (id, grad) in wrt_all.iter().zip(&grads) {
            let name = g.node(*id).name.clone().unwrap_or_else(|| id.to_string());
            g.outputs.push((format!("d_{name}"), *grad));
        }
        let after = crate::ir::opt::optimize(&mut g, print_after)?;
        let text = if print_after.is_some() { after } else { g.to_text() };
        return Ok(Picture { dot: crate::commands::dot::to_dot(&g, g.nodes.len(), None), text });
    }
    let mut text = String::new();
    for (i, line) in g.to_text().lines().enumerate() {
        if i == forward_len {
            text.push_str("# ---- backward ----\n");
        }
        let _ = writeln!(text, "{line}");
    }
    let dot = if values {
        let vals = crate::ir::interp::run(&g, &target.inputs, &target.params)?;
        let grad_map: HashMap<NodeId, &Tensor> =
            wrt_all.iter().zip(&grads).map(|(&n, &gid)| (n, &vals[gid.index()])).collect();
        // Only the forward graph is drawn with values: it is the lecture's picture.
        let mut forward = g.clone();
        forward.nodes.truncate(forward_len);
        // The picture ends at the differentiated value, whose gradient is 1.
        forward.outputs = vec![(target.title.rsplit(": ").next().unwrap_or("f").to_string(), target.of)];
        crate::commands::dot::to_dot(
            &forward,
            forward_len,
            Some(&crate::commands::dot::EdgeValues { values: &vals, grads: grad_map }),
        )
    } else {
        crate::commands::dot::to_dot(&g, forward_len, None)
    };
    Ok(Picture { dot, text })
}

/// Which nodes `of` depends on (including itself).
fn ancestors(g: &Graph, of: NodeId) -> Vec<bool> {
    let mut seen = vec![false; g.nodes.len()];
    seen[of.index()] = true;
    for i in (0..=of.index()).rev() {
        if seen[i] {
            for input in &g.nodes[i].inputs {
                seen[input.index()] = true;
            }
        }
    }
    seen
}

/// Check every target's gradients; returns the report and whether all are within `threshold`.
/// At most `elements` elements of each tensor are checked (a spread sample of larger ones).
pub fn gradcheck(c: &Checked, batch: usize, elements: usize, threshold: f64) -> Result<(String, bool), String> {
    let all = targets(c, batch, "gradcheck")?;
    if all.is_empty() {
        return Err("the file has no eval `grad` request and no train block to check".into());
    }
    let mut report = String::new();
    let mut ok = true;
    for t in &all {
        // Each checked element costs two interpreted forward passes, and as many of the
        // forward and backward graph for second derivatives (about three times the work).
        let (_, values) = crate::ir::limits::sizes(&t.graph, batch);
        let passes: usize = t
            .wrt
            .iter()
            .map(|(_, id)| 8 * elements.min(t.graph.shape(*id).iter().map(|d| d.known().unwrap_or(batch)).product()))
            .sum();
        if values.saturating_mul(passes as u128) > 4 << 30 {
            return Err(format!(
                "{}: too large to check by finite differences in the interpreter ({} forward passes over {} of values); check a smaller version of the model, or a smaller --batch",
                t.title,
                passes,
                crate::ir::limits::human(values)
            ));
        }
    }
    for t in all {
        let _ = writeln!(report, "{} (batch {batch}, f64 central differences)", t.title);
        let wrt: Vec<NodeId> = t.wrt.iter().map(|w| w.1).collect();
        let first = crate::ir::gradcheck::check_elements(&t.graph, t.of, &wrt, &t.inputs, &t.params, 1e-6, elements)?;
        ok &= report_lines(&mut report, &t, &first, batch, threshold);
        // Second derivatives: the gradient of Σ v·∂f/∂x against central differences of the
        // analytic first derivative.
        let second = crate::ir::gradcheck::check_second(&t.graph, t.of, &wrt, &t.inputs, &t.params, 1e-6, elements)?;
        let _ = writeln!(report, "  second derivatives (d/dx of Σ v·∂f/∂x, central differences of the gradient):");
        ok &= report_lines(&mut report, &t, &second, batch, threshold);
    }
    Ok((report, ok))
}

/// One line per checked tensor; whether all are within `threshold`.
fn report_lines(
    report: &mut String,
    t: &Target,
    results: &[crate::ir::gradcheck::GradReport],
    batch: usize,
    threshold: f64,
) -> bool {
    let mut ok = true;
    for ((name, id), r) in t.wrt.iter().zip(results) {
        let shape = t.graph.shape_str(t.graph.shape(*id));
        // A leaf whose every checked element sits on a kink was not checked at all.
        let nothing_compared = r.checked > 0 && r.compared() == 0;
        let pass = r.max_rel_error <= threshold && !nothing_compared;
        ok &= pass;
        let total: usize = t.graph.shape(*id).iter().map(|d| d.known().unwrap_or(batch)).product();
        let verdict = if nothing_compared {
            "NOT CHECKED"
        } else if pass {
            "ok"
        } else {
            "FAIL"
        };
        let mut line = format!(
            "  {name:<16} {shape:<16} max relative error {:.2e}, absolute {:.1e}  {verdict}  ({} of {total} elements checked",
            r.max_rel_error, r.max_abs_error, r.checked
        );
        if !r.skipped.is_empty() {
            line.push_str(&format!(", {} at a kink skipped", r.skipped.len()));
        }
        let _ = writeln!(report, "{line})");
        for s in r.skipped.iter().take(3) {
            // A second derivative's kink may be in the gradient's own nodes, after the graph's.
            let (what, named) = match t.graph.nodes.get(s.node.index()) {
                Some(node) => (
                    crate::ir::ops::describe(&node.op, &t.graph),
                    node.name.as_ref().map(|n| format!(" `{n}`")).unwrap_or_default(),
                ),
                None => ("a node of the gradient".to_string(), String::new()),
            };
            let _ = writeln!(
                report,
                "      skipped element {}: {what} ({}{named}) switches branch there; L's slopes are {:.6} left, {:.6} right",
                s.element, s.node, s.slopes.0, s.slopes.1
            );
        }
        if r.skipped.len() > 3 {
            let _ = writeln!(report, "      ... and {} more", r.skipped.len() - 3);
        }
        if nothing_compared {
            let _ = writeln!(report, "      every checked element is at a kink: nothing was compared");
        } else if !pass {
            let _ = writeln!(
                report,
                "      worst element {}: analytic {:e}, numeric {:e}",
                r.worst, r.analytic.data[r.worst], r.numeric.data[r.worst]
            );
        }
    }
    ok
}
