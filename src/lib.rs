//! netc: a compiler for a small language that describes neural networks.
//!
//! The modules below are the pipeline, in the order a `.net` file goes through it:
//!
//! ```text
//! source ─ frontend ─▶ Checked (one graph per model, train and eval block)
//!                      │  lexer → parser → ast → check (names, shapes, settings) → lower
//!        ─ ir ───────▶ Graph: autodiff appends the backward graph, opt rewrites it,
//!                      interp evaluates it (the oracle every other engine is held to)
//!        ─ codegen ──▶ Cranelift IR: fuse → kernel IR → memplan → emit (+ gemm, math)
//!        ─ drivers ──▶ native code: jit (in process) or object (a .o file and a C header)
//!        ─ runtime     what native code and training use at run time: the C symbols it
//!                      calls, threads, rng, parameters, weight files, data sets
//!        ─ training    the step loop, optimizers and schedules, over an interpreter or JIT engine
//!        ─ session     a program as an object: parameters in memory, fit, forward, gradients,
//!                      save and load on arrays from memory (the Python module's core)
//!        ─ commands    the CLI's verbs: run, bench, graph, gradcheck, repl (main.rs parses flags)
//! ```
//!
//! `diag` (spans and rendered diagnostics) sits below every stage. `docs/architecture.md`
//! names each stage's input and output types and walks through adding an op.

pub mod diag;

pub mod codegen;
pub mod commands;
pub mod drivers;
pub mod frontend;
pub mod ir;
pub mod runtime;
pub mod session;
pub mod training;

pub mod fuzz;
