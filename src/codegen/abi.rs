//! The GEMM symbol's C signature on the code generator's side. Its parameters are declared
//! once, as `symbols::GemmArgs`; from it come the Cranelift signature that the library GEMM
//! is imported with and the generated GEMM defined with (by the JIT and the object driver
//! alike), the arguments of emit's calls, and the generated GEMM's reading of its
//! parameters.

use cranelift_codegen::ir::types::{F32, F64, I64};
use cranelift_codegen::ir::{AbiParam, Signature, Value};
use cranelift_module::Module;

use crate::ir::graph::DType;
pub use crate::runtime::symbols::{GemmArgs, Matrix};

/// The arguments of a GEMM call, or a GEMM function's parameters, as Cranelift values.
pub type GemmValues = GemmArgs<Value, Value, Value, Value>;

/// The GEMM's signature in `module`'s C calling convention: i64 sizes and strides, scalars of
/// `dtype`, pointers.
pub fn gemm_signature<M: Module>(module: &M, dtype: DType) -> Signature {
    let ty = match dtype {
        DType::F32 => F32,
        DType::F64 => F64,
    };
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    sig.params.extend(GemmArgs::of_kinds(AbiParam::new(I64), AbiParam::new(ty), AbiParam::new(ptr)).to_array());
    sig
}
