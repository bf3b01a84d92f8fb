//! Every integration test in one binary, each file of `tests/` a module of it (but `mpi.rs`,
//! which needs the `mpi` feature): netc and its dependencies are linked once rather than once
//! per file, and the files' tests share the harness's threads instead of running one binary
//! after another. `cargo test NAME` runs the tests whose path contains NAME
//! (`cargo test jit::`, `cargo test accuracy::char_lstm`).
//!
//! The files keep their own names and places (their data and proptest regressions are found
//! beside them); temporary paths carry a name unique across the files.

mod cases;
mod common;

mod accuracy;
mod activations_reference;
mod bad_inputs;
mod bench;
mod build;
mod checked;
mod checkpoint;
mod controls;
mod conventions;
mod data;
mod data_parallel;
mod deep;
mod docs;
mod equiv;
mod erf_f32;
mod examples;
mod fields;
mod fuzz_regressions;
mod gemm;
mod gradcheck;
mod jit;
mod loop_structure;
mod loops;
mod modes;
mod no_panic;
mod opt;
mod outputs;
mod predict;
mod repl;
mod run;
mod second_order;
mod session;
mod structure;
mod structure_ops;
mod threads;
mod torch_attention;
mod torch_reference;
mod torch_rnn;
mod train_inputs;
mod train_run;
mod ui;
mod units;
mod weights;
mod winograd;
