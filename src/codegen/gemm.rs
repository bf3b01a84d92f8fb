//! A GEMM written in Cranelift IR. Stage: code generation (beside `emit`). Input: a module,
//! a symbol name and a dtype; output: a function in that module with the C signature of
//! `symbols::netc_gemm_f32` / `netc_gemm_f64`:
//!
//! ```c
//! void NAME(int64_t m, int64_t k, int64_t n, T alpha,
//!           const T* a, int64_t rsa, int64_t csa,   /* A: m × k */
//!           const T* b, int64_t rsb, int64_t csb,   /* B: k × n */
//!           T beta, T* c, int64_t rsc, int64_t csc); /* C: m × n, C = alpha·A·B + beta·C */
//! ```
//!
//! (declared once as `symbols::GemmArgs`: `abi::gemm_signature`, and `GemmValues` for the
//! function's parameters).
//!
//! Why: an object file from `netc build` should carry its own matrix multiply, so that it
//! links with nothing but libc/libm, on every target Cranelift supports. Only 128-bit vectors
//! (f32x4 / f64x2) are used, which x86-64 and aarch64 both lower.
//!
//! Strides are in elements and may be any positive values (a transpose is a swap of strides).
//! C is never read when beta is 0 (it may hold NaN garbage); m ≤ 0 or n ≤ 0 does nothing;
//! k ≤ 0 gives C = beta·C. Nothing outside the described matrices is read or written.
//!
//! # Algorithm
//!
//! ```text
//! for j0 in (0..n).step_by(NR)            NR = two vectors: 8 f32 or 4 f64
//!   for p0 in (0..k).step_by(KC)
//!     pack B[p0.., j0..] (KC × NR) into a stack panel, zero past n
//!     for i0 in (0..m).step_by(MR)        MR = 4
//!       4 × NR tile of accumulators (8 vectors) over the panel: per k one vector pair of
//!       the panel times four splatted scalars of A
//!       C tile = alpha·acc + beta·C (first k-block) or C + alpha·acc (later ones)
//! ```
//!
//! Packing makes every layout of B (row- or column-major, padded, n not a multiple of NR)
//! the same contiguous, aligned panel for the inner loop. A is read in place with its
//! strides, one scalar per row and k, so any layout works; the rows past m in the last
//! i-block re-read row m-1 (in bounds) and are not stored. Full tiles with unit column
//! stride in C are loaded and stored as vectors; other tiles go through a small stack tile
//! and are stored element by element. The IR is loops only, so the function compiles in
//! about 1.6 ms (opt_level speed, x86-64) whatever the matrix sizes.
//!
//! Performance (x86-64 Zen 3, one thread, f32): about 42 GFLOP/s at 512³ and 45 at
//! 128×256×784 (M×N×K), near the ~50 that 128-bit FMA allows; `tests/gemm.rs` has the
//! measurement. The 4 × NR tile with the k-loop unrolled twice is the best shape for
//! Cranelift's x86-64 backend, whose `fma` ties the result to a multiplicand (a register copy
//! per row and k; more accumulators spill). What made the difference is `a_element`.
//!
//! The stack frame is about 8.5 KiB (the panel). Cranelift emits no stack probes unless
//! the ISA enables them (`enable_probestack`, `probestack_strategy = inline`).

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, F32X4, F64, F64X2, I64};
use cranelift_codegen::ir::{
    Function, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Type, UserFuncName, Value,
};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_module::{FuncId, Linkage, Module, ModuleError};

use super::abi::{gemm_signature, GemmArgs, GemmValues, Matrix};
use super::builder::LoopBuilder;
use crate::diag::Diagnostic;
use crate::ir::graph::DType;

/// Rows of the register tile.
const MR: i64 = 4;
/// Rows of k per packed panel: KC × NR elements = 8 KiB of stack for both dtypes, which stays
/// in L1 while the whole height of A streams past it.
const KC: i64 = 256;
/// k steps per iteration of the micro-kernel loop (measured: 1 is ~20% slower, 4 no better).
const UNROLL: i64 = 2;

/// Declare `name` with `linkage` and define it as C = alpha·A·B + beta·C in `dtype` (see the
/// module documentation for the contract). Uses `fma` only where the ISA has it natively
/// (otherwise Cranelift would call libm's `fma`), `fmul` + `fadd` elsewhere.
pub fn define_gemm<M: Module>(
    module: &mut M,
    name: &str,
    linkage: Linkage,
    dtype: DType,
) -> Result<FuncId, Diagnostic> {
    let err = |e: ModuleError| Diagnostic::new("E-codegen", format!("generating the GEMM `{name}` failed: {e}"));
    let ptr = module.target_config().pointer_type();
    if ptr != I64 {
        // Addresses are computed in i64 together with the i64 strides.
        return Err(Diagnostic::new("E-codegen", format!("the generated GEMM needs 64-bit pointers, not {ptr}")));
    }
    let sig = gemm_signature(module, dtype);
    let id = module.declare_function(name, linkage, &sig).map_err(err)?;
    let fma = module.isa().has_native_fma();

    let mut ctx = module.make_context();
    ctx.func = Function::with_name_signature(UserFuncName::user(0, id.as_u32()), sig);
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let params: [Value; 14] = b.block_params(entry).try_into().expect("the GEMM signature has 14 parameters");
        let params = GemmValues::from_array(params);
        let (ty, vty, lanes, shift) = match dtype {
            DType::F32 => (F32, F32X4, 4, 2),
            DType::F64 => (F64, F64X2, 2, 3),
        };
        let es = 1 << shift;
        let mut g = Gen { b, ty, vty, lanes, es, shift, nr: 2 * lanes, fma };
        g.body(params);
        g.b.ins().return_(&[]);
        g.b.finalize(module.target_config());
    }
    define_body(module, id, &mut ctx)?;
    Ok(id)
}

fn define_body<M: Module>(module: &mut M, func: FuncId, ctx: &mut Context) -> Result<(), Diagnostic> {
    module.define_function(func, ctx).map_err(|e| {
        let msg = match e {
            ModuleError::Compilation(ce) => cranelift_codegen::print_errors::pretty_error(&ctx.func, ce),
            other => other.to_string(),
        };
        Diagnostic::new("E-codegen", format!("generating the GEMM failed: {msg}"))
    })
}

/// The caller's matrices: in bounds by contract, but of unknown alignment (no `aligned`,
/// so x86 without AVX never folds them into an instruction that needs 16-byte alignment).
fn user() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// A and B: the contract says C does not overlap them, so nothing this function stores
/// changes them.
fn input() -> MemFlagsData {
    user().with_readonly()
}

/// An element of A in the micro-kernel: also `can_move`, which makes the load pure for
/// Cranelift's egraph, so each is scheduled next to the FMAs that use it instead of all at
/// the top of the loop body (there they spilled accumulators: 26 → 42 GFLOP/s at 512³).
/// Moving it is safe because its address depends on the k-loop variable, so it can never be
/// hoisted above the loop guard that proves it in bounds.
fn a_element() -> MemFlagsData {
    input().with_can_move()
}

/// The stack panel and tile: 16-byte aligned, every vector access at a multiple of 16.
fn stack() -> MemFlagsData {
    MemFlagsData::trusted()
}

struct Gen<'f> {
    b: FunctionBuilder<'f>,
    /// Scalar type, its 128-bit vector, lanes per vector, element bytes and their log2.
    ty: Type,
    vty: Type,
    lanes: i64,
    es: i64,
    shift: i64,
    /// Columns of the register tile (two vectors).
    nr: i64,
    /// The ISA has a native fused multiply-add.
    fma: bool,
}

impl<'f> LoopBuilder<'f> for Gen<'f> {
    fn fb(&mut self) -> &mut FunctionBuilder<'f> {
        &mut self.b
    }

    fn float_type(&self) -> Type {
        self.ty
    }

    fn has_fma(&self) -> bool {
        self.fma
    }
}

/// The 2·MR vector accumulators of a tile, row-major (row r: `acc[2r]`, `acc[2r + 1]`).
type Tile = [Value; 2 * MR as usize];

impl Gen<'_> {
    fn body(&mut self, params: GemmValues) {
        let GemmArgs { m, k, n, alpha, beta, .. } = params;
        let Matrix { ptr: a, rs: rsa, cs: csa } = params.a;
        let Matrix { ptr: b, rs: rsb, cs: csb } = params.b;
        let Matrix { ptr: c, rs: rsc, cs: csc } = params.c;
        let (nr_full, es, sh) = (self.nr, self.es, self.shift);
        let row_bytes = nr_full * es;

        // m ≤ 0 or n ≤ 0: C is empty.
        let work = self.b.create_block();
        let done = self.b.create_block();
        let no_m = self.b.ins().icmp_imm_s(IntCC::SignedLessThanOrEqual, m, 0);
        let no_n = self.b.ins().icmp_imm_s(IntCC::SignedLessThanOrEqual, n, 0);
        let empty = self.b.ins().bor(no_m, no_n);
        self.b.ins().brif(empty, done, &[], work, &[]);
        self.b.seal_block(work);
        self.b.switch_to_block(work);

        // Strides in bytes.
        let [rsa, csa, rsb, csb, rsc, csc] = [rsa, csa, rsb, csb, rsc, csc].map(|s| self.b.ins().ishl_imm_s(s, sh));
        // k ≤ 0: one k-block of length 0 with alpha = 0, i.e. C = beta·C through the normal
        // write-back (alpha·0 would be NaN for an infinite alpha).
        let zero = self.int(0);
        let kpos = self.b.ins().smax(k, zero);
        let one_i = self.int(1);
        let k_blocks_end = self.b.ins().smax(kpos, one_i);
        let has_k = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, k, 0);
        let fzero = self.fconst(0.0);
        let fone = self.fconst(1.0);
        let alpha = self.b.ins().select(has_k, alpha, fzero);
        let alpha_v = self.b.ins().splat(self.vty, alpha);
        let beta_zero = self.b.ins().fcmp(FloatCC::Equal, beta, fzero);
        let m_last = self.b.ins().iadd_imm_s(m, -1);

        let slot = |bytes: i64| StackSlotData::new(StackSlotKind::ExplicitSlot, bytes as u32, 4);
        let panel_slot = self.b.create_sized_stack_slot(slot(KC * row_bytes));
        let tile_slot = self.b.create_sized_stack_slot(slot(MR * row_bytes));
        let panel = self.b.ins().stack_addr(I64, panel_slot, 0);
        let tile = self.b.ins().stack_addr(I64, tile_slot, 0);

        self.for_loop(zero, n, nr_full, |g, j0| {
            let left = g.b.ins().isub(n, j0);
            let nr_max = g.int(nr_full);
            let nr = g.b.ins().smin(left, nr_max);
            let full = g.b.ins().icmp_imm_s(IntCC::Equal, nr, nr_full);
            let csb_unit = g.b.ins().icmp_imm_s(IntCC::Equal, csb, es);
            let csc_unit = g.b.ins().icmp_imm_s(IntCC::Equal, csc, es);
            let vec_b = g.b.ins().band(full, csb_unit);
            let vec_c = g.b.ins().band(full, csc_unit);
            let bj = g.offset(b, j0, csb);
            let cj = g.offset(c, j0, csc);
            let zero = g.int(0);
            g.for_loop(zero, k_blocks_end, KC, |g, p0| {
                let rest = g.b.ins().isub(kpos, p0);
                let kc_max = g.int(KC);
                let kc = g.b.ins().smin(rest, kc_max);
                let zero = g.int(0);
                let kc = g.b.ins().smax(kc, zero);
                // The first k-block applies beta; later ones add to what it wrote.
                let first = g.b.ins().icmp_imm_s(IntCC::Equal, p0, 0);
                let bz = g.b.ins().band(first, beta_zero);
                let beta_k = g.b.ins().select(first, beta, fone);
                let beta_kv = g.b.ins().splat(g.vty, beta_k);

                let bk = g.offset(bj, p0, rsb);
                g.pack(bk, kc, nr, vec_b, rsb, csb, panel);

                let ak = g.offset(a, p0, csa);
                g.for_loop(zero, m, MR, |g, i0| {
                    // Rows past m re-read row m-1 (in bounds) and are never stored.
                    let rows: [Value; MR as usize] = std::array::from_fn(|r| {
                        let i = g.b.ins().iadd_imm_s(i0, r as i64);
                        let i = g.b.ins().smin(i, m_last);
                        g.offset(ak, i, rsa)
                    });
                    let acc = g.micro_kernel(rows, csa, panel, kc);
                    let scaled = acc.map(|v| g.b.ins().fmul(alpha_v, v));
                    let left = g.b.ins().isub(m, i0);
                    let mr_max = g.int(MR);
                    let mr = g.b.ins().smin(left, mr_max);
                    let full_rows = g.b.ins().icmp_imm_s(IntCC::Equal, mr, MR);
                    let fast = g.b.ins().band(vec_c, full_rows);
                    let ci = g.offset(cj, i0, rsc);
                    g.if_else(
                        fast,
                        |g| g.store_vectors(ci, rsc, &scaled, beta_kv, bz),
                        |g| g.store_scalars(ci, rsc, csc, mr, nr, &scaled, tile, beta_k, bz),
                    );
                });
            });
        });
        self.b.ins().jump(done, &[]);
        self.b.seal_block(done);
        self.b.switch_to_block(done);
    }

    /// Copy B[0..kc, 0..nr] (at `bk`, byte strides `rsb`, `csb`) into the panel as kc rows of
    /// NR elements, columns past nr zero (they multiply into tile columns that are not stored).
    #[allow(clippy::too_many_arguments)]
    fn pack(&mut self, bk: Value, kc: Value, nr: Value, vec_b: Value, rsb: Value, csb: Value, panel: Value) {
        let row_bytes = self.nr * self.es;
        let vbytes = (self.lanes * self.es) as i32;
        let zero = self.int(0);
        self.if_else(
            vec_b,
            // Full block of a B with unit column stride: two vector copies per row.
            |g| {
                g.for_loop(zero, kc, 1, |g, kk| {
                    let src = g.offset(bk, kk, rsb);
                    let dst = g.b.ins().imul_imm_s(kk, row_bytes);
                    let dst = g.b.ins().iadd(panel, dst);
                    for v in 0..2 {
                        let x = g.b.ins().load(g.vty, input(), src, v * vbytes);
                        g.b.ins().store(stack(), x, dst, v * vbytes);
                    }
                });
            },
            // Any other layout, or the last columns: zero the panel if columns are missing,
            // then copy column by column (the k-walk is contiguous for a transposed B).
            |g| {
                let partial = g.b.ins().icmp_imm_s(IntCC::SignedLessThan, nr, g.nr);
                g.if_then(partial, |g| {
                    let z = g.fconst(0.0);
                    let zv = g.b.ins().splat(g.vty, z);
                    g.for_loop(zero, kc, 1, |g, kk| {
                        let dst = g.b.ins().imul_imm_s(kk, row_bytes);
                        let dst = g.b.ins().iadd(panel, dst);
                        for v in 0..2 {
                            g.b.ins().store(stack(), zv, dst, v * vbytes);
                        }
                    });
                });
                g.for_loop(zero, nr, 1, |g, col| {
                    let src = g.offset(bk, col, csb);
                    let dst = g.b.ins().ishl_imm_s(col, g.shift);
                    let dst = g.b.ins().iadd(panel, dst);
                    g.for_loop(zero, kc, 1, |g, kk| {
                        let s = g.offset(src, kk, rsb);
                        let x = g.b.ins().load(g.ty, input(), s, 0);
                        let d = g.b.ins().imul_imm_s(kk, row_bytes);
                        let d = g.b.ins().iadd(dst, d);
                        g.b.ins().store(stack(), x, d, 0);
                    });
                });
            },
        );
    }

    /// The MR × NR product of `rows` of A (k-stride `csa` bytes) and the first `kc` rows of
    /// the panel, in 2·MR vector accumulators: a loop UNROLL k steps at a time, then one step
    /// at a time for the rest.
    fn micro_kernel(&mut self, rows: [Value; MR as usize], csa: Value, panel: Value, kc: Value) -> Tile {
        let row_bytes = self.nr * self.es;
        let z = self.fconst(0.0);
        let zv = self.b.ins().splat(self.vty, z);
        let acc: [Variable; 2 * MR as usize] = std::array::from_fn(|_| {
            let v = self.b.declare_var(self.vty);
            self.b.def_var(v, zv);
            v
        });
        // The panel row and the byte offset of column k in A, walked together.
        let pb = self.b.declare_var(I64);
        let off = self.b.declare_var(I64);
        self.b.def_var(pb, panel);
        let zero = self.int(0);
        self.b.def_var(off, zero);

        // One k step: acc[r] += splat(A[r, k]) · panel[k] (`p + at`: the panel row).
        let step = |g: &mut Self, p: Value, at: i32, offk: Value| {
            let vbytes = (g.lanes * g.es) as i32;
            let b0 = g.b.ins().load(g.vty, stack(), p, at);
            let b1 = g.b.ins().load(g.vty, stack(), p, at + vbytes);
            for (r, &row) in rows.iter().enumerate() {
                let addr = g.b.ins().iadd(row, offk);
                let x = g.b.ins().load(g.ty, a_element(), addr, 0);
                let s = g.b.ins().splat(g.vty, x);
                for (h, bv) in [b0, b1].into_iter().enumerate() {
                    let old = g.b.use_var(acc[2 * r + h]);
                    let new = g.mul_add(s, bv, old);
                    g.b.def_var(acc[2 * r + h], new);
                }
            }
        };
        // `while pb < end { `unroll` steps }`, as a rotated loop.
        let k_loop = |g: &mut Self, end: Value, unroll: i64| {
            let body = g.b.create_block();
            let exit = g.b.create_block();
            let p = g.b.use_var(pb);
            let enter = g.b.ins().icmp(IntCC::UnsignedLessThan, p, end);
            g.b.ins().brif(enter, body, &[], exit, &[]);
            g.b.switch_to_block(body);
            let p = g.b.use_var(pb);
            let mut o = g.b.use_var(off);
            for u in 0..unroll {
                step(g, p, (u * row_bytes) as i32, o);
                o = g.b.ins().iadd(o, csa);
            }
            let p = g.b.ins().iadd_imm_s(p, unroll * row_bytes);
            g.b.def_var(pb, p);
            g.b.def_var(off, o);
            let again = g.b.ins().icmp(IntCC::UnsignedLessThan, p, end);
            g.b.ins().brif(again, body, &[], exit, &[]);
            g.b.seal_block(body);
            g.b.seal_block(exit);
            g.b.switch_to_block(exit);
        };
        let kc_main = self.b.ins().band_imm_s(kc, -UNROLL);
        let end_main = self.b.ins().imul_imm_s(kc_main, row_bytes);
        let end_main = self.b.ins().iadd(panel, end_main);
        k_loop(self, end_main, UNROLL);
        let end = self.b.ins().imul_imm_s(kc, row_bytes);
        let end = self.b.ins().iadd(panel, end);
        k_loop(self, end, 1);
        acc.map(|v| self.b.use_var(v))
    }

    /// Full tile, unit column stride: C rows as vectors. `scaled` is alpha·acc.
    fn store_vectors(&mut self, ci: Value, rsc: Value, scaled: &Tile, beta_v: Value, bz: Value) {
        let vbytes = (self.lanes * self.es) as i32;
        let rows: [Value; MR as usize] = std::array::from_fn(|r| {
            let d = self.b.ins().imul_imm_s(rsc, r as i64);
            self.b.ins().iadd(ci, d)
        });
        self.if_else(
            bz,
            |g| {
                for (i, &v) in scaled.iter().enumerate() {
                    g.b.ins().store(user(), v, rows[i / 2], (i % 2) as i32 * vbytes);
                }
            },
            |g| {
                for (i, &v) in scaled.iter().enumerate() {
                    let at = (i % 2) as i32 * vbytes;
                    let old = g.b.ins().load(g.vty, user(), rows[i / 2], at);
                    let new = g.mul_add(beta_v, old, v);
                    g.b.ins().store(user(), new, rows[i / 2], at);
                }
            },
        );
    }

    /// Any tile: through the stack tile, then element by element with C's strides, only the
    /// `mr` × `nr` elements inside C.
    #[allow(clippy::too_many_arguments)]
    fn store_scalars(
        &mut self,
        ci: Value,
        rsc: Value,
        csc: Value,
        mr: Value,
        nr: Value,
        scaled: &Tile,
        tile: Value,
        beta: Value,
        bz: Value,
    ) {
        let vbytes = (self.lanes * self.es) as i32;
        for (i, &v) in scaled.iter().enumerate() {
            self.b.ins().store(stack(), v, tile, i as i32 * vbytes);
        }
        let row_bytes = self.nr * self.es;
        let zero = self.int(0);
        self.for_loop(zero, mr, 1, |g, r| {
            let crow = g.offset(ci, r, rsc);
            let trow = g.b.ins().imul_imm_s(r, row_bytes);
            let trow = g.b.ins().iadd(tile, trow);
            g.for_loop(zero, nr, 1, |g, col| {
                let t = g.b.ins().ishl_imm_s(col, g.shift);
                let t = g.b.ins().iadd(trow, t);
                let x = g.b.ins().load(g.ty, stack(), t, 0);
                let dst = g.offset(crow, col, csc);
                g.if_else(
                    bz,
                    |g| {
                        g.b.ins().store(user(), x, dst, 0);
                    },
                    |g| {
                        let old = g.b.ins().load(g.ty, user(), dst, 0);
                        let new = g.mul_add(beta, old, x);
                        g.b.ins().store(user(), new, dst, 0);
                    },
                );
            });
        });
    }
}
