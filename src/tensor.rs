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
