//! The fused train step: a train block's loss graph extended, in the same IR, with the
//! gradients of every parameter and the optimizer's update. Input: a `TrainDecl`; output: a
//! `TrainStep` whose graph computes `loss` (and the model's outputs) and whose `updates` write
//! the new parameters and optimizer state in place, so one call is one step.
//!
//! The learning rate is an input (`lr`), so schedules and Adam's bias correction cost nothing
//! to change between steps. Optimizer state (velocities, moments) lives in extra parameters
//! (of kind `State`) after the model's own. The model's own state tensors (batch norm's
//! running statistics) are not differentiated and not touched by the optimizer: their
//! updates come from the train block's graph.

use crate::frontend::checked::{Optimizer, TrainDecl};
use crate::ir::autodiff;
use crate::ir::graph::{Graph, Init, InputKind, NodeId, Op};

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
    let loss_output = g.outputs.iter().position(|(n, _)| n == "loss").ok_or("the train graph has no loss")?;
    let loss = g.outputs[loss_output].1;
    let model_params = g.params.len();
    let trainable = g.trainable_nodes()?;
    let param_nodes: Vec<NodeId> = trainable.iter().map(|&(_, id)| id).collect();
    let backward = autodiff::backward(&mut g, loss, &param_nodes)?;
    let lr = g.add_input("lr", vec![], InputKind::Variable);
    let lr_input = g.inputs.len() - 1;

    for (&(p, w), &grad) in trainable.iter().zip(&backward.grads) {
        let name = g.params[p].name.clone();
        let shape = g.params[p].shape.clone();
        // Coupled L2 weight decay: g + wd·w.
        let grad = if t.weight_decay != 0.0 {
            let wd = g.constant(t.weight_decay);
            let decay = add(&mut g, Op::Mul, &[wd, w])?;
            add(&mut g, Op::Add, &[grad, decay])?
        } else {
            grad
        };
        let new_w = match t.optimizer {
            // w - lr·g
            Optimizer::Sgd { .. } => {
                let step = add(&mut g, Op::Mul, &[lr, grad])?;
                add(&mut g, Op::Sub, &[w, step])?
            }
            // v = μ·v + g;  w - lr·v, or with Nesterov w - lr·(g + μ·v)
            Optimizer::Momentum { momentum, nesterov, .. } => {
                let v = g.add_state(&format!("{name}.velocity"), shape.clone(), Init::Zeros);
                let mu = g.constant(momentum);
                let mv = add(&mut g, Op::Mul, &[mu, v])?;
                let new_v = add(&mut g, Op::Add, &[mv, grad])?;
                g.updates.push((g.params.len() - 1, new_v));
                let direction = if nesterov {
                    let mu_v = add(&mut g, Op::Mul, &[mu, new_v])?;
                    add(&mut g, Op::Add, &[grad, mu_v])?
                } else {
                    new_v
                };
                let step = add(&mut g, Op::Mul, &[lr, direction])?;
                add(&mut g, Op::Sub, &[w, step])?
            }
            // m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;  w - lr_t·m / (sqrt(v) + ε), where the
            // host folds the bias corrections into lr_t = lr·sqrt(1-β2^t)/(1-β1^t).
            Optimizer::Adam { beta1, beta2, eps, .. } => {
                let m = g.add_state(&format!("{name}.m"), shape.clone(), Init::Zeros);
                let m_index = g.params.len() - 1;
                let v = g.add_state(&format!("{name}.v"), shape.clone(), Init::Zeros);
                let v_index = g.params.len() - 1;
                let (b1, c1) = (g.constant(beta1), g.constant(1.0 - beta1));
                let (b2, c2) = (g.constant(beta2), g.constant(1.0 - beta2));
                let b1m = add(&mut g, Op::Mul, &[b1, m])?;
                let c1g = add(&mut g, Op::Mul, &[c1, grad])?;
                let new_m = add(&mut g, Op::Add, &[b1m, c1g])?;
                let g2 = add(&mut g, Op::Mul, &[grad, grad])?;
                let b2v = add(&mut g, Op::Mul, &[b2, v])?;
                let c2g2 = add(&mut g, Op::Mul, &[c2, g2])?;
                let new_v = add(&mut g, Op::Add, &[b2v, c2g2])?;
                g.updates.push((m_index, new_m));
                g.updates.push((v_index, new_v));
                let root = add(&mut g, Op::Sqrt, &[new_v])?;
                let e = g.constant(eps);
                let denom = add(&mut g, Op::Add, &[root, e])?;
                let ratio = add(&mut g, Op::Div, &[new_m, denom])?;
                let step = add(&mut g, Op::Mul, &[lr, ratio])?;
                add(&mut g, Op::Sub, &[w, step])?
            }
        };
        g.annotate(new_w, Some(&format!("new {name}")), None);
        g.updates.push((p, new_w));
    }
    Ok(TrainStep { graph: g, model_params, lr_input, loss_output, backward_start: backward.start })
}

/// The learning rate passed to step `step` (0-based) of `total`: the base rate under the
/// schedule, with Adam's bias corrections folded in.
pub fn learning_rate(t: &TrainDecl, step: usize, total: usize) -> f64 {
    use crate::frontend::checked::Schedule;
    let base = match t.optimizer {
        Optimizer::Sgd { lr } | Optimizer::Momentum { lr, .. } | Optimizer::Adam { lr, .. } => lr,
    };
    let scheduled = match t.schedule {
        Schedule::Constant => base,
        Schedule::Step { every, gamma } => base * gamma.powi((step / every.max(1)) as i32),
        Schedule::Cosine { min_lr } => {
            let progress = step as f64 / total.max(1) as f64;
            min_lr + 0.5 * (base - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    };
    match t.optimizer {
        Optimizer::Adam { beta1, beta2, .. } => {
            let n = (step + 1) as i32;
            scheduled * (1.0 - beta2.powi(n)).sqrt() / (1.0 - beta1.powi(n))
        }
        _ => scheduled,
    }
}
