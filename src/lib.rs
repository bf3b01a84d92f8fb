//! netc: a compiler for a small language that describes neural networks.
//!
//! The modules are the stages of the pipeline, in order:
//! lex -> parse -> check (names, shapes) and lower into the graph IR -> differentiate ->
//! optimize -> interpret (the oracle) or generate native code with Cranelift.

pub mod ast;
pub mod autodiff;
pub mod bench;
pub mod check;
pub mod cli;
pub mod codegen;
pub mod data;
pub mod diag;
pub mod dot;
pub mod engine;
pub mod explain;
pub mod fuzz;
pub mod gradcheck;
pub mod graph;
pub mod interp;
pub mod jit;
pub mod kernels;
pub mod lexer;
pub mod limits;
pub mod lower;
pub mod memplan;
pub mod object;
pub mod ops;
pub mod opt;
pub mod optim;
pub mod params;
pub mod parser;
pub mod repl;
pub mod report;
pub mod rng;
pub mod run;
pub mod tensor;
pub mod threads;
pub mod train;
pub mod weights;
