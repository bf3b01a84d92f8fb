//! The IR: a computational graph of tensor ops (`graph`), each op's shape rule, meaning and
//! vector-Jacobian product side by side (`ops/`), symbolic reverse-mode differentiation into
//! the same graph (`autodiff`), the rewrite passes (`opt`), and the reference interpreter
//! (`interp`, over `tensor`) that every compiled engine is held to; `gradcheck` compares
//! autodiff with central differences, and `limits` bounds tensor sizes and memory.

pub mod autodiff;
pub mod checkpoint;
pub mod gradcheck;
pub mod graph;
pub mod interp;
pub mod limits;
pub mod ops;
pub mod opt;
pub mod tensor;
