//! `einsum(spec, a)` and `einsum(spec, a, b)`, lowered to the primitives: sums over the axes
//! that appear in one operand only and not in the result, transposes (views), and one batched
//! `MatMul` whose batch axes are the letters in both operands and the result, whose contracted
//! axes are the letters in both operands only, and whose rows and columns are the letters of
//! one operand kept in the result. `"bij,bjk->bik"` is a batched matmul, `"ij->ji"` a
//! transpose, `"ij->i"` a sum; an implicit result (`"ij,jk"`) holds the letters that appear
//! once, in alphabetical order, as in numpy. Not supported: `...`, a letter repeated within
//! one operand (a diagonal), more than two operands.

use super::*;

/// The axes of one operand, as letters.
type Letters = Vec<char>;

/// `spec` parsed: the operands' letters and the result's.
fn parse(spec: &str) -> Result<(Vec<Letters>, Letters), String> {
    let spec: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
    if spec.contains('.') {
        return Err("`...` in an einsum is not supported: name every axis".into());
    }
    let (inputs, output) = match spec.split_once("->") {
        Some((i, o)) => (i, Some(o)),
        None => (spec.as_str(), None),
    };
    let operands: Vec<Letters> = inputs.split(',').map(|s| s.chars().collect()).collect();
    for (k, letters) in operands.iter().enumerate() {
        if let Some(c) = letters.iter().find(|c| !c.is_ascii_alphabetic()) {
            return Err(format!("`{c}` in operand {} is not an axis letter", k + 1));
        }
        if let Some(c) = letters.iter().find(|c| letters.iter().filter(|d| d == c).count() > 1) {
            return Err(format!("`{c}` appears twice in operand {} (diagonals are not supported)", k + 1));
        }
    }
    let all: Vec<char> = operands.iter().flatten().copied().collect();
    let output: Letters = match output {
        Some(o) => o.chars().collect(),
        None => {
            let mut once: Vec<char> =
                all.iter().copied().filter(|c| all.iter().filter(|d| *d == c).count() == 1).collect();
            once.sort_unstable();
            once
        }
    };
    for (i, c) in output.iter().enumerate() {
        if !all.contains(c) {
            return Err(format!("`{c}` of the result is in no operand"));
        }
        if output[..i].contains(c) {
            return Err(format!("`{c}` appears twice in the result"));
        }
    }
    Ok((operands, output))
}

/// The permutation that takes axes labelled `from` to the order `to` (both the same letters).
fn perm(from: &[char], to: &[char]) -> Vec<usize> {
    to.iter().map(|c| from.iter().position(|d| d == c).expect("the same letters")).collect()
}

impl<'p> Checker<'p> {
    pub(super) fn einsum(&mut self, a: &Args) -> Value {
        let span = a.span;
        let Some((spec_value, spec_span)) = a.get("spec").cloned() else { return Value::Error };
        let Value::Str(spec) = spec_value else {
            self.wrong_arg(a, "spec", &spec_value, spec_span, "a string such as \"bij,bjk->bik\"");
            return Value::Error;
        };
        let (operands, output) = match parse(&spec) {
            Ok(p) => p,
            Err(e) => return self.error("E-type", spec_span, format!("einsum: {e}"), "this spec"),
        };
        let mut tensors = vec![];
        for (v, s) in a.bound.rest.clone() {
            match self.tensor(v, s) {
                Some(id) => tensors.push((id, s)),
                None => return Value::Error,
            }
        }
        if tensors.len() != operands.len() || !(1..=2).contains(&tensors.len()) {
            return self.error(
                "E-arity",
                span,
                format!("einsum \"{spec}\" names {} operands, {} were given", operands.len(), tensors.len()),
                "one or two tensors",
            );
        }
        // Every letter has one size.
        let mut sizes: Vec<(char, Dim, usize)> = vec![];
        for (k, (letters, &(id, s))) in operands.iter().zip(&tensors).enumerate() {
            let shape = self.g.shape(id).clone();
            if shape.len() != letters.len() {
                return self.error(
                    "E-shape",
                    s,
                    format!("einsum operand {} has {} axes, the spec names {}", k + 1, shape.len(), letters.len()),
                    format!("this is {}", self.g.shape_str(&shape)),
                );
            }
            for (&c, &d) in letters.iter().zip(&shape) {
                match sizes.iter().find(|(e, _, _)| *e == c) {
                    Some(&(_, first, _)) if first != d => {
                        let (x, y) = (self.g.dim_name(first), self.g.dim_name(d));
                        return self.error(
                            "E-shape",
                            s,
                            format!("einsum: axis `{c}` is {x} in one operand and {y} in another"),
                            format!("operand {} has `{c}` = {y}", k + 1),
                        );
                    }
                    Some(_) => {}
                    None => sizes.push((c, d, k)),
                }
            }
        }
        let r = self.contract(&operands, &output, &tensors);
        let operand_spans: Vec<(NodeId, Span)> = tensors.clone();
        self.lowered(r, &operand_spans, "einsum", span)
    }

    /// The lowering of a parsed einsum (the letters' sizes agree).
    fn contract(
        &mut self,
        operands: &[Letters],
        output: &Letters,
        tensors: &[(NodeId, Span)],
    ) -> Result<NodeId, ShapeError> {
        let g = &mut self.g;
        // Sum each operand over the letters no other operand nor the result has.
        let mut parts = vec![];
        for (k, (letters, &(id, _))) in operands.iter().zip(tensors).enumerate() {
            let elsewhere =
                |c: &char| output.contains(c) || operands.iter().enumerate().any(|(j, o)| j != k && o.contains(c));
            let summed: Vec<usize> = (0..letters.len()).filter(|&i| !elsewhere(&letters[i])).collect();
            let kept: Letters = letters.iter().copied().filter(|c| elsewhere(c)).collect();
            let id = if summed.is_empty() { id } else { lower::sum(g, id, &summed, false)? };
            parts.push((kept, id));
        }
        let transpose = |g: &mut Graph, id: NodeId, from: &[char], to: &[char]| -> Result<NodeId, ShapeError> {
            let p = perm(from, to);
            if p.iter().enumerate().all(|(i, &q)| i == q) {
                Ok(id)
            } else {
                g.add(Op::Transpose { perm: p }, &[id])
            }
        };
        let [(la, a), (lb, b)] = match &parts[..] {
            [(letters, id)] => return transpose(g, *id, letters, output),
            [x, y] => [x.clone(), y.clone()],
            _ => unreachable!("one or two operands"),
        };
        let in_b = |c: &char| lb.contains(c);
        let batch: Letters = output.iter().copied().filter(|c| la.contains(c) && in_b(c)).collect();
        let rows: Letters = output.iter().copied().filter(|c| la.contains(c) && !in_b(c)).collect();
        let cols: Letters = output.iter().copied().filter(|c| in_b(c) && !la.contains(c)).collect();
        let inner: Letters = la.iter().copied().filter(|c| in_b(c) && !output.contains(c)).collect();
        let order_a: Letters = batch.iter().chain(&rows).chain(&inner).copied().collect();
        let order_b: Letters = batch.iter().chain(&inner).chain(&cols).copied().collect();
        let a = transpose(g, a, &la, &order_a)?;
        let b = transpose(g, b, &lb, &order_b)?;
        let mm = Op::MatMul { transpose_a: false, transpose_b: false, batch: batch.len(), contract: inner.len() };
        let product = g.add(mm, &[a, b])?;
        let result: Letters = batch.iter().chain(&rows).chain(&cols).copied().collect();
        transpose(g, product, &result, output)
    }
}
