//! Drivers: thin wrappers that run `codegen::define` into a Cranelift module and finish it.
//! `jit`: compiled into this process, called through `Compiled::run`. `object`: a relocatable
//! object file plus a C header (`netc build`), self-contained but for libm.

pub mod jit;
pub mod object;
