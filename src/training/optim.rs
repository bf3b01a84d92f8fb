//! The fused train step: a train block's loss graph extended, in the same IR, with the
//! gradients of every parameter and the optimizer's update. Input: a `TrainDecl`; output: a
//! `TrainStep` whose graph computes `loss` (and the model's outputs) and whose `updates` write
//! the new parameters and optimizer state in place, so one call is one step.
//!
//! The learning rate is an input (`lr`), so schedules cost nothing to change between steps.
//! Optimizer state (velocities, moments, Adam's step count) lives in extra parameters of kind
//! `State` after the model's own. Frozen parameters get no gradient, no update and no state:
//! they leave the step bit for bit as they came in. The model's own state tensors (batch
//! norm's running statistics) are not differentiated and not touched by the optimizer, weight
//! decay or clipping: their updates (`<-`) come from the train block's training-mode graph.
//! With `clip_norm: c` every gradient is scaled by min(1, c / (‖g‖ + 1e-6)), ‖g‖ the L2 norm
//! of all gradients together (PyTorch's `clip_grad_norm_`), before weight decay and the
//! optimizer see it.
//!
//! Weight decay, coupled (`weight_decay`: g + wd·w) or decoupled (`adamw`), applies to the
//! weights only, never to biases (`ParamRole`), as `l2()` does.

use std::collections::HashSet;

use crate::frontend::checked::{Optimizer, TrainDecl};
use crate::ir::autodiff;
use crate::ir::graph::{Graph, Init, InputKind, Node, NodeId, Op, ParamKind, ParamRole};

pub struct TrainStep {
    pub graph: Graph,
    /// The first `model_params` parameters are the model's (trainable ones and state, in
    /// declaration order); the rest are optimizer state.
    pub model_params: usize,
    /// Index in `graph.inputs` of the scalar learning rate.
    pub lr_input: usize,
    /// Index of the loss in `graph.outputs`.
    pub loss_output: usize,
    /// Where the backward part of the graph starts.
    pub backward_start: usize,
}

fn add(g: &mut Graph, op: Op, inputs: &[NodeId]) -> Result<NodeId, String> {
    g.add(op, inputs).map_err(|e| {
        let shapes: Vec<&crate::ir::graph::Shape> = inputs.iter().map(|&i| g.shape(i)).collect();
        e.message(g, &shapes)
    })
}

/// Build the train step of `t`: gradients of the trainable parameters and their optimizer
/// updates, beside the state updates (`<-`) the training-mode graph already carries.
pub fn build(t: &TrainDecl) -> Result<TrainStep, String> {
    let mut g = t.graph.clone();
    let frozen = frozen_set(t);
    // A frozen state tensor (`freeze: [bn1]` takes bn1.mean and bn1.var too) keeps its value.
    g.updates.retain(|(p, _)| !frozen.contains(p));
    let loss_output = loss_output(&g)?;
    let loss = g.outputs[loss_output].1;
    let model_params = g.params.len();
    let trainable = trainable(&frozen, &g);
    let all_nodes = g.param_nodes()?;
    let param_nodes: Vec<NodeId> = trainable.iter().map(|&p| all_nodes[p]).collect();
    let backward = autodiff::backward(&mut g, loss, &param_nodes)?;
    let lr = g.add_input("lr", vec![], InputKind::Variable);
    let lr_input = g.inputs.len() - 1;
    apply_updates(&mut g, t, &trainable, &param_nodes, &backward.grads, lr)?;
    Ok(TrainStep { graph: g, model_params, lr_input, loss_output, backward_start: backward.start })
}

/// The train step of `t` in two graphs, for data parallelism: each rank runs `gradients` on
/// its shard of the batch, the ranks sum the gradients, and every rank runs `update` on the
/// sum. Together they compute what `build`'s step computes on the whole batch: with shards of
/// n_r samples (Σ n_r = b) and each loss a mean over its shard, the batch's gradient is
/// Σ_r ∇(n_r·loss_r) / b.
pub struct SplitStep {
    /// Forward and backward on one shard, in training mode. Inputs: the data fields, the
    /// random key (with dropout), `shard samples` (the scalar n_r). Outputs: `loss` (the
    /// shard's mean), then ∇(n_r·loss) for each parameter of `trainable`, in that order.
    /// Parameters: the model's; updates: its state's (batch norm's running statistics).
    pub gradients: Graph,
    /// Clipping, weight decay and the optimizer. Inputs: `grad NAME`, the summed gradient of
    /// each parameter of `trainable`; `grad scale` (1/b); `lr`. Parameters: those of
    /// `build`'s step, in the same order (the model's, then optimizer state); no outputs,
    /// only updates.
    pub update: Graph,
    /// The model parameters that are trained (not frozen), by index.
    pub trainable: Vec<usize>,
    pub model_params: usize,
}

/// Split `t`'s train step into its gradients and its update (`SplitStep`).
pub fn build_split(t: &TrainDecl) -> Result<SplitStep, String> {
    let mut g = t.graph.clone();
    let frozen = frozen_set(t);
    g.updates.retain(|(p, _)| !frozen.contains(p));
    let loss = g.outputs[loss_output(&g)?].1;
    let model_params = g.params.len();
    let trainable = trainable(&frozen, &g);
    let all_nodes = g.param_nodes()?;
    let param_nodes: Vec<NodeId> = trainable.iter().map(|&p| all_nodes[p]).collect();
    let samples = g.add_input("shard samples", vec![], InputKind::Variable);
    let weighted = add(&mut g, Op::Mul, &[loss, samples])?;
    let backward = autodiff::backward(&mut g, weighted, &param_nodes)?;
    g.outputs = std::iter::once(("loss".to_string(), loss))
        .chain(trainable.iter().zip(&backward.grads).map(|(&p, &d)| (format!("grad {}", g.params[p].name), d)))
        .collect();

    let mut u = Graph::new(g.dtype);
    for info in &t.graph.params {
        u.params.push(info.clone());
        let index = u.params.len() - 1;
        let shape = info.shape.clone();
        u.push(Node { op: Op::Param { index }, inputs: vec![], shape, name: Some(info.name.clone()), span: None });
    }
    let update_nodes: Vec<NodeId> = u.param_nodes()?;
    let update_nodes: Vec<NodeId> = trainable.iter().map(|&p| update_nodes[p]).collect();
    let summed: Vec<NodeId> = trainable
        .iter()
        .map(|&p| {
            u.add_input(
                &format!("grad {}", t.graph.params[p].name),
                t.graph.params[p].shape.clone(),
                InputKind::Gradient,
            )
        })
        .collect();
    let scale = u.add_input("grad scale", vec![], InputKind::Variable);
    let lr = u.add_input("lr", vec![], InputKind::Variable);
    // The mean gradient: the sum over ranks of ∇(n_r·loss_r), times 1/b.
    let grads = summed.iter().map(|&s| add(&mut u, Op::Mul, &[s, scale])).collect::<Result<Vec<_>, _>>()?;
    apply_updates(&mut u, t, &trainable, &update_nodes, &grads, lr)?;
    Ok(SplitStep { gradients: g, update: u, trainable, model_params })
}

fn loss_output(g: &Graph) -> Result<usize, String> {
    Ok(g.outputs.iter().position(|(n, _)| n == "loss").ok_or("the train graph has no loss")?)
}

/// The model parameters the optimizer trains: the trainable ones (not state) not frozen.
fn trainable(frozen: &HashSet<usize>, g: &Graph) -> Vec<usize> {
    (0..g.params.len()).filter(|p| !frozen.contains(p) && g.params[*p].kind == ParamKind::Trainable).collect()
}

/// `t`'s frozen parameters as a set: `freeze: ["*"]` on a 10,000-layer model freezes 20,000
/// tensors, and a list search per parameter would be quadratic.
fn frozen_set(t: &TrainDecl) -> HashSet<usize> {
    t.frozen.iter().copied().collect()
}

/// Append to `g` the update of each parameter `trainable[i]` (whose node is `param_nodes[i]`)
/// from its gradient `grads[i]`: clipping by the global norm, weight decay and the optimizer,
/// with its state as new parameters after the model's.
fn apply_updates(
    g: &mut Graph,
    t: &TrainDecl,
    trainable: &[usize],
    param_nodes: &[NodeId],
    grads: &[NodeId],
    lr: NodeId,
) -> Result<(), String> {
    let grads = match t.clip_norm {
        Some(c) => clip_by_global_norm(g, grads, c)?,
        None => grads.to_vec(),
    };

    // Adam's step count t (one scalar of state, so a resumed run continues its bias correction).
    let adam_step = match t.optimizer {
        Optimizer::Adam { .. } => {
            let t_old = g.add_state("adam.step", vec![], Init::Zeros);
            let one = g.constant(1.0);
            let t_new = add(g, Op::Add, &[t_old, one])?;
            g.updates.push((g.params.len() - 1, t_new));
            Some(t_new)
        }
        _ => None,
    };

    for (&p, (&w, &grad)) in trainable.iter().zip(param_nodes.iter().zip(&grads)) {
        let name = g.params[p].name.clone();
        let shape = g.params[p].shape.clone();
        let is_weight = g.params[p].role == ParamRole::Weight;
        // Coupled L2 weight decay of the weights: g + wd·w.
        let grad = if t.weight_decay != 0.0 && is_weight {
            let wd = g.constant(t.weight_decay);
            let decay = add(g, Op::Mul, &[wd, w])?;
            add(g, Op::Add, &[grad, decay])?
        } else {
            grad
        };
        let new_w = match t.optimizer {
            // w - lr·g
            Optimizer::Sgd { .. } => {
                let step = add(g, Op::Mul, &[lr, grad])?;
                add(g, Op::Sub, &[w, step])?
            }
            // v = μ·v + g;  w - lr·v, or with Nesterov w - lr·(g + μ·v)
            Optimizer::Momentum { momentum, nesterov, .. } => {
                let v = g.add_state(&format!("{name}.velocity"), shape.clone(), Init::Zeros);
                let mu = g.constant(momentum);
                let mv = add(g, Op::Mul, &[mu, v])?;
                let new_v = add(g, Op::Add, &[mv, grad])?;
                g.updates.push((g.params.len() - 1, new_v));
                let direction = if nesterov {
                    let mu_v = add(g, Op::Mul, &[mu, new_v])?;
                    add(g, Op::Add, &[grad, mu_v])?
                } else {
                    new_v
                };
                let step = add(g, Op::Mul, &[lr, direction])?;
                add(g, Op::Sub, &[w, step])?
            }
            Optimizer::Adam { beta1, beta2, eps, decay, .. } => {
                let t_new = adam_step.ok_or("Adam without a step count")?;
                let decay = if is_weight { decay } else { 0.0 };
                adam(g, &name, w, grad, lr, t_new, [beta1, beta2, eps, decay])?
            }
        };
        g.annotate(new_w, Some(&format!("new {name}")), None);
        g.updates.push((p, new_w));
    }
    Ok(())
}

/// g_i · min(1, c / (‖g‖ + 1e-6)) for every gradient g_i, where ‖g‖ = sqrt(Σ_i Σ g_i²).
fn clip_by_global_norm(g: &mut Graph, grads: &[NodeId], c: f64) -> Result<Vec<NodeId>, String> {
    let mut total = g.constant(0.0);
    for &grad in grads {
        let sq = add(g, Op::Mul, &[grad, grad])?;
        let axes: Vec<usize> = (0..g.shape(sq).len()).collect();
        let s = if axes.is_empty() { sq } else { add(g, Op::Sum { axes }, &[sq])? };
        total = add(g, Op::Add, &[total, s])?;
    }
    let norm = add(g, Op::Sqrt, &[total])?;
    g.annotate(norm, Some("gradient norm"), None);
    let eps = g.constant(1e-6);
    let denom = add(g, Op::Add, &[norm, eps])?;
    let limit = g.constant(c);
    let ratio = add(g, Op::Div, &[limit, denom])?;
    let one = g.constant(1.0);
    let coef = add(g, Op::Min, &[one, ratio])?;
    grads.iter().map(|&grad| add(g, Op::Mul, &[grad, coef])).collect()
}

/// The scheduled rate at step `step` (0-based) of `total`, before warmup.
fn scheduled(t: &TrainDecl, step: usize, total: usize) -> f64 {
    use crate::frontend::checked::Schedule;
    let base = match t.optimizer {
        Optimizer::Sgd { lr } | Optimizer::Momentum { lr, .. } | Optimizer::Adam { lr, .. } => lr,
    };
    match t.schedule {
        Schedule::Constant => base,
        Schedule::Step { every, gamma } => base * gamma.powi((step / every.max(1)) as i32),
        Schedule::Cosine { min_lr } => {
            let progress = step as f64 / total.max(1) as f64;
            min_lr + 0.5 * (base - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

/// The learning rate passed to step `step` (0-based) of `total`: the base rate under the
/// schedule (Adam's bias corrections are computed in the step, from its step count). With
/// `warmup: W`, step s < W runs at (s + 1)/W of the schedule's first rate, and the schedule
/// then runs over the remaining steps from its start: lr(s) = sched(s − W, total − W) (the
/// convention of Hugging Face's `get_cosine_schedule_with_warmup`). The object file's header
/// computes the same (`drivers::object`, `{prefix}_learning_rate`).
pub fn learning_rate(t: &TrainDecl, step: usize, total: usize) -> f64 {
    let w = t.warmup;
    if step < w {
        scheduled(t, 0, total.saturating_sub(w)) * (step + 1) as f64 / w as f64
    } else {
        scheduled(t, step - w, total.saturating_sub(w))
    }
}

/// One Adam (or AdamW) update of the weight `w` with gradient `grad` at step `t` (1-based),
/// in the PyTorch and optax form:
///
///   m = β1·m + (1 − β1)·g,  v = β2·v + (1 − β2)·g²,  m̂ = m/(1 − β1^t),  v̂ = v/(1 − β2^t)
///   w ← w·(1 − lr·decay) − lr·m̂/(√v̂ + eps)
///
/// (eps is added to √v̂, not to √v: with a large eps the two differ a lot). The moments are new
/// parameters `NAME.m` and `NAME.v`. Returns the new weight.
fn adam(
    g: &mut Graph,
    name: &str,
    w: NodeId,
    grad: NodeId,
    lr: NodeId,
    t: NodeId,
    hyper: [f64; 4],
) -> Result<NodeId, String> {
    let [beta1, beta2, eps, decay] = hyper;
    let shape = g.shape(w).clone();
    let m = g.add_state(&format!("{name}.m"), shape.clone(), Init::Zeros);
    let m_index = g.params.len() - 1;
    let v = g.add_state(&format!("{name}.v"), shape, Init::Zeros);
    let v_index = g.params.len() - 1;
    let (b1, c1) = (g.constant(beta1), g.constant(1.0 - beta1));
    let (b2, c2) = (g.constant(beta2), g.constant(1.0 - beta2));
    let b1m = add(g, Op::Mul, &[b1, m])?;
    let c1g = add(g, Op::Mul, &[c1, grad])?;
    let new_m = add(g, Op::Add, &[b1m, c1g])?;
    let g2 = add(g, Op::Mul, &[grad, grad])?;
    let b2v = add(g, Op::Mul, &[b2, v])?;
    let c2g2 = add(g, Op::Mul, &[c2, g2])?;
    let new_v = add(g, Op::Add, &[b2v, c2g2])?;
    g.updates.push((m_index, new_m));
    g.updates.push((v_index, new_v));
    // lr/(1 − β1^t) · m / (√v/√(1 − β2^t) + eps), as torch.optim.Adam computes it.
    let correction1 = one_minus_power(g, beta1, t)?;
    let correction2 = one_minus_power(g, beta2, t)?;
    let step_size = add(g, Op::Div, &[lr, correction1])?;
    let root_c2 = add(g, Op::Sqrt, &[correction2])?;
    let root_v = add(g, Op::Sqrt, &[new_v])?;
    let root_v_hat = add(g, Op::Div, &[root_v, root_c2])?;
    let e = g.constant(eps);
    let denom = add(g, Op::Add, &[root_v_hat, e])?;
    let ratio = add(g, Op::Div, &[new_m, denom])?;
    let step = add(g, Op::Mul, &[step_size, ratio])?;
    // Decoupled weight decay (AdamW): w·(1 − lr·decay) first, then the Adam step.
    let w = if decay != 0.0 {
        let d = g.constant(decay);
        let lr_d = add(g, Op::Mul, &[lr, d])?;
        let shrink = add(g, Op::Mul, &[lr_d, w])?;
        add(g, Op::Sub, &[w, shrink])?
    } else {
        w
    };
    add(g, Op::Sub, &[w, step])
}

/// 1 − β^t for a constant β in [0, 1) and a scalar node t >= 1, accurate also in f32 where
/// β is close to 1 (1 − 0.999 cancels): with κ = −ln(β)/2 (computed here in f64),
/// 1 − β^t = 1 − e^(−2κt) = 2·tanh(κt)/(1 + tanh(κt)), and nothing cancels.
fn one_minus_power(g: &mut Graph, beta: f64, t: NodeId) -> Result<NodeId, String> {
    if beta == 0.0 {
        return Ok(g.constant(1.0));
    }
    let kappa = g.constant(-beta.ln() / 2.0);
    let kt = add(g, Op::Mul, &[kappa, t])?;
    let th = add(g, Op::Tanh, &[kt])?;
    let two = g.constant(2.0);
    let num = add(g, Op::Mul, &[two, th])?;
    let one = g.constant(1.0);
    let den = add(g, Op::Add, &[one, th])?;
    add(g, Op::Div, &[num, den])
}
