//! `Random`: the counter-based streams of `ir::ops::random`, bit for bit.
//!
//! The stream key is derived once per call from the key's eight pieces (two Threefry-2x32
//! evaluations on scalar i32); then four elements at a time run the 20 rounds on i32x4 lanes
//! (add, shift-or rotate, xor), counters i..i+3, and their 24 high bits become floats in
//! [0, 1). The tail runs the same rounds on scalar i32.

use cranelift_codegen::ir::types::{F64, I32, I32X4};
use cranelift_codegen::ir::{InstBuilder, Type, Value};

use super::{Emitter, Mode};
use crate::codegen::builder::LoopBuilder;
use crate::codegen::kernel::*;
use crate::ir::ops::random::{KEY_LEN, PARITY, ROTATIONS};

impl Emitter<'_> {
    pub(super) fn random(&mut self, count: &Mono, stream: u32, key: &Access, out: &Access) {
        // The run key (seed) and the step, each from four 16-bit pieces.
        let pk = self.addr(key);
        let mut pieces = Vec::with_capacity(KEY_LEN);
        for j in 0..KEY_LEN as i64 {
            let p = self.elem_const(pk, j);
            let f = self.load_scalar(p);
            pieces.push(self.b.ins().fcvt_to_uint_sat(I32, f));
        }
        let word = |e: &mut Self, lo: Value, hi: Value| {
            let hi = e.b.ins().ishl_imm_u(hi, 16);
            e.b.ins().bor(lo, hi)
        };
        let run = [word(self, pieces[0], pieces[1]), word(self, pieces[2], pieces[3])];
        let step = [word(self, pieces[4], pieces[5]), word(self, pieces[6], pieces[7])];
        let step_key = self.threefry(I32, run, step);
        let counter = [self.word(I32, stream), self.word(I32, 0)];
        let stream_key = self.threefry(I32, step_key, counter);
        let vector_key = stream_key.map(|k| self.b.ins().splat(I32X4, k));

        let n = self.mono(count);
        let pout = self.addr(out);
        let main = self.b.ins().band_imm_s(n, -4);
        let zero = self.int(0);
        // Lane l of the vector loop is element i + l.
        let mut iota = self.word(I32X4, 0);
        for l in 1..4u8 {
            let c = self.word(I32, l as u32);
            iota = self.b.ins().insertlane(iota, c, l);
        }
        for mode in [Mode::Vector, Mode::Tail] {
            let (lo, hi, width) = match mode {
                Mode::Vector => (zero, main, 4),
                Mode::Tail => (main, n, 1),
            };
            self.for_loop(lo, hi, width, |e, i| {
                // The counter (i mod 2³², i div 2³²); i is a multiple of 4 in the vector loop,
                // so i + 3 does not carry into the high word.
                let low = e.b.ins().ireduce(I32, i);
                let high = e.b.ins().ushr_imm_u(i, 32);
                let high = e.b.ins().ireduce(I32, high);
                let bits = if mode == Mode::Vector {
                    let low = e.b.ins().splat(I32X4, low);
                    let low = e.b.ins().iadd(low, iota);
                    let high = e.b.ins().splat(I32X4, high);
                    e.threefry(I32X4, vector_key, [low, high])[0]
                } else {
                    e.threefry(I32, stream_key, [low, high])[0]
                };
                e.store_uniform(bits, pout, i, width);
            });
        }
    }

    /// A 32-bit constant, splat when `ty` is a vector.
    fn word(&mut self, ty: Type, v: u32) -> Value {
        let c = self.b.ins().iconst(I32, v as i64);
        if ty.is_vector() {
            self.b.ins().splat(ty, c)
        } else {
            c
        }
    }

    /// Threefry-2x32, 20 rounds, on i32 or i32x4 (`ir::ops::random::threefry2x32`).
    fn threefry(&mut self, ty: Type, key: [Value; 2], counter: [Value; 2]) -> [Value; 2] {
        let parity = self.word(ty, PARITY);
        let both = self.b.ins().bxor(key[0], key[1]);
        let ks = [key[0], key[1], self.b.ins().bxor(both, parity)];
        let mut x0 = self.b.ins().iadd(counter[0], ks[0]);
        let mut x1 = self.b.ins().iadd(counter[1], ks[1]);
        for group in 0..5 {
            for r in 0..4 {
                x0 = self.b.ins().iadd(x0, x1);
                // rotl(x1, k) as shifts: x64 has no vector rotate.
                let k = ROTATIONS[(group % 2) * 4 + r] as i64;
                let left = self.b.ins().ishl_imm_u(x1, k);
                let right = self.b.ins().ushr_imm_u(x1, 32 - k);
                x1 = self.b.ins().bor(left, right);
                x1 = self.b.ins().bxor(x1, x0);
            }
            let s = group + 1;
            x0 = self.b.ins().iadd(x0, ks[s % 3]);
            x1 = self.b.ins().iadd(x1, ks[(s + 1) % 3]);
            let injection = self.word(ty, s as u32);
            x1 = self.b.ins().iadd(x1, injection);
        }
        [x0, x1]
    }

    /// Store (w >> 8)·2⁻²⁴ of each of the `width` lanes of `bits` at elements i.. of `out`.
    fn store_uniform(&mut self, bits: Value, out: Value, i: Value, width: i64) {
        let scale = 1.0 / (1u32 << 24) as f64;
        let top = self.b.ins().ushr_imm_u(bits, 8);
        if width == 4 && self.ty != F64 {
            // f32x4: the four lanes at once (24-bit integers convert exactly).
            let f = self.b.ins().fcvt_from_sint(self.vty, top);
            let s = self.splat(scale);
            let u = self.b.ins().fmul(f, s);
            let at = self.elem(out, i);
            self.store_vector(u, at);
            return;
        }
        let s = self.fconst(scale);
        for l in 0..width {
            let lane = if width == 1 { top } else { self.b.ins().extractlane(top, l as u8) };
            let f = self.b.ins().fcvt_from_sint(self.ty, lane);
            let u = self.b.ins().fmul(f, s);
            let l = self.b.ins().iadd_imm_s(i, l);
            let at = self.elem(out, l);
            self.store_scalar(u, at);
        }
    }
}
