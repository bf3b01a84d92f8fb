//! `Winograd` kernels: one tile transform of the whole batch (`runtime::winograd::Transform`,
//! whose module documents the maths and the layouts), as one call of the transform symbol
//! (JIT) or as loops (object files, and the JIT's generated-GEMM mode that the tests hold to
//! the interpreter).
//!
//! The loops take a vector of channels (or filters) at a time — f32x4 / f64x2, then one at a
//! time in lane 0 — gather each tile into a stack slot of vectors (zero where it lies in the
//! padding or past the output's edge), apply X ↦ L X Lᵀ in two passes whose coefficients are
//! constants of the code (zeros skipped, ±1 as additions), and store or scatter the result.
//! The loops over tiles and tile elements are real loops: the code's size does not grow with
//! the tensors, only with the matrices' nonzero coefficients.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I64, I8};
use cranelift_codegen::ir::{FuncRef, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Value};

use super::{Emitter, Mode};
use crate::codegen::builder::LoopBuilder;
use crate::codegen::kernel::*;

impl Emitter<'_> {
    pub(super) fn winograd(&mut self, op: Transform, batch: &Mono, g: &WinogradGeom, src: &Access, dst: &Access) {
        let n = self.mono(batch);
        let (ps, pd) = (self.addr(src), self.addr(dst));
        if let Some(f) = self.env.winograd {
            self.winograd_call(f, op, n, g, ps, pd);
            return;
        }
        let (l, p, q) = g.tile.matrix(op);
        let (a, m, r) = (g.tile.alpha(), g.tile.m, g.tile.r);
        let (xs, ts, ys) = (self.vector_slot(q * q), self.vector_slot(p * q), self.vector_slot(p * p));
        let sandwich = |e: &mut Self| e.tile_sandwich(&l, p, q, xs, ts, ys);
        let (th, tw) = g.tiles_hw();
        let tiles = g.tiles() as i64;
        // Tile (ti, tj) of image `img`: its index among all the batch's tiles.
        let tile_index = |e: &mut Self, img: Value, ti: Value, tj: Value| {
            let t = e.b.ins().imul_imm_s(img, tiles);
            let row = e.b.ins().imul_imm_s(ti, tw as i64);
            let t = e.b.ins().iadd(t, row);
            e.b.ins().iadd(t, tj)
        };
        // Element (row, ξ, c) of a [rows, α², channels] batch of matrices.
        let domain = |e: &mut Self, base: Value, row: Value, xi: Value, c0: Value, channels: usize| {
            let i = e.b.ins().imul_imm_s(row, (a * a) as i64);
            let i = e.b.ins().iadd(i, xi);
            let i = e.b.ins().imul_imm_s(i, channels as i64);
            let i = e.b.ins().iadd(i, c0);
            e.elem(base, i)
        };
        let (alpha2, rr) = (self.int((a * a) as i64), (r * r) as i64);
        // xs[ξ] = src[row][ξ][c0..].
        let load_domain = |e: &mut Self, row: Value, c0: Value, channels: usize, mode: Mode| {
            e.for_n(alpha2, |e, xi| {
                let p = domain(e, ps, row, xi, c0, channels);
                let v = e.load_lanes(mode, p);
                e.slot_store(v, xs, xi);
            });
        };
        // dst[row][ξ][c0..] = ys[ξ].
        let store_domain = |e: &mut Self, row: Value, c0: Value, channels: usize, mode: Mode| {
            e.for_n(alpha2, |e, xi| {
                let v = e.slot_load(ys, xi);
                let p = domain(e, pd, row, xi, c0, channels);
                e.store_lanes(mode, v, p);
            });
        };
        // Filter f0's tap k (of r²) of input channel c in a [f, c, r, r] tensor at `base`; the
        // next filters' taps are c·r² apart.
        let tap = |e: &mut Self, base: Value, c: Value, f0: Value, k: Value| {
            let i = e.b.ins().imul_imm_s(f0, g.c as i64 * rr);
            let cr = e.b.ins().imul_imm_s(c, rr);
            let i = e.b.ins().iadd(i, cr);
            let i = e.b.ins().iadd(i, k);
            e.elem(base, i)
        };
        // xs = tile (ti, tj)'s window of the source `image` (zero outside the image).
        let window_to_slot =
            |e: &mut Self, image: &Image, img: Value, c0: Value, (ti, tj): (Value, Value), mode: Mode| {
                let side = e.int(image.side as i64);
                e.for_n(side, |e, k| {
                    e.for_n(side, |e, j| {
                        let (y, x) = (e.tile_pos(ti, m, k, image.pad), e.tile_pos(tj, m, j, image.pad));
                        let p0 = e.image_elem(ps, img, c0, (y, x), (image.channels, image.h, image.w));
                        let v = e.load_strided(mode, p0.0, (image.h * image.w) as i64);
                        let v = e.zero_unless(p0.1, v);
                        let at = e.b.ins().imul_imm_s(k, image.side as i64);
                        let at = e.b.ins().iadd(at, j);
                        e.slot_store(v, xs, at);
                    });
                });
            };
        // Tile (ti, tj)'s window of the destination `image` = ys (with `add`, += ys), where it
        // lies inside the image.
        let slot_to_window =
            |e: &mut Self, image: &Image, add: bool, img: Value, c0: Value, (ti, tj): (Value, Value), mode: Mode| {
                let side = e.int(image.side as i64);
                e.for_n(side, |e, i| {
                    e.for_n(side, |e, j| {
                        let (y, x) = (e.tile_pos(ti, m, i, image.pad), e.tile_pos(tj, m, j, image.pad));
                        let (p0, inside) = e.image_elem(pd, img, c0, (y, x), (image.channels, image.h, image.w));
                        e.if_then(inside, |e| {
                            let at = e.b.ins().imul_imm_s(i, image.side as i64);
                            let at = e.b.ins().iadd(at, j);
                            let v = e.slot_load(ys, at);
                            e.store_strided(mode, v, p0, (image.h * image.w) as i64, add);
                        });
                    });
                });
            };
        match op {
            Transform::Filter => self.per_channel(g, &|e, c, f0, mode| {
                // xs[k] = w[f0 + lane][c][k]
                let filters = e.int(rr);
                e.for_n(filters, |e, k| {
                    let p0 = tap(e, ps, c, f0, k);
                    let v = e.load_strided(mode, p0, g.c as i64 * rr);
                    e.slot_store(v, xs, k);
                });
                sandwich(e);
                store_domain(e, c, f0, g.f, mode);
            }),
            Transform::FilterAdjoint => self.per_channel(g, &|e, c, f0, mode| {
                load_domain(e, c, f0, g.f, mode);
                sandwich(e);
                let filters = e.int(rr);
                e.for_n(filters, |e, k| {
                    let v = e.slot_load(ys, k);
                    let p0 = tap(e, pd, c, f0, k);
                    e.store_strided(mode, v, p0, g.c as i64 * rr, false);
                });
            }),
            // Image to tiles: x's α×α windows (input), or the upstream gradient's m×m ones
            // (output adjoint).
            Transform::Input | Transform::OutputAdjoint => {
                let image = if op == Transform::Input { Image::input(g) } else { Image::output(g) };
                self.per_tile(n, image.channels, (th, tw), &|e, img, c0, (ti, tj), mode| {
                    window_to_slot(e, &image, img, c0, (ti, tj), mode);
                    sandwich(e);
                    let nt = tile_index(e, img, ti, tj);
                    store_domain(e, nt, c0, image.channels, mode);
                })
            }
            // Tiles to image: dx, the sum of the overlapping α×α windows (input adjoint, dx
            // zeroed first), or y, of the m×m ones (output).
            Transform::InputAdjoint | Transform::Output => {
                let add = op == Transform::InputAdjoint;
                let image = if add { Image::input(g) } else { Image::output(g) };
                if add {
                    let len = self.b.ins().imul_imm_s(n, (g.c * g.h * g.w) as i64);
                    self.fill(pd, len, 0.0);
                }
                self.per_tile(n, image.channels, (th, tw), &|e, img, c0, (ti, tj), mode| {
                    let nt = tile_index(e, img, ti, tj);
                    load_domain(e, nt, c0, image.channels, mode);
                    sandwich(e);
                    slot_to_window(e, &image, add, img, c0, (ti, tj), mode);
                })
            }
        }
    }

    /// One call of the transform symbol, its geometry in a stack slot (in checked mode only
    /// when the source and destination lie inside their buffers).
    fn winograd_call(&mut self, f: FuncRef, op: Transform, n: Value, g: &WinogradGeom, ps: Value, pd: Value) {
        let slot = self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 72, 3));
        for (i, v) in g.to_array().into_iter().enumerate() {
            let v = self.int(v);
            self.b.ins().stack_store(I64, v, slot, (8 * i) as i32);
        }
        let geom = self.b.ins().stack_addr(I64, slot, 0);
        let code = self.int(op.code());
        if self.sink.is_none() {
            self.b.ins().call(f, &[code, geom, n, ps, pd]);
            return;
        }
        // Each side holds a fixed number of elements or a number per image.
        let (zero, one) = (self.int(0), self.int(1));
        let len = |e: &mut Self, side: fn((usize, usize)) -> usize| {
            let (fixed, per_image) = (side(g.sizes(op, 0)), side(g.sizes(op, 1)) - side(g.sizes(op, 0)));
            let per = e.b.ins().imul_imm_s(n, per_image as i64);
            e.b.ins().iadd_imm_s(per, fixed as i64)
        };
        let (src_len, dst_len) = (len(self, |s| s.0), len(self, |s| s.1));
        let mut ok = self.b.ins().iconst(I8, 1);
        for (p, len) in [(ps, src_len), (pd, dst_len)] {
            let active = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, len, 0);
            let inside = self.matrix_ok(p, one, len, zero, one, active);
            ok = self.b.ins().band(ok, inside);
        }
        self.if_then(ok, |e| {
            e.b.ins().call(f, &[code, geom, n, ps, pd]);
        });
    }

    /// `body(e, c, f0, mode)` for every input channel c and block of filters f0.. (the filter
    /// transforms).
    fn per_channel(&mut self, g: &WinogradGeom, body: &dyn Fn(&mut Self, Value, Value, Mode)) {
        let channels = self.int(g.c as i64);
        self.for_n(channels, |e, c| e.lanes_of(g.f, &|e, f0, mode| body(e, c, f0, mode)));
    }

    /// `body(e, img, c0, (ti, tj), mode)` for every image, block of `channels` and tile.
    fn per_tile(
        &mut self,
        n: Value,
        channels: usize,
        (th, tw): (usize, usize),
        body: &dyn Fn(&mut Self, Value, Value, (Value, Value), Mode),
    ) {
        self.for_n(n, |e, img| {
            e.lanes_of(channels, &|e, c0, mode| {
                let rows = e.int(th as i64);
                e.for_n(rows, |e, ti| {
                    let cols = e.int(tw as i64);
                    e.for_n(cols, |e, tj| body(e, img, c0, (ti, tj), mode));
                });
            });
        });
    }

    /// `body(e, c0, mode)` over `count` channels: a vector of them at a time, then the rest
    /// one at a time (in lane 0).
    fn lanes_of(&mut self, count: usize, body: &dyn Fn(&mut Self, Value, Mode)) {
        let lanes = self.lanes as usize;
        let main = count / lanes * lanes;
        if main > 0 {
            let (lo, hi) = (self.int(0), self.int(main as i64));
            self.for_loop(lo, hi, lanes as i64, |e, c0| body(e, c0, Mode::Vector));
        }
        if main < count {
            let (lo, hi) = (self.int(main as i64), self.int(count as i64));
            self.for_loop(lo, hi, 1, |e, c0| body(e, c0, Mode::Tail));
        }
    }

    /// Row (or column) `t·m + k − pad` of the image of tile `t`'s element `k`.
    fn tile_pos(&mut self, t: Value, m: usize, k: Value, pad: usize) -> Value {
        let p = self.b.ins().imul_imm_s(t, m as i64);
        let p = self.b.ins().iadd(p, k);
        self.b.ins().iadd_imm_s(p, -(pad as i64))
    }

    /// The address of plane[img][c0][y][x] of a [N, planes, h, w] tensor at `base`, and whether
    /// (y, x) lies inside the plane; outside, the address is that of [y, x] = [0, 0] (safe to
    /// read, not to be used).
    fn image_elem(
        &mut self,
        base: Value,
        img: Value,
        c0: Value,
        (y, x): (Value, Value),
        (planes, h, w): (usize, usize, usize),
    ) -> (Value, Value) {
        // Unsigned: a negative position is a huge one.
        let y_in = self.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, y, h as i64);
        let x_in = self.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, x, w as i64);
        let inside = self.b.ins().band(y_in, x_in);
        let zero = self.int(0);
        let (y, x) = (self.b.ins().select(inside, y, zero), self.b.ins().select(inside, x, zero));
        let i = self.b.ins().imul_imm_s(img, planes as i64);
        let i = self.b.ins().iadd(i, c0);
        let i = self.b.ins().imul_imm_s(i, h as i64);
        let i = self.b.ins().iadd(i, y);
        let i = self.b.ins().imul_imm_s(i, w as i64);
        let i = self.b.ins().iadd(i, x);
        (self.elem(base, i), inside)
    }

    /// `v` where `cond` holds, else zeros (branch-free: a lane mask).
    fn zero_unless(&mut self, cond: Value, v: Value) -> Value {
        let (ones, none) = (self.b.ins().iconst(self.ity, -1), self.b.ins().iconst(self.ity, 0));
        let bits = self.b.ins().select(cond, ones, none);
        let mask = self.b.ins().splat(self.ivty, bits);
        let mask = self.as_float(mask);
        let zero = self.splat(0.0);
        self.b.ins().bitselect(mask, v, zero)
    }

    /// The elements at `p0 + lane·stride` (elements) in lanes, or lane 0 only in the tail.
    fn load_strided(&mut self, mode: Mode, p0: Value, stride: i64) -> Value {
        let s = self.load_scalar(p0);
        let mut v = self.lane0(s);
        if mode == Mode::Vector {
            for l in 1..self.lanes {
                let p = self.elem_const(p0, l as i64 * stride);
                let s = self.load_scalar(p);
                v = self.b.ins().insertlane(v, s, l);
            }
        }
        v
    }

    /// Store (or with `add`, add) the lanes of `v` at `p0 + lane·stride`, lane 0 only in the tail.
    fn store_strided(&mut self, mode: Mode, v: Value, p0: Value, stride: i64, add: bool) {
        let lanes = if mode == Mode::Vector { self.lanes } else { 1 };
        for l in 0..lanes {
            let p = self.elem_const(p0, l as i64 * stride);
            let mut s = self.b.ins().extractlane(v, l);
            if add {
                let old = self.load_scalar(p);
                s = self.b.ins().fadd(old, s);
            }
            self.store_scalar(s, p);
        }
    }

    /// A vector of contiguous elements at `p` (lane 0 only in the tail).
    fn load_lanes(&mut self, mode: Mode, p: Value) -> Value {
        match mode {
            Mode::Vector => self.load_vector(p),
            Mode::Tail => {
                let s = self.load_scalar(p);
                self.lane0(s)
            }
        }
    }

    fn store_lanes(&mut self, mode: Mode, v: Value, p: Value) {
        match mode {
            Mode::Vector => self.store_vector(v, p),
            Mode::Tail => {
                let s = self.first(v);
                self.store_scalar(s, p);
            }
        }
    }

    // ---- the tile in stack slots of vectors ---------------------------------------------------

    /// The address of a new stack slot of `vectors` vectors.
    fn vector_slot(&mut self, vectors: usize) -> Value {
        let data = StackSlotData::new(StackSlotKind::ExplicitSlot, (vectors * 16) as u32, 4);
        let slot = self.b.create_sized_stack_slot(data);
        self.b.ins().stack_addr(I64, slot, 0)
    }

    /// The address of vector `i` of a slot.
    fn slot_elem(&mut self, slot: Value, i: Value) -> Value {
        let bytes = self.b.ins().ishl_imm_s(i, 4);
        self.b.ins().iadd(slot, bytes)
    }

    fn slot_load(&mut self, slot: Value, i: Value) -> Value {
        let p = self.slot_elem(slot, i);
        self.b.ins().load(self.vty, MemFlagsData::trusted(), p, 0)
    }

    fn slot_store(&mut self, v: Value, slot: Value, i: Value) {
        let p = self.slot_elem(slot, i);
        self.b.ins().store(MemFlagsData::trusted(), v, p, 0);
    }

    /// ys (p×p) = L·xs·Lᵀ for the constant p×q matrix L (row-major); xs is q×q, ts p×q
    /// scratch. Pass 1 walks the columns j of xs: ts[i][j] = Σ_k L[i][k]·xs[k][j]; pass 2 the
    /// rows i of ts: ys[i][j] = Σ_k L[j][k]·ts[i][k].
    fn tile_sandwich(&mut self, l: &[f64], p: usize, q: usize, xs: Value, ts: Value, ys: Value) {
        let cols = self.int(q as i64);
        self.for_n(cols, |e, j| {
            let (from, to) = (e.slot_elem(xs, j), e.slot_elem(ts, j));
            let col: Vec<Value> =
                (0..q).map(|k| e.b.ins().load(e.vty, MemFlagsData::trusted(), from, (k * q * 16) as i32)).collect();
            for i in 0..p {
                let v = e.combination(&l[i * q..(i + 1) * q], &col);
                e.b.ins().store(MemFlagsData::trusted(), v, to, (i * q * 16) as i32);
            }
        });
        let rows = self.int(p as i64);
        self.for_n(rows, |e, i| {
            let (ti, yi) = (e.b.ins().imul_imm_s(i, q as i64), e.b.ins().imul_imm_s(i, p as i64));
            let (from, to) = (e.slot_elem(ts, ti), e.slot_elem(ys, yi));
            let row: Vec<Value> =
                (0..q).map(|k| e.b.ins().load(e.vty, MemFlagsData::trusted(), from, (k * 16) as i32)).collect();
            for j in 0..p {
                let v = e.combination(&l[j * q..(j + 1) * q], &row);
                e.b.ins().store(MemFlagsData::trusted(), v, to, (j * 16) as i32);
            }
        });
    }

    /// Σ_k c[k]·x[k] over the nonzero coefficients, ±1 as additions (zeros if none).
    fn combination(&mut self, c: &[f64], x: &[Value]) -> Value {
        let mut acc: Option<Value> = None;
        for (&ck, &xk) in c.iter().zip(x) {
            if ck == 0.0 {
                continue;
            }
            acc = Some(match acc {
                None if ck == 1.0 => xk,
                None => {
                    let s = self.splat(ck);
                    self.b.ins().fmul(s, xk)
                }
                Some(a) if ck == 1.0 => self.b.ins().fadd(a, xk),
                Some(a) if ck == -1.0 => self.b.ins().fsub(a, xk),
                Some(a) => {
                    let s = self.splat(ck);
                    self.add_mul(a, s, xk)
                }
            });
        }
        acc.unwrap_or_else(|| self.splat(0.0))
    }
}

/// The image side of a tile transform, as [N, channels, h, w]: tile (ti, tj)'s window is the
/// side × side square at (ti·m − pad, tj·m − pad).
struct Image {
    channels: usize,
    h: usize,
    w: usize,
    side: usize,
    pad: usize,
}

impl Image {
    /// x (and dx): α×α windows of the padded input.
    fn input(g: &WinogradGeom) -> Image {
        Image { channels: g.c, h: g.h, w: g.w, side: g.tile.alpha(), pad: g.pad }
    }

    /// y (and its gradient): m×m windows, the last ones cut at the edges.
    fn output(g: &WinogradGeom) -> Image {
        Image { channels: g.f, h: g.oh, w: g.ow, side: g.tile.m, pad: 0 }
    }
}
