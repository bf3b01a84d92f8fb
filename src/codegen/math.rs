//! Vectorised transcendentals: exp, log, tanh, sigmoid, expm1, log1p and erf as inline polynomials
//! on f32x4 / f64x2 (Cody–Waite range reduction + Cephes/Taylor polynomials, FMA; expm1 and
//! log1p from tanh and log), or libm calls per lane when `Env::libm_math` is set. Input: a vector value; output: a vector value.
//!
//! Inline is the default: a libm call per lane spills every vector register and costs ~10×
//! in a fused loop (see `cargo bench --bench kernels`). Accuracy against the f64 interpreter:
//! a few ulp in f32, a few ulp in f64, over the whole range; exp flushes to zero below
//! e^-87.6 (f32) or e^-708.3 (f64), where results are subnormal.

// The constants are quoted as published (Cephes, fdlibm), digits beyond f64 included.
#![allow(clippy::excessive_precision)]

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::types::{F32, F32X4, F64X2, I32, I8X16};
use cranelift_codegen::ir::{ConstantData, Endianness, InstBuilder, MemFlagsData, Value};

use super::emit::Emitter;

/// 1/k! for k = 0..=13.
const INV_FACT: [f64; 14] = [
    1.0,
    1.0,
    0.5,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
    1.0 / 362880.0,
    1.0 / 3628800.0,
    1.0 / 39916800.0,
    1.0 / 479001600.0,
    1.0 / 6227020800.0,
];

/// Where `Emitter::tanh` caps 2|x| (see there).
const TANH_EXP_CAP: f64 = 80.0;

/// Per-dtype constants.
struct Consts {
    /// ln of the largest finite value: above it exp overflows.
    max_log: f64,
    /// Below this exp flushes to 0 (keeps 2^(n+1) a normal number).
    min_log: f64,
    /// 1.5 · 2^mantissa_bits: adding it rounds to an integer held in the low mantissa bits.
    round_magic: f64,
    /// 2^mantissa_bits: turns small integers in the mantissa bits into floats.
    int_magic: f64,
    mantissa_bits: i64,
    bias: i64,
    /// ln 2 split for exact range reduction (hi has few bits, so n·hi is exact).
    ln2_hi: f64,
    ln2_lo: f64,
    /// fdlibm's Lg1, Lg2, ...: minimax coefficients of R(z) in ln m (e_logf.c, e_log.c).
    log_coeffs: &'static [f64],
    min_normal: f64,
}

const F32_CONSTS: Consts = Consts {
    max_log: 88.72283905206835,
    min_log: -87.6,
    round_magic: 12582912.0,
    int_magic: 8388608.0,
    mantissa_bits: 23,
    bias: 127,
    ln2_hi: 0.693359375,
    ln2_lo: -2.12194440e-4,
    log_coeffs: &[
        0xaaaaaa as f64 / (1u64 << 24) as f64,
        0xccce13 as f64 / (1u64 << 25) as f64,
        0x91e9ee as f64 / (1u64 << 25) as f64,
        0xf89e26 as f64 / (1u64 << 26) as f64,
    ],
    min_normal: 1.1754943508222875e-38,
};

const F64_CONSTS: Consts = Consts {
    max_log: 709.782712893384,
    min_log: -708.3,
    round_magic: 6755399441055744.0,
    int_magic: 4503599627370496.0,
    mantissa_bits: 52,
    bias: 1023,
    ln2_hi: 6.93147180369123816490e-01,
    ln2_lo: 1.90821492927058770002e-10,
    log_coeffs: &[
        6.666666666666735130e-01,
        3.999999999940941908e-01,
        2.857142874366239149e-01,
        2.222219843214978396e-01,
        1.818357216161805012e-01,
        1.531383769920937332e-01,
        1.479819860511658591e-01,
    ],
    min_normal: 2.2250738585072014e-308,
};

impl Emitter<'_> {
    fn consts(&self) -> &'static Consts {
        if self.ty == F32 {
            &F32_CONSTS
        } else {
            &F64_CONSTS
        }
    }

    /// The bit pattern of `c` in the dtype, as an integer splat.
    fn bits_of(&mut self, c: f64) -> Value {
        let bits = if self.ty == F32 { (c as f32).to_bits() as i32 as i64 } else { c.to_bits() as i64 };
        self.isplat(bits)
    }

    fn libm(&self, f32_name: &'static str, f64_name: &'static str) -> &'static str {
        if self.ty == F32 {
            f32_name
        } else {
            f64_name
        }
    }

    /// e^x = 2^n · e^r with n = round(x / ln2), r = x - n·ln2 (|r| ≤ ln2/2).
    pub fn exp(&mut self, x: Value) -> Value {
        self.exp_of(x, false)
    }

    /// e^x for an x that is never above 0 (x − max x in a softmax), with the bits of `exp`:
    /// n is then at most 0, so 2^n is a normal number for every n in range and the scaling
    /// needs no second factor, and nothing overflows (6 fewer operations of about 30). It is
    /// right up to x = 88 (n ≤ 127), so an argument rounded a little above 0 does no harm,
    /// and `tanh` uses it for its capped 2|x|.
    pub fn exp_nonpositive(&mut self, x: Value) -> Value {
        self.exp_of(x, true)
    }

    fn exp_of(&mut self, x: Value, nonpositive: bool) -> Value {
        if self.env.libm_math {
            let name = self.libm("expf", "exp");
            return self.per_lane(name, &[x]);
        }
        let k = self.consts();
        let (hi, lo) = (self.splat(k.max_log), self.splat(k.min_log));
        // Keep the arithmetic in range; out-of-range lanes are replaced at the end.
        let xc = if nonpositive { x } else { self.select_cmp(FloatCC::GreaterThan, x, hi, hi, x) };
        let xc = self.select_cmp(FloatCC::LessThan, xc, lo, lo, xc);
        let (log2e, magic) = (self.splat(std::f64::consts::LOG2_E), self.splat(k.round_magic));
        let t = self.b.ins().fma(xc, log2e, magic);
        let n = self.b.ins().fsub(t, magic);
        let (c1, c2) = (self.splat(-k.ln2_hi), self.splat(-k.ln2_lo));
        let r = self.b.ins().fma(n, c1, xc);
        let r = self.b.ins().fma(n, c2, r);
        let p = if self.ty == F32 {
            // Cephes expf: e^r = 1 + r + r²·P(r), P of degree 5 (minimax, ~1 ulp).
            let mut q = self.splat(1.9875691500e-4);
            for c in [1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1] {
                let c = self.splat(c);
                q = self.b.ins().fma(q, r, c);
            }
            let r2 = self.b.ins().fmul(r, r);
            let one = self.splat(1.0);
            let rp1 = self.b.ins().fadd(r, one);
            self.b.ins().fma(q, r2, rp1)
        } else {
            // Taylor to degree 13 (the remainder is below 2^-60 on |r| ≤ ln2/2), by Estrin's
            // scheme: pairs, then pairs of pairs, ... a chain 4 deep instead of Horner's 13.
            let mut terms: Vec<Value> = INV_FACT
                .chunks(2)
                .map(|c| {
                    let (lo, hi) = (self.splat(c[0]), self.splat(c[1]));
                    self.b.ins().fma(hi, r, lo)
                })
                .collect();
            let mut power = self.b.ins().fmul(r, r);
            while terms.len() > 1 {
                terms = terms
                    .chunks(2)
                    .map(|c| if c.len() == 2 { self.b.ins().fma(c[1], power, c[0]) } else { c[0] })
                    .collect();
                power = self.b.ins().fmul(power, power);
            }
            terms[0]
        };
        // bits(t) = bits(magic) + n, so (n + bias ∓ 1) << mantissa_bits is 2^(n ∓ 1), a normal
        // number for every n in range; the final ×2 or ×½ restores 2^n (and rounds subnormal
        // results once, correctly).
        let ti = self.as_int(t);
        let zero = self.splat(0.0);
        let magic_bits =
            if self.ty == F32 { (k.round_magic as f32).to_bits() as i64 } else { k.round_magic.to_bits() as i64 };
        if nonpositive {
            // min_log ≤ x ≤ 0: n is in [-126, 0] (f32) or [-1022, 0] (f64), so 2^n itself is
            // normal, and p · 2^n rounds once, as p · 2^(n+1) · ½ does.
            let bias = self.isplat(k.bias - magic_bits);
            let biased = self.b.ins().iadd(ti, bias);
            let amount = self.b.ins().iconst(I32, k.mantissa_bits);
            let e = self.b.ins().ishl(biased, amount);
            let scale = self.as_float(e);
            let y = self.b.ins().fmul(p, scale);
            return self.select_cmp(FloatCC::LessThan, x, lo, zero, y);
        }
        let positive = self.b.ins().fcmp(FloatCC::GreaterThan, n, zero);
        // bits(t) - bits(magic) + bias ∓ 1, as one addition.
        let (down, up) = (self.isplat(k.bias - 1 - magic_bits), self.isplat(k.bias + 1 - magic_bits));
        let bias = self.b.ins().bitselect(positive, down, up);
        let biased = self.b.ins().iadd(ti, bias);
        let amount = self.b.ins().iconst(I32, k.mantissa_bits);
        let e = self.b.ins().ishl(biased, amount);
        let scale = self.as_float(e);
        let y = self.b.ins().fmul(p, scale);
        let positive = self.as_float(positive);
        let (two, half) = (self.splat(2.0), self.splat(0.5));
        let fix = self.b.ins().bitselect(positive, two, half);
        let y = self.b.ins().fmul(y, fix);
        let inf = self.splat(f64::INFINITY);
        let y = self.select_cmp(FloatCC::GreaterThan, x, hi, inf, y);
        self.select_cmp(FloatCC::LessThan, x, lo, zero, y)
    }

    /// ln x = e·ln2 + ln m with x = m·2^e, m in [√½, √2), ln m by fdlibm's s = (m-1)/(m+1) series.
    pub fn log(&mut self, x: Value) -> Value {
        if self.env.libm_math {
            let name = self.libm("logf", "log");
            return self.per_lane(name, &[x]);
        }
        let k = self.consts();
        // Subnormals: scale into the normal range first.
        let min_normal = self.splat(k.min_normal);
        let tiny = self.b.ins().fcmp(FloatCC::LessThan, x, min_normal);
        let tiny = self.as_float(tiny);
        let up = self.splat(k.int_magic);
        let scaled = self.b.ins().fmul(x, up);
        let xs = self.b.ins().bitselect(tiny, scaled, x);
        let shift_back = self.splat(k.mantissa_bits as f64);
        let e_adjust = self.b.ins().band(tiny, shift_back);

        let bits = self.as_int(xs);
        let mant_mask = self.isplat((1i64 << k.mantissa_bits) - 1);
        let mant = self.b.ins().band(bits, mant_mask);
        let one_bits = self.bits_of(1.0);
        let m = self.b.ins().bor(mant, one_bits);
        let m = self.as_float(m);
        // The biased exponent as a float: put it in the mantissa of 2^mantissa_bits.
        let amount = self.b.ins().iconst(I32, k.mantissa_bits);
        let eb = self.b.ins().ushr(bits, amount);
        let magic_bits = self.bits_of(k.int_magic);
        let ef = self.b.ins().iadd(eb, magic_bits);
        let ef = self.as_float(ef);
        let magic = self.splat(k.int_magic + k.bias as f64);
        let e = self.b.ins().fsub(ef, magic);
        let e = self.b.ins().fsub(e, e_adjust);
        // m in [1, 2) -> [√½, √2).
        let sqrt2 = self.splat(std::f64::consts::SQRT_2);
        let big = self.b.ins().fcmp(FloatCC::GreaterThan, m, sqrt2);
        let big = self.as_float(big);
        let half = self.splat(0.5);
        let m_half = self.b.ins().fmul(m, half);
        let m = self.b.ins().bitselect(big, m_half, m);
        let one = self.splat(1.0);
        let inc = self.b.ins().band(big, one);
        let e = self.b.ins().fadd(e, inc);

        // fdlibm: with f = m - 1, s = f/(2 + f), z = s², R = z·(Lg1 + z·(Lg2 + ...)) (minimax),
        // ln m = f - (hfsq - s·(hfsq + R)) where hfsq = f²/2: the big terms stay exact.
        let f = self.b.ins().fsub(m, one);
        let two = self.splat(2.0);
        let d = self.b.ins().fadd(f, two);
        let s = self.b.ins().fdiv(f, d);
        let z = self.b.ins().fmul(s, s);
        let lg = k.log_coeffs;
        let mut r = self.splat(lg[lg.len() - 1]);
        for &c in lg[..lg.len() - 1].iter().rev() {
            let c = self.splat(c);
            r = self.b.ins().fma(r, z, c);
        }
        let r = self.b.ins().fmul(r, z);
        let ff = self.b.ins().fmul(f, f);
        let hfsq = self.b.ins().fmul(ff, half);
        let t = self.b.ins().fadd(hfsq, r);
        // result = e·ln2_hi - ((hfsq - (s·t + e·ln2_lo)) - f)
        let lo = self.splat(k.ln2_lo);
        let elo = self.b.ins().fmul(e, lo);
        let st = self.b.ins().fma(s, t, elo);
        let u = self.b.ins().fsub(hfsq, st);
        let u = self.b.ins().fsub(u, f);
        let hi = self.splat(k.ln2_hi);
        let ehi = self.b.ins().fmul(e, hi);
        let r = self.b.ins().fsub(ehi, u);

        let (zero, inf, ninf, nan) =
            (self.splat(0.0), self.splat(f64::INFINITY), self.splat(f64::NEG_INFINITY), self.splat(f64::NAN));
        let r = self.select_cmp(FloatCC::Equal, x, zero, ninf, r);
        let r = self.select_cmp(FloatCC::LessThan, x, zero, nan, r);
        let r = self.select_cmp(FloatCC::Equal, x, inf, inf, r);
        self.select_cmp(FloatCC::Unordered, x, x, x, r)
    }

    /// tanh |x| = 1 - 2/(e^2|x| + 1), or a Cephes polynomial/rational below 0.625 (where that
    /// form cancels); the sign is copied from x.
    ///
    /// 2|x| is capped at 80 and its exp taken by `exp_nonpositive` (right up to 88): from
    /// there on 2/(e + 1) is below 10⁻³⁴ and 1 minus it is 1 in f32 and f64 alike, so the
    /// bits are those of the uncapped form, for fewer operations (an LSTM's cell runs two
    /// tanh per value).
    pub fn tanh(&mut self, x: Value) -> Value {
        if self.env.libm_math {
            let name = self.libm("tanhf", "tanh");
            return self.per_lane(name, &[x]);
        }
        let a = self.b.ins().fabs(x);
        let a2 = self.b.ins().fadd(a, a);
        let cap = self.splat(TANH_EXP_CAP);
        let a2 = self.select_cmp(FloatCC::GreaterThan, a2, cap, cap, a2);
        let e = self.exp_nonpositive(a2);
        let one = self.splat(1.0);
        let d = self.b.ins().fadd(e, one);
        let two = self.splat(2.0);
        let q = self.b.ins().fdiv(two, d);
        let big = self.b.ins().fsub(one, q);
        let z = self.b.ins().fmul(a, a);
        let small = if self.ty == F32 {
            // Cephes tanhf: x + x·z·P(z).
            let mut p = self.splat(-5.70498872745e-3);
            for c in [2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1] {
                let c = self.splat(c);
                p = self.b.ins().fma(p, z, c);
            }
            let pz = self.b.ins().fmul(p, z);
            self.b.ins().fma(pz, a, a)
        } else {
            // Cephes tanh: x + x·z·P(z)/Q(z).
            let mut p = self.splat(-9.64399179425052238628e-1);
            for c in [-9.92877231001918586564e1, -1.61468768441708447952e3] {
                let c = self.splat(c);
                p = self.b.ins().fma(p, z, c);
            }
            let c0 = self.splat(1.12811678491632931402e2);
            let mut q = self.b.ins().fadd(z, c0);
            for c in [2.23548839060100448583e3, 4.84406305325125486048e3] {
                let c = self.splat(c);
                q = self.b.ins().fma(q, z, c);
            }
            let r = self.b.ins().fdiv(p, q);
            let rz = self.b.ins().fmul(r, z);
            self.b.ins().fma(rz, a, a)
        };
        let limit = self.splat(0.625);
        let r = self.select_cmp(FloatCC::LessThan, a, limit, small, big);
        let sign_bit = self.splat(-0.0);
        let sign = self.b.ins().band(x, sign_bit);
        self.b.ins().bor(r, sign)
    }

    /// e^x − 1: 2t/(1 − t) with t = tanh(x/2) for |x| < ½ (tanh is its polynomial there, and
    /// with |t| < ¼ nothing cancels), e^x − 1 elsewhere (|e^x − 1| > 0.39: a few ulp at most).
    pub fn expm1(&mut self, x: Value) -> Value {
        if self.env.libm_math {
            let name = self.libm("expm1f", "expm1");
            return self.per_lane(name, &[x]);
        }
        let (half, one) = (self.splat(0.5), self.splat(1.0));
        let h = self.b.ins().fmul(x, half);
        let t = self.tanh(h);
        let two_t = self.b.ins().fadd(t, t);
        let d = self.b.ins().fsub(one, t);
        let small = self.b.ins().fdiv(two_t, d);
        let e = self.exp(x);
        let big = self.b.ins().fsub(e, one);
        let a = self.b.ins().fabs(x);
        self.select_cmp(FloatCC::LessThan, a, half, small, big)
    }

    /// ln(1 + x) = ln(u)·x/(u − 1) with u = 1 + x rounded (Goldberg: the rounding error of u
    /// cancels in the ratio), x itself where u = 1, +∞ at +∞.
    pub fn log1p(&mut self, x: Value) -> Value {
        if self.env.libm_math {
            let name = self.libm("log1pf", "log1p");
            return self.per_lane(name, &[x]);
        }
        let one = self.splat(1.0);
        let u = self.b.ins().fadd(one, x);
        let d = self.b.ins().fsub(u, one);
        let l = self.log(u);
        let q = self.b.ins().fdiv(x, d);
        let r = self.b.ins().fmul(l, q);
        let zero = self.splat(0.0);
        let r = self.select_cmp(FloatCC::Equal, d, zero, x, r);
        let inf = self.splat(f64::INFINITY);
        self.select_cmp(FloatCC::Equal, x, inf, inf, r)
    }

    /// sigmoid x = 1 / (1 + e^-x): e^-x overflows to ∞ for very negative x, giving 0.
    pub fn sigmoid(&mut self, x: Value) -> Value {
        let nx = self.b.ins().fneg(x);
        let e = self.exp(nx);
        let one = self.splat(1.0);
        let d = self.b.ins().fadd(one, e);
        self.b.ins().fdiv(one, d)
    }

    /// erf x by fdlibm's s_erf.c (Sun, 1993; the `libm` crate's erf, which the interpreter
    /// uses), on a = |x| with the sign copied back:
    /// - a < 0.84375: a + a·P(a²)/Q(a²);
    /// - a < 1.25: c + P₁(s)/Q₁(s), s = a − 1, c = 0.845062911510467529297 (erf 1 rounded to 24 bits);
    /// - a < 6: 1 − e^(−a² − 0.5625 + R(z)/S(z))/a, z = 1/a², with R/S from one of two sets
    ///   (below and above 1/0.35); a² is split into hi + lo by an FMA, so the exponent is
    ///   exact to the last bit of its argument;
    /// - a ≥ 6 (and ±∞): 1. NaN stays NaN.
    ///
    /// Every piece is evaluated in every lane and the right one selected (no branches). f32
    /// takes the single rational form of `erf_f32` instead.
    pub fn erf(&mut self, x: Value) -> Value {
        if self.env.libm_math {
            let name = self.libm("erff", "erf");
            return self.per_lane(name, &[x]);
        }
        if self.ty == F32 {
            return self.erf_f32(x);
        }
        const PP: [f64; 5] = [
            1.28379167095512558561e-01,
            -3.25042107247001499370e-01,
            -2.84817495755985104766e-02,
            -5.77027029648944159157e-03,
            -2.37630166566501626084e-05,
        ];
        const QQ: [f64; 6] = [
            1.0,
            3.97917223959155352819e-01,
            6.50222499887672944485e-02,
            5.08130628187576562776e-03,
            1.32494738004321644526e-04,
            -3.96022827877536812320e-06,
        ];
        const ERX: f64 = 8.45062911510467529297e-01;
        const PA: [f64; 7] = [
            -2.36211856075265944077e-03,
            4.14856118683748331666e-01,
            -3.72207876035701323847e-01,
            3.18346619901161753674e-01,
            -1.10894694282396677476e-01,
            3.54783043256182359371e-02,
            -2.16637559486879084300e-03,
        ];
        const QA: [f64; 7] = [
            1.0,
            1.06420880400844228286e-01,
            5.40397917702171048937e-01,
            7.18286544141962662868e-02,
            1.26171219808761642112e-01,
            1.36370839120290507362e-02,
            1.19844998467991074170e-02,
        ];
        const RA: [f64; 8] = [
            -9.86494403484714822705e-03,
            -6.93858572707181764372e-01,
            -1.05586262253232909814e+01,
            -6.23753324503260060396e+01,
            -1.62396669462573470355e+02,
            -1.84605092906711035994e+02,
            -8.12874355063065934246e+01,
            -9.81432934416914548592e+00,
        ];
        const SA: [f64; 9] = [
            1.0,
            1.96512716674392571292e+01,
            1.37657754143519042600e+02,
            4.34565877475229228821e+02,
            6.45387271733267880336e+02,
            4.29008140027567833386e+02,
            1.08635005541779435134e+02,
            6.57024977031928170135e+00,
            -6.04244152148580987438e-02,
        ];
        const RB: [f64; 7] = [
            -9.86494292470009928597e-03,
            -7.99283237680523006574e-01,
            -1.77579549177547519889e+01,
            -1.60636384855821916062e+02,
            -6.37566443368389627722e+02,
            -1.02509513161107724954e+03,
            -4.83519191608651397019e+02,
        ];
        const SB: [f64; 8] = [
            1.0,
            3.03380607434824582924e+01,
            3.25792512996573918826e+02,
            1.53672958608443695994e+03,
            3.19985821950859553908e+03,
            2.55305040643316442583e+03,
            4.74528541206955367215e+02,
            -2.24409524465858183362e+01,
        ];
        let a = self.b.ins().fabs(x);
        let one = self.splat(1.0);

        // |x| < 0.84375
        let a2 = self.b.ins().fmul(a, a);
        let p = self.horner(&PP, a2);
        let q = self.horner(&QQ, a2);
        let r = self.b.ins().fdiv(p, q);
        let near_zero = self.b.ins().fma(a, r, a);

        // |x| < 1.25
        let s = self.b.ins().fsub(a, one);
        let p = self.horner(&PA, s);
        let q = self.horner(&QA, s);
        let r = self.b.ins().fdiv(p, q);
        let erx = self.splat(ERX);
        let near_one = self.b.ins().fadd(erx, r);

        // |x| < 6: erfc a = e^(−a² − 0.5625 + R/S)/a
        let z = self.b.ins().fdiv(one, a2);
        let (ra, sa) = (self.horner(&RA, z), self.horner(&SA, z));
        let (rb, sb) = (self.horner(&RB, z), self.horner(&SB, z));
        let split = self.splat(1.0 / 0.35);
        let r = self.select_cmp(FloatCC::LessThan, a, split, ra, rb);
        let s = self.select_cmp(FloatCC::LessThan, a, split, sa, sb);
        let rs = self.b.ins().fdiv(r, s);
        // a² = a2 + lo exactly; −a² − 0.5625 + R/S = (−0.5625 − a2) + (R/S − lo)
        let neg_a2 = self.b.ins().fneg(a2);
        let lo = self.b.ins().fma(a, a, neg_a2);
        let tail = self.b.ins().fsub(rs, lo);
        let c = self.splat(-0.5625);
        let head = self.b.ins().fsub(c, a2);
        let exponent = self.b.ins().fadd(head, tail);
        let e = self.exp(exponent);
        let erfc = self.b.ins().fdiv(e, a);
        let tail_region = self.b.ins().fsub(one, erfc);

        let (t1, t2, t3) = (self.splat(0.84375), self.splat(1.25), self.splat(6.0));
        let y = self.select_cmp(FloatCC::LessThan, a, t3, tail_region, one);
        let y = self.select_cmp(FloatCC::LessThan, a, t2, near_one, y);
        let y = self.select_cmp(FloatCC::LessThan, a, t1, near_zero, y);
        let sign_bit = self.splat(-0.0);
        let sign = self.b.ins().band(x, sign_bit);
        let y = self.b.ins().bor(y, sign);
        self.select_cmp(FloatCC::Unordered, x, x, x, y)
    }

    /// f32 erf x = x·P(x²)/Q(x²) for |x| < c, sign(x) beyond, with P of degree 4 and Q of
    /// degree 6 in x²: the odd/even minimax rational form of Eigen's `generic_fast_erf_float`
    /// (its published coefficients). c = 3.8325069 = erfinv(1 − 2⁻²³): from there on erf x
    /// rounds to ±1 in f32. The fit itself is within 0.5 ulp of erf, but evaluated in f32 its
    /// roundings add up to 7 ulp near 1, so it is evaluated in f64 (the four lanes as two f64x2)
    /// and rounded once: max error 1 ulp against the correctly rounded erf over all of f32
    /// (`tests/erf_f32.rs`). Two divisions and 24 FMAs on f64x2, against fdlibm's four pieces,
    /// four divisions and an exp. ±0 keep their sign (x·P), ±∞ give ±1, NaN fails the
    /// comparison and stays NaN through P/Q.
    fn erf_f32(&mut self, x: Value) -> Value {
        let le = MemFlagsData::new().with_endianness(Endianness::Little);
        let bytes = self.b.ins().bitcast(I8X16, le, x);
        // lanes 2 and 3 moved down to 0 and 1
        let upper = self.byte_shuffle(bytes, bytes, [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]);
        let upper = self.b.ins().bitcast(F32X4, le, upper);
        let lo = self.b.ins().fvpromote_low(x);
        let hi = self.b.ins().fvpromote_low(upper);
        let lo = self.erf_rational_f64x2(lo);
        let hi = self.erf_rational_f64x2(hi);
        let lo = self.b.ins().fvdemote(lo);
        let hi = self.b.ins().fvdemote(hi);
        let lo = self.b.ins().bitcast(I8X16, le, lo);
        let hi = self.b.ins().bitcast(I8X16, le, hi);
        let r = self.byte_shuffle(lo, hi, [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]);
        let r = self.b.ins().bitcast(F32X4, le, r);
        let sign_bit = self.splat(-0.0);
        let sign = self.b.ins().band(x, sign_bit);
        let one = self.splat(1.0);
        let signed_one = self.b.ins().bor(one, sign);
        let a = self.b.ins().fabs(x);
        let c = self.splat(3.832506856900711);
        self.select_cmp(FloatCC::GreaterThanOrEqual, a, c, signed_one, r)
    }

    /// x·P(x²)/Q(x²) of `erf_f32` on f64x2.
    fn erf_rational_f64x2(&mut self, x: Value) -> Value {
        const P: [f64; 5] = [
            1.128379143519084,
            0.18520832239976145,
            0.050955695062380861,
            0.0034082910107109506,
            0.00022905065861350646,
        ];
        const Q: [f64; 7] = [
            1.0,
            0.49746925110067538,
            0.11098505178285362,
            0.014070470171167667,
            0.0010179625278914885,
            0.000023547966471313185,
            -1.1791602954361697e-7,
        ];
        let splat = |e: &mut Self, c: f64| {
            let c = e.b.ins().f64const(c);
            e.b.ins().splat(F64X2, c)
        };
        let x2 = self.b.ins().fmul(x, x);
        let mut p = splat(self, P[4]);
        for &k in P[..4].iter().rev() {
            let k = splat(self, k);
            p = self.b.ins().fma(p, x2, k);
        }
        let p = self.b.ins().fmul(x, p);
        let mut q = splat(self, Q[6]);
        for &k in Q[..6].iter().rev() {
            let k = splat(self, k);
            q = self.b.ins().fma(q, x2, k);
        }
        self.b.ins().fdiv(p, q)
    }

    /// Bytes of `a` (0–15) and `b` (16–31) picked by `mask`.
    fn byte_shuffle(&mut self, a: Value, b: Value, mask: [u8; 16]) -> Value {
        let mask = self.b.func.dfg.immediates.push(ConstantData::from(&mask[..]));
        self.b.ins().shuffle(a, b, mask)
    }

    /// c[0] + c[1]·x + c[2]·x² + … by Horner's rule with FMAs.
    fn horner(&mut self, c: &[f64], x: Value) -> Value {
        let mut p = self.splat(c[c.len() - 1]);
        for &k in c[..c.len() - 1].iter().rev() {
            let k = self.splat(k);
            p = self.b.ins().fma(p, x, k);
        }
        p
    }
}
