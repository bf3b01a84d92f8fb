//! The loop builder that `emit` and `gemm` both write their IR with: counted loops, if/else,
//! i64 and float constants, pointer offsets and multiply-adds, as default methods of a trait
//! over Cranelift's `FunctionBuilder`.
//!
//! A trait rather than a struct, so that a loop body gets the implementor itself (the
//! `Emitter` with its environment, the GEMM's generator with its tile sizes), not just the
//! builder. An implementor supplies the builder, the float type and whether the target has
//! FMA, and may watch the pointers `offset` derives (checked mode does).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, I64};
use cranelift_codegen::ir::{InstBuilder, Type, Value};
use cranelift_frontend::FunctionBuilder;

pub trait LoopBuilder<'f>: Sized {
    /// The function being built.
    fn fb(&mut self) -> &mut FunctionBuilder<'f>;

    /// The scalar float type of the code: `F32` or `F64`.
    fn float_type(&self) -> Type;

    /// Whether the target multiplies and adds in one instruction (`mul_add` then uses `fma`;
    /// without it Cranelift would lower `fma` to a libm call).
    fn has_fma(&self) -> bool;

    /// Called with every pointer `to` that `offset` computes from a pointer `from`; returns
    /// `to`. Bounds-checked code records that `to` points into `from`'s buffer.
    fn derived(&mut self, _from: Value, to: Value) -> Value {
        to
    }

    /// An i64 constant.
    fn int(&mut self, v: i64) -> Value {
        self.fb().ins().iconst(I64, v)
    }

    /// A float constant of `float_type`.
    fn fconst(&mut self, c: f64) -> Value {
        if self.float_type() == F32 {
            self.fb().ins().f32const(c as f32)
        } else {
            self.fb().ins().f64const(c)
        }
    }

    /// `p + i * stride_bytes`.
    fn offset(&mut self, p: Value, i: Value, stride_bytes: Value) -> Value {
        let d = self.fb().ins().imul(i, stride_bytes);
        let q = self.fb().ins().iadd(p, d);
        self.derived(p, q)
    }

    /// `a·b + c`: fused (one rounding) where the target has FMA, otherwise `fmul` then `fadd`
    /// (rounded twice, never a libm call).
    fn mul_add(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.has_fma() {
            self.fb().ins().fma(a, b, c)
        } else {
            let p = self.fb().ins().fmul(a, b);
            self.fb().ins().fadd(p, c)
        }
    }

    /// `acc + a·b`: `mul_add` with the product as `fadd`'s second operand when there is no
    /// FMA. The value is the same (IEEE addition is commutative); both orders exist so that
    /// the GEMM (`mul_add`) and the inline products (`add_mul`) emit exactly the code they
    /// always have.
    fn add_mul(&mut self, acc: Value, a: Value, b: Value) -> Value {
        if self.has_fma() {
            self.fb().ins().fma(a, b, acc)
        } else {
            let p = self.fb().ins().fmul(a, b);
            self.fb().ins().fadd(acc, p)
        }
    }

    /// `for i in (lo..hi).step_by(step) { body(i) }`, as a rotated loop: one guard, then one
    /// compare and branch per iteration.
    fn for_loop(&mut self, lo: Value, hi: Value, step: i64, body: impl FnOnce(&mut Self, Value)) {
        let b = self.fb();
        let var = b.declare_var(I64);
        b.def_var(var, lo);
        let body_block = b.create_block();
        let exit = b.create_block();
        let enter = b.ins().icmp(IntCC::SignedLessThan, lo, hi);
        b.ins().brif(enter, body_block, &[], exit, &[]);
        b.switch_to_block(body_block);
        let i = b.use_var(var);
        body(self, i);
        let b = self.fb();
        let next = b.ins().iadd_imm_s(i, step);
        b.def_var(var, next);
        let again = b.ins().icmp(IntCC::SignedLessThan, next, hi);
        b.ins().brif(again, body_block, &[], exit, &[]);
        b.seal_block(body_block);
        b.seal_block(exit);
        b.switch_to_block(exit);
    }

    /// `for i in 0..n { body(i) }`.
    fn for_n(&mut self, n: Value, body: impl FnOnce(&mut Self, Value)) {
        let zero = self.int(0);
        self.for_loop(zero, n, 1, body)
    }

    /// `if cond { then } else { otherwise }`.
    fn if_else(&mut self, cond: Value, then: impl FnOnce(&mut Self), otherwise: impl FnOnce(&mut Self)) {
        let b = self.fb();
        let (t, e, join) = (b.create_block(), b.create_block(), b.create_block());
        b.ins().brif(cond, t, &[], e, &[]);
        b.seal_block(t);
        b.seal_block(e);
        b.switch_to_block(t);
        then(self);
        self.fb().ins().jump(join, &[]);
        self.fb().switch_to_block(e);
        otherwise(self);
        let b = self.fb();
        b.ins().jump(join, &[]);
        b.seal_block(join);
        b.switch_to_block(join);
    }

    /// `if cond { then }`.
    fn if_then(&mut self, cond: Value, then: impl FnOnce(&mut Self)) {
        self.if_else(cond, then, |_| {});
    }
}
