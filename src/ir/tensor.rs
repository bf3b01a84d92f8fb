//! A plain host tensor: shape plus row-major values. The reference interpreter computes in
//! f64 (rounding every result to f32 for f32 graphs); data loaders and the runtime use it to
//! hand values around.

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Tensor {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "tensor data does not match its shape");
        Tensor { shape, data }
    }

    pub fn scalar(value: f64) -> Tensor {
        Tensor { shape: vec![], data: vec![value] }
    }

    pub fn zeros(shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product();
        Tensor { shape, data: vec![0.0; n] }
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// A number as a person reads it: integers without a fraction, others with up to 6 significant
/// digits.
pub fn format_number(x: f64) -> String {
    if x.is_nan() || x.is_infinite() {
        return format!("{x}");
    }
    if x == x.trunc() && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    let digits = 6 - (x.abs().log10().floor() as i32 + 1);
    if (-4..=10).contains(&digits) || x.abs() >= 1e-4 && x.abs() < 1e6 {
        let s = format!("{:.*}", digits.clamp(0, 10) as usize, x);
        let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
        return s;
    }
    format!("{x:.5e}")
}

impl std::fmt::Display for Tensor {
    /// numpy-style nested brackets; long axes are summarised as `a, b, c, ..., x, y, z`.
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        fn go(t: &Tensor, f: &mut std::fmt::Formatter, axis: usize, offset: usize) -> std::fmt::Result {
            if axis == t.shape.len() {
                return match t.data.get(offset) {
                    Some(&x) => f.write_str(&format_number(x)),
                    None => f.write_str("?"),
                };
            }
            let n = t.shape[axis];
            let stride: usize = t.shape[axis + 1..].iter().product();
            let summarise = t.numel() > 1000 && n > 6;
            f.write_str("[")?;
            let mut first = true;
            for i in 0..n {
                if summarise && (3..n - 3).contains(&i) {
                    if i == 3 {
                        f.write_str(", ...")?;
                    }
                    continue;
                }
                if !first {
                    f.write_str(if axis + 1 == t.shape.len() { ", " } else { ",\n " })?;
                }
                first = false;
                go(t, f, axis + 1, offset + i * stride)?;
            }
            f.write_str("]")
        }
        go(self, f, 0, 0)
    }
}
