//! The loop's shape rule (`Op::Loop`, see `graph::LoopSpec`). Its meaning is in `interp` (the
//! body is a graph, which the interpreter runs step by step) and its gradient in
//! `autodiff::loops` (a backward loop over the same steps): neither fits the one-node rules
//! of the other op families.

use crate::ir::graph::{Dim, Graph, LoopSpec, Shape, Slicing};

use super::ShapeError;

/// The shape of one step's slice of an outer tensor of shape `outer`.
pub fn step_shape(outer: &Shape, s: Slicing, count: usize) -> Result<Shape, ShapeError> {
    if s.axis >= outer.len() {
        return Err(ShapeError::Invalid(format!(
            "a per-step input is sliced along axis {}, but it has {} axes",
            s.axis,
            outer.len()
        )));
    }
    let want = count * s.width();
    if outer[s.axis] != Dim::Known(want) {
        return Err(ShapeError::Invalid(format!(
            "a per-step input needs {want} elements along axis {} for {count} steps",
            s.axis
        )));
    }
    let mut shape = outer.clone();
    match s.chunk {
        None => {
            shape.remove(s.axis);
        }
        Some(k) => shape[s.axis] = Dim::Known(k),
    }
    Ok(shape)
}

/// The shape of `count` per-step outputs of shape `step`, stacked by `s`.
pub fn stacked_shape(step: &Shape, s: Slicing, count: usize) -> Result<Shape, ShapeError> {
    let mut shape = step.clone();
    match s.chunk {
        None if s.axis <= step.len() => shape.insert(s.axis, Dim::Known(count)),
        Some(k) if s.axis < step.len() && step[s.axis] == Dim::Known(k) => shape[s.axis] = Dim::Known(count * k),
        _ => {
            return Err(ShapeError::Invalid(format!(
                "a per-step output of {} axes cannot be stacked along axis {}{}",
                step.len(),
                s.axis,
                s.chunk.map_or(String::new(), |k| format!(" in chunks of {k}"))
            )))
        }
    }
    Ok(shape)
}

/// The shape of result `output` of a loop: every operand must have the shape its body input
/// expects (after slicing), and the body must return carries of the carries' shapes.
pub fn loop_shape(spec: &LoopSpec, output: usize, shapes: &[&Shape], g: &Graph) -> Result<Shape, ShapeError> {
    let body = &spec.body;
    if spec.count == 0 {
        return Err(ShapeError::Invalid("a loop needs at least one step".into()));
    }
    if shapes.len() != body.inputs.len() {
        return Err(ShapeError::Invalid(format!(
            "the loop takes {} operands, got {}",
            body.inputs.len(),
            shapes.len()
        )));
    }
    let mismatch = |what: String, got: &Shape, want: &Shape| {
        ShapeError::Invalid(format!("{what} is {}, the loop body expects {}", g.shape_str(got), g.shape_str(want)))
    };
    let nc = spec.carries;
    for (i, (&outer, input)) in shapes.iter().zip(&body.inputs).enumerate() {
        let step = match i.checked_sub(nc).and_then(|k| spec.sliced.get(k)) {
            Some(&s) => step_shape(outer, s, spec.count)?,
            None => outer.clone(),
        };
        if step != input.shape {
            return Err(mismatch(format!("operand {} (`{}`)", i + 1, input.name), &step, &input.shape));
        }
    }
    for j in 0..nc {
        let new = body.shape(spec.output_node(j));
        if new != &body.inputs[j].shape {
            return Err(mismatch(
                format!("the new value of carry `{}`", body.inputs[j].name),
                new,
                &body.inputs[j].shape,
            ));
        }
    }
    match output.checked_sub(nc) {
        None => Ok(body.inputs[output].shape.clone()),
        Some(k) if k < spec.stacked.len() => {
            stacked_shape(body.shape(spec.output_node(output)), spec.stacked[k], spec.count)
        }
        Some(_) => Err(ShapeError::Invalid(format!("the loop has no result {output}"))),
    }
}
