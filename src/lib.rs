//! netc: a compiler for a small language that describes neural networks.
//!
//! The modules are the stages of the pipeline, in order:
//! lex -> parse -> check (names, shapes) and lower into the graph IR -> differentiate ->
//! optimize -> interpret (the oracle) or generate native code with Cranelift.

pub mod ast;
pub mod check;
pub mod data;
pub mod diag;
pub mod graph;
pub mod lexer;
pub mod lower;
pub mod ops;
pub mod parser;
pub mod report;
pub mod rng;
pub mod tensor;
pub mod weights;
