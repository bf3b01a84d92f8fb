//! The JIT engine for training runs: binds `train::Engine` to the Cranelift-compiled step.
//! (Until the code generator lands, it falls back to the interpreter and says so.)

use crate::diag::Diagnostic;
use crate::train::{self, Engine, Program};

pub fn jit_engine(program: Program, _stats: bool) -> Result<Box<dyn Engine>, Diagnostic> {
    eprintln!("note: the JIT is not wired in yet; training with the reference interpreter");
    Ok(Box::new(train::Interpreter::new(program)))
}
