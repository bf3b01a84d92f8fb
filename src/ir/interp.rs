//! The reference interpreter, the oracle the compiled code is tested against. Input: a graph
//! and the tensors bound to its inputs and parameters; output: the value of every node.
//!
//! Clarity over speed: each node is evaluated by `ops::eval` (plain loops in f64). For f32
//! graphs every node's result is rounded to f32, so the interpreter sees the same rounding
//! of intermediate values as compiled f32 code (up to the order of summations).

use std::collections::HashMap;
use std::sync::Arc;

use crate::ir::graph::{DType, Dim, Graph, LoopSpec, NodeId, Op, Shape, Slicing};
use crate::ir::ops::{self, Env};
use crate::ir::tensor::Tensor;

/// The value of every node of `g` (indexed by `NodeId`), given one tensor per `g.inputs` and
/// per `g.params`. Symbolic dimensions are bound from the shapes of those tensors.
pub fn run(g: &Graph, inputs: &[Tensor], params: &[Tensor]) -> Result<Vec<Tensor>, String> {
    let symbols = bind_symbols(g, inputs, params)?;
    let env = Env { inputs, params, symbols: &symbols };
    run_in(g, &env, g.dtype)
}

/// Every node's value in `env`, rounded as `dtype` (a loop body runs in its outer graph's).
fn run_in(g: &Graph, env: &Env, dtype: DType) -> Result<Vec<Tensor>, String> {
    let mut loops = Loops::default();
    let mut values: Vec<Tensor> = Vec::with_capacity(g.nodes.len());
    for i in 0..g.nodes.len() {
        let value = eval_node(g, i, &values, env, dtype, &mut loops)?;
        values.push(value);
    }
    Ok(values)
}

/// Re-evaluate only the nodes marked `dirty` (in order), after the tensors of some inputs or
/// parameters changed (their shapes must not). `values` holds every node's value from an
/// earlier `run`; the nodes marked must include every node that depends on a changed tensor.
pub fn rerun(
    g: &Graph,
    inputs: &[Tensor],
    params: &[Tensor],
    values: &mut [Tensor],
    dirty: &[bool],
) -> Result<(), String> {
    let symbols = bind_symbols(g, inputs, params)?;
    let env = Env { inputs, params, symbols: &symbols };
    let mut loops = Loops::default();
    for i in (0..g.nodes.len()).filter(|&i| dirty[i]) {
        values[i] = eval_node(g, i, values, &env, g.dtype, &mut loops)?;
    }
    Ok(())
}

/// The results of the loops run so far, by (spec, operands): the siblings of a loop run it once.
#[derive(Default)]
struct Loops(HashMap<(usize, Vec<NodeId>), Vec<Tensor>>);

/// The value of node `i`, its operands read from `values`.
fn eval_node(
    g: &Graph,
    i: usize,
    values: &[Tensor],
    env: &Env,
    dtype: DType,
    loops: &mut Loops,
) -> Result<Tensor, String> {
    let node = &g.nodes[i];
    let what = || format!("%{i} ({})", ops::describe(&node.op, g));
    let shape = resolve(g, &node.shape, env.symbols).map_err(|e| format!("{}: {e}", what()))?;
    let args: Vec<&Tensor> = node.inputs.iter().map(|x| &values[x.index()]).collect();
    let mut value = match &node.op {
        Op::Loop { spec, output } => {
            let key = (Arc::as_ptr(spec) as usize, node.inputs.clone());
            if !loops.0.contains_key(&key) {
                let results = run_loop(spec, &args, env.symbols, dtype).map_err(|e| format!("{}: {e}", what()))?;
                loops.0.insert(key.clone(), results);
            }
            loops.0[&key][*output].clone()
        }
        op => ops::eval(op, &args, &shape, env).map_err(|e| format!("{}: {e}", what()))?,
    };
    if value.shape != shape {
        return Err(format!("{}: computed shape {:?}, but the node's shape is {shape:?}", what(), value.shape));
    }
    if dtype == DType::F32 {
        for v in &mut value.data {
            *v = *v as f32 as f64;
        }
    }
    Ok(value)
}

/// Every result of a loop: its body run once per step, carries passed on, per-step inputs
/// sliced and per-step outputs stacked at the step's index.
fn run_loop(spec: &LoopSpec, args: &[&Tensor], symbols: &[Option<usize>], dtype: DType) -> Result<Vec<Tensor>, String> {
    let body = &spec.body;
    let nc = spec.carries;
    let ns = spec.sliced.len();
    if args.len() != body.inputs.len() {
        return Err(format!("the loop takes {} operands, got {}", body.inputs.len(), args.len()));
    }
    let mut step_inputs: Vec<Tensor> = args.iter().map(|&t| t.clone()).collect();
    let mut stacks: Vec<Tensor> = vec![];
    for s in 0..spec.count {
        let t = spec.index(s);
        for (k, &slicing) in spec.sliced.iter().enumerate() {
            step_inputs[nc + k] = take_step(args[nc + k], slicing, t);
        }
        let env = Env { inputs: &step_inputs, params: &[], symbols };
        let values = run_in(body, &env, dtype).map_err(|e| format!("step {t}: {e}"))?;
        for (k, &slicing) in spec.stacked.iter().enumerate() {
            let v = &values[spec.output_node(nc + k).index()];
            if s == 0 {
                let mut shape = v.shape.clone();
                match slicing.chunk {
                    None => shape.insert(slicing.axis, spec.count),
                    Some(w) => shape[slicing.axis] = w * spec.count,
                }
                stacks.push(Tensor::zeros(shape));
            }
            put_step(&mut stacks[k], slicing, t, v);
        }
        for j in 0..nc {
            step_inputs[j] = values[spec.output_node(j).index()].clone();
        }
    }
    let _ = ns;
    let mut results: Vec<Tensor> = step_inputs.drain(..nc).collect();
    results.extend(stacks);
    Ok(results)
}

/// (elements before the axis, the axis, elements after it) of a row-major shape.
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}

/// The slice of `t` that step index `index` reads.
fn take_step(t: &Tensor, s: Slicing, index: usize) -> Tensor {
    let (outer, n, inner) = around(&t.shape, s.axis);
    let w = s.width();
    let mut data = Vec::with_capacity(outer * w * inner);
    for o in 0..outer {
        let start = (o * n + index * w) * inner;
        data.extend_from_slice(&t.data[start..start + w * inner]);
    }
    let mut shape = t.shape.clone();
    match s.chunk {
        None => {
            shape.remove(s.axis);
        }
        Some(k) => shape[s.axis] = k,
    }
    Tensor::new(shape, data)
}

/// Write one step's output `v` at index `index` of `stack`.
fn put_step(stack: &mut Tensor, s: Slicing, index: usize, v: &Tensor) {
    let (outer, n, inner) = around(&stack.shape, s.axis);
    let w = s.width();
    for o in 0..outer {
        let start = (o * n + index * w) * inner;
        stack.data[start..start + w * inner].copy_from_slice(&v.data[o * w * inner..(o + 1) * w * inner]);
    }
}

/// The values of `g.outputs`, in order.
pub fn outputs(g: &Graph, inputs: &[Tensor], params: &[Tensor]) -> Result<Vec<Tensor>, String> {
    let values = run(g, inputs, params)?;
    // Clone: two outputs may be the same node (dx and dy of an add gate).
    Ok(g.outputs.iter().map(|(_, id)| values[id.index()].clone()).collect())
}

/// The value of one node (evaluates the whole graph).
pub fn value(g: &Graph, id: NodeId, inputs: &[Tensor], params: &[Tensor]) -> Result<Tensor, String> {
    let mut values = run(g, inputs, params)?;
    values.get_mut(id.index()).map(std::mem::take).ok_or_else(|| format!("{id} is not a node of the graph"))
}

/// The size of every symbol, read off the shapes of the given inputs and parameters (`None`
/// for a symbol no tensor binds; `resolve` reports its use). Errors on wrong tensor counts,
/// ranks, known sizes, and on a symbol bound to two different sizes.
pub fn bind_symbols(g: &Graph, inputs: &[Tensor], params: &[Tensor]) -> Result<Vec<Option<usize>>, String> {
    if inputs.len() != g.inputs.len() {
        return Err(format!("the graph takes {} inputs, {} were given", g.inputs.len(), inputs.len()));
    }
    if params.len() != g.params.len() {
        return Err(format!("the graph takes {} parameters, {} were given", g.params.len(), params.len()));
    }
    let mut bound: Vec<Option<usize>> = vec![None; g.symbols.len()];
    let leaves = g.inputs.iter().map(|i| (&i.name, &i.shape)).chain(g.params.iter().map(|p| (&p.name, &p.shape)));
    for ((name, shape), t) in leaves.zip(inputs.iter().chain(params)) {
        if t.data.len() != t.shape.iter().product::<usize>() {
            return Err(format!("`{name}`: {} values do not fill shape {:?}", t.data.len(), t.shape));
        }
        if shape.len() != t.shape.len() {
            return Err(format!("`{name}` must have shape {}, got {:?}", g.shape_str(shape), t.shape));
        }
        for (&d, &n) in shape.iter().zip(&t.shape) {
            match d {
                Dim::Known(k) if k != n => {
                    return Err(format!("`{name}` must have shape {}, got {:?}", g.shape_str(shape), t.shape))
                }
                Dim::Known(_) => {}
                Dim::Sym(s) => match bound[s.0 as usize] {
                    None => bound[s.0 as usize] = Some(n),
                    Some(m) if m == n => {}
                    Some(m) => {
                        return Err(format!(
                            "`{name}` has {} = {n}, but an earlier tensor had {} = {m}",
                            g.dim_name(d),
                            g.dim_name(d)
                        ))
                    }
                },
            }
        }
    }
    Ok(bound)
}

/// A static shape with its symbols replaced by their sizes.
pub fn resolve(g: &Graph, shape: &Shape, symbols: &[Option<usize>]) -> Result<Vec<usize>, String> {
    shape
        .iter()
        .map(|&d| match d {
            Dim::Known(n) => Ok(n),
            Dim::Sym(s) => symbols
                .get(s.0 as usize)
                .copied()
                .flatten()
                .ok_or_else(|| format!("the size of {} is not bound by any input", g.dim_name(d))),
        })
        .collect()
}
