//! Winograd's minimal filtering algorithms F(m×m, r×r) for stride-1 convolutions: the
//! transform matrices, the tile geometry, and the six transforms that the code generator
//! (`codegen::fuse`) combines with batched GEMMs into a convolution and its two gradients.
//!
//! # The maths
//!
//! In one dimension, m outputs of an r-tap correlation y_i = Σ_k g_k·d_{i+k} from α = m + r − 1
//! inputs cost α multiplications instead of m·r:
//!
//! ```text
//! y = Aᵀ [(G g) ⊙ (Bᵀ d)]          Aᵀ: m×α,  G: α×r,  Bᵀ: α×α
//! ```
//!
//! (Toom-Cook at the points 0, ±1, ±2, [±½,] ∞: G evaluates the filter polynomial, Bᵀ is the
//! transposed inverse of the evaluation matrix, Aᵀ evaluates the output polynomial; the
//! fractions are kept in G so that Bᵀ and Aᵀ are small integers or powers of two, as in Lavin &
//! Gray, "Fast Algorithms for Convolutional Neural Networks", 2016.) In two dimensions an m×m
//! output tile comes from an α×α input tile:
//!
//! ```text
//! Y = Aᵀ [(G W Gᵀ) ⊙ (Bᵀ D B)] A
//! ```
//!
//! α² multiplications instead of m²·r² (F(4×4, 3×3): 36 instead of 144). Over channels, the
//! elementwise product becomes α² matrix products: with U[c][ξ][f] = (G w_fc Gᵀ)_ξ and
//! V[t][ξ][c] = (Bᵀ D_tc B)_ξ for every tile t of every image, M_ξ = V_ξ·U_ξ (tiles × F),
//! and Y_tf = Aᵀ M[t][·][f] A.
//!
//! The gradients are the same trilinear form read the other way. With the upstream gradient
//! of an output tile Gr, its transform Ũ[t][ξ][f] = (A Gr Aᵀ)_ξ (the adjoint of the output
//! transform):
//!
//! ```text
//! ⟨Gr, Y⟩ = Σ_ξ (A Gr Aᵀ)_ξ · (G W Gᵀ)_ξ · (Bᵀ D B)_ξ
//! dD = B [Ũ_f ⊙ U_fc] Bᵀ   summed over f:  Mx_ξ = Ũ_ξ · U_ξᵀ, then B Mx Bᵀ added into dx
//! dW = Gᵀ [Ũ_f ⊙ V_c] G    summed over tiles:  Mw_ξ = V_ξᵀ · Ũ_ξ, then Gᵀ Mw G
//! ```
//!
//! so the input gradient reuses the forward's filter transform U, the filter gradient its
//! input transform V, and both share Ũ. Input tiles overlap (stride m, width α): the input
//! gradient adds each tile's α×α result into dx.
//!
//! # Accuracy
//!
//! Exact in exact arithmetic; in floating point the transforms' coefficients (up to 21 in
//! F(4×4, 5×5)'s Bᵀ) amplify rounding. Measured against the f64 direct convolution
//! (`tests/winograd.rs`, AlexNet's layers at batch 2, N(0,1) inputs, He-scaled filters;
//! max |error| / max |reference|): direct f32 ~2e-6, F(2×2, 3×3) ~1e-6, F(4×4, 3×3) ~2e-5,
//! F(2×2, 5×5) ~7e-6, F(4×4, 5×5) ~1e-5; in f64 all below 1e-13.
//!
//! # Layouts (all row-major; NT = batch · tiles per image, tile t = ti·TW + tj)
//!
//! U, Mw: [C, α², F]; V, Mx: [NT, α², C]; M, Ũ: [NT, α², F]. Matrix ξ of U is then the C × F
//! matrix at offset ξ·F with row stride α²·F. (With ξ outermost the α² matrices of a tile
//! would lie a whole matrix apart — for AlexNet's layers a multiple of 4 KiB, so the 36 or 64
//! vectors a tile transform stores or loads would all fall in the same set of the L1 cache:
//! measured 3–10× slower transforms.)

/// An F(m×m, r×r) algorithm: m×m output tiles of an r×r filter.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Tile {
    /// Output tile side.
    pub m: usize,
    /// Filter side.
    pub r: usize,
}

impl Tile {
    /// The algorithms netc has (points 0, ±1, ±2, ∞; F(4×4, 5×5) adds ±½).
    pub const ALL: [Tile; 4] = [Tile { m: 2, r: 3 }, Tile { m: 4, r: 3 }, Tile { m: 2, r: 5 }, Tile { m: 4, r: 5 }];

    pub fn new(m: usize, r: usize) -> Option<Tile> {
        Tile::ALL.into_iter().find(|t| t.m == m && t.r == r)
    }

    /// Input tile side α = m + r − 1.
    pub fn alpha(self) -> usize {
        self.m + self.r - 1
    }

    /// The tile of `r`×`r` filters with the fewest multiplications for an `oh`×`ow` output
    /// (α² per tile, partial tiles at the edges counted whole), or the one with output side
    /// `m` if given. None if no algorithm fits.
    pub fn choose(r: usize, oh: usize, ow: usize, m: Option<usize>) -> Option<Tile> {
        let cost = |t: &Tile| t.alpha().pow(2) * oh.div_ceil(t.m) * ow.div_ceil(t.m);
        Tile::ALL.into_iter().filter(|t| t.r == r && m.is_none_or(|m| t.m == m)).min_by_key(|t| (cost(t), t.m))
    }

    /// Aᵀ, m×α, row-major.
    pub fn at(self) -> &'static [f64] {
        match (self.m, self.r) {
            (2, 3) => &AT_2_3,
            (4, 3) => &AT_4_3,
            (2, 5) => &AT_2_5,
            (4, 5) => &AT_4_5,
            _ => unreachable!("Tile::new admits only the algorithms of Tile::ALL"),
        }
    }

    /// G, α×r, row-major.
    pub fn g(self) -> &'static [f64] {
        match (self.m, self.r) {
            (2, 3) => &G_2_3,
            (4, 3) => &G_4_3,
            (2, 5) => &G_2_5,
            (4, 5) => &G_4_5,
            _ => unreachable!("Tile::new admits only the algorithms of Tile::ALL"),
        }
    }

    /// Bᵀ, α×α, row-major.
    pub fn bt(self) -> &'static [f64] {
        match (self.m, self.r) {
            (2, 3) => &BT_2_3,
            (4, 3) | (2, 5) => &BT_6,
            (4, 5) => &BT_4_5,
            _ => unreachable!("Tile::new admits only the algorithms of Tile::ALL"),
        }
    }

    /// The matrix that `op` applies on both sides of a tile (X ↦ L X Lᵀ), as (L row-major,
    /// rows p, columns q): the input tile is q×q, the result p×p.
    pub fn matrix(self, op: Transform) -> (Vec<f64>, usize, usize) {
        let (a, m, r) = (self.alpha(), self.m, self.r);
        let transpose = |x: &[f64], rows: usize, cols: usize| -> Vec<f64> {
            (0..cols * rows).map(|i| x[(i % rows) * cols + i / rows]).collect()
        };
        match op {
            Transform::Filter => (self.g().to_vec(), a, r),
            Transform::FilterAdjoint => (transpose(self.g(), a, r), r, a),
            Transform::Input => (self.bt().to_vec(), a, a),
            Transform::InputAdjoint => (transpose(self.bt(), a, a), a, a),
            Transform::Output => (self.at().to_vec(), m, a),
            Transform::OutputAdjoint => (transpose(self.at(), m, a), a, m),
        }
    }
}

/// The six tile transforms (each X ↦ L X Lᵀ over every tile, see the module documentation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Transform {
    /// w [F, C, r, r] → U [C, α², F]:  G w Gᵀ.
    Filter,
    /// Mw [C, α², F] → dw [F, C, r, r]:  Gᵀ Mw G.
    FilterAdjoint,
    /// x [N, C, H, W] → V [NT, α², C]:  Bᵀ D B of every (zero-padded) α×α input tile.
    Input,
    /// Mx [NT, α², C] → dx [N, C, H, W]:  B Mx Bᵀ, the tiles added up (dx is overwritten).
    InputAdjoint,
    /// M [NT, α², F] → y [N, F, OH, OW]:  Aᵀ M A, cut at the output's edges.
    Output,
    /// g [N, F, OH, OW] → Ũ [NT, α², F]:  A Gr Aᵀ of every m×m tile of g (zero past the edges).
    OutputAdjoint,
}

impl Transform {
    pub const ALL: [Transform; 6] = [
        Transform::Filter,
        Transform::FilterAdjoint,
        Transform::Input,
        Transform::InputAdjoint,
        Transform::Output,
        Transform::OutputAdjoint,
    ];

    /// The number the transform symbols take (`symbols::winograd`).
    pub fn code(self) -> i64 {
        match self {
            Transform::Filter => 0,
            Transform::FilterAdjoint => 1,
            Transform::Input => 2,
            Transform::InputAdjoint => 3,
            Transform::Output => 4,
            Transform::OutputAdjoint => 5,
        }
    }

    pub fn from_code(code: i64) -> Option<Transform> {
        Transform::ALL.into_iter().find(|t| t.code() == code)
    }
}

/// A stride-1 convolution x [N, C, H, W] * w [F, C, r, r] → [N, F, OH, OW] in tiles.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Geometry {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub f: usize,
    pub oh: usize,
    pub ow: usize,
    pub pad: usize,
    pub tile: Tile,
}

impl Geometry {
    /// Tile rows and columns per image.
    pub fn tiles_hw(&self) -> (usize, usize) {
        (self.oh.div_ceil(self.tile.m), self.ow.div_ceil(self.tile.m))
    }

    /// Tiles per image.
    pub fn tiles(&self) -> usize {
        let (th, tw) = self.tiles_hw();
        th * tw
    }

    /// Side lengths of the zero-padded input the tiles cover: tiles·m + r − 1 (at least the
    /// padded input, H + 2·pad).
    pub fn padded_hw(&self) -> (usize, usize) {
        let (th, tw) = self.tiles_hw();
        (th * self.tile.m + self.tile.r - 1, tw * self.tile.m + self.tile.r - 1)
    }

    /// Whether the sizes are those of a stride-1 convolution with this padding.
    pub fn consistent(&self) -> bool {
        let fits = |n: usize, o: usize| n + 2 * self.pad + 1 >= self.tile.r && n + 2 * self.pad + 1 - self.tile.r == o;
        fits(self.h, self.oh) && fits(self.w, self.ow) && self.oh > 0 && self.ow > 0
    }

    /// The sizes as the transform symbols take them: c, h, w, f, oh, ow, pad, m, r.
    pub fn to_array(&self) -> [i64; 9] {
        [self.c, self.h, self.w, self.f, self.oh, self.ow, self.pad, self.tile.m, self.tile.r].map(|v| v as i64)
    }

    /// The inverse of `to_array` (None for an unknown tile or inconsistent sizes).
    pub fn from_array(s: [i64; 9]) -> Option<Geometry> {
        let u = s.map(|v| usize::try_from(v).ok());
        let [c, h, w, f, oh, ow, pad, m, r] = u.map(|v| v.unwrap_or(usize::MAX));
        if u.iter().any(|v| v.is_none()) {
            return None;
        }
        let g = Geometry { c, h, w, f, oh, ow, pad, tile: Tile::new(m, r)? };
        g.consistent().then_some(g)
    }

    /// Elements of each transform's source and destination for a batch of `n` images.
    pub fn sizes(&self, op: Transform, n: usize) -> (usize, usize) {
        let a2 = self.tile.alpha().pow(2);
        let nt = n * self.tiles();
        let (image, output) = (n * self.c * self.h * self.w, n * self.f * self.oh * self.ow);
        let filter = self.f * self.c * self.tile.r * self.tile.r;
        match op {
            Transform::Filter => (filter, a2 * self.c * self.f),
            Transform::FilterAdjoint => (a2 * self.c * self.f, filter),
            Transform::Input => (image, a2 * nt * self.c),
            Transform::InputAdjoint => (a2 * nt * self.c, image),
            Transform::Output => (a2 * nt * self.f, output),
            Transform::OutputAdjoint => (output, a2 * nt * self.f),
        }
    }
}

/// The transpose of a `rows` × `cols` row-major matrix (for the transform symbols, whose
/// matrices are constants of their code).
pub(crate) const fn transposed<const N: usize>(x: [f64; N], rows: usize, cols: usize) -> [f64; N] {
    let mut out = [0.0; N];
    let mut i = 0;
    while i < rows * cols {
        out[(i % cols) * rows + i / cols] = x[i];
        i += 1;
    }
    out
}

// The matrices, from Toom-Cook at the points named (derived with exact fractions and checked
// by `tests/winograd.rs` against direct convolution). Row-major.

// F(2, 3): points 0, 1, −1, ∞.
pub(crate) const AT_2_3: [f64; 8] = [
    1.0, 1.0, 1.0, 0.0, //
    0.0, 1.0, -1.0, 1.0,
];
pub(crate) const G_2_3: [f64; 12] = [
    1.0,
    0.0,
    0.0, //
    1.0 / 2.0,
    1.0 / 2.0,
    1.0 / 2.0, //
    -1.0 / 2.0,
    1.0 / 2.0,
    -1.0 / 2.0, //
    0.0,
    0.0,
    -1.0,
];
pub(crate) const BT_2_3: [f64; 16] = [
    1.0, 0.0, -1.0, 0.0, //
    0.0, 1.0, 1.0, 0.0, //
    0.0, 1.0, -1.0, 0.0, //
    0.0, 1.0, 0.0, -1.0,
];

// F(4, 3) and F(2, 5): points 0, 1, −1, 2, −2, ∞ (the same Bᵀ).
pub(crate) const AT_4_3: [f64; 24] = [
    1.0, 1.0, 1.0, 1.0, 1.0, 0.0, //
    0.0, 1.0, -1.0, 2.0, -2.0, 0.0, //
    0.0, 1.0, 1.0, 4.0, 4.0, 0.0, //
    0.0, 1.0, -1.0, 8.0, -8.0, 1.0,
];
pub(crate) const G_4_3: [f64; 18] = [
    1.0 / 4.0,
    0.0,
    0.0, //
    1.0 / 6.0,
    1.0 / 6.0,
    1.0 / 6.0, //
    -1.0 / 6.0,
    1.0 / 6.0,
    -1.0 / 6.0, //
    -1.0 / 24.0,
    -1.0 / 12.0,
    -1.0 / 6.0, //
    1.0 / 24.0,
    -1.0 / 12.0,
    1.0 / 6.0, //
    0.0,
    0.0,
    1.0,
];
pub(crate) const AT_2_5: [f64; 12] = [
    1.0, 1.0, 1.0, 1.0, 1.0, 0.0, //
    0.0, 1.0, -1.0, 2.0, -2.0, 1.0,
];
pub(crate) const G_2_5: [f64; 30] = [
    1.0 / 4.0,
    0.0,
    0.0,
    0.0,
    0.0, //
    1.0 / 6.0,
    1.0 / 6.0,
    1.0 / 6.0,
    1.0 / 6.0,
    1.0 / 6.0, //
    -1.0 / 6.0,
    1.0 / 6.0,
    -1.0 / 6.0,
    1.0 / 6.0,
    -1.0 / 6.0, //
    -1.0 / 24.0,
    -1.0 / 12.0,
    -1.0 / 6.0,
    -1.0 / 3.0,
    -2.0 / 3.0, //
    1.0 / 24.0,
    -1.0 / 12.0,
    1.0 / 6.0,
    -1.0 / 3.0,
    2.0 / 3.0, //
    0.0,
    0.0,
    0.0,
    0.0,
    1.0,
];
pub(crate) const BT_6: [f64; 36] = [
    4.0, 0.0, -5.0, 0.0, 1.0, 0.0, //
    0.0, 4.0, 4.0, -1.0, -1.0, 0.0, //
    0.0, 4.0, -4.0, -1.0, 1.0, 0.0, //
    0.0, 2.0, 1.0, -2.0, -1.0, 0.0, //
    0.0, 2.0, -1.0, -2.0, 1.0, 0.0, //
    0.0, 4.0, 0.0, -5.0, 0.0, 1.0,
];

// F(4, 5): points 0, 1, −1, 2, −2, ½, −½, ∞.
pub(crate) const AT_4_5: [f64; 32] = [
    1.0,
    1.0,
    1.0,
    1.0,
    1.0,
    1.0,
    1.0,
    0.0, //
    0.0,
    1.0,
    -1.0,
    2.0,
    -2.0,
    1.0 / 2.0,
    -1.0 / 2.0,
    0.0, //
    0.0,
    1.0,
    1.0,
    4.0,
    4.0,
    1.0 / 4.0,
    1.0 / 4.0,
    0.0, //
    0.0,
    1.0,
    -1.0,
    8.0,
    -8.0,
    1.0 / 8.0,
    -1.0 / 8.0,
    1.0,
];
pub(crate) const G_4_5: [f64; 40] = [
    1.0 / 4.0,
    0.0,
    0.0,
    0.0,
    0.0, //
    -1.0 / 18.0,
    -1.0 / 18.0,
    -1.0 / 18.0,
    -1.0 / 18.0,
    -1.0 / 18.0, //
    1.0 / 18.0,
    -1.0 / 18.0,
    1.0 / 18.0,
    -1.0 / 18.0,
    1.0 / 18.0, //
    1.0 / 360.0,
    1.0 / 180.0,
    1.0 / 90.0,
    1.0 / 45.0,
    2.0 / 45.0, //
    -1.0 / 360.0,
    1.0 / 180.0,
    -1.0 / 90.0,
    1.0 / 45.0,
    -2.0 / 45.0, //
    16.0 / 45.0,
    8.0 / 45.0,
    4.0 / 45.0,
    2.0 / 45.0,
    1.0 / 45.0, //
    -16.0 / 45.0,
    8.0 / 45.0,
    -4.0 / 45.0,
    2.0 / 45.0,
    -1.0 / 45.0, //
    0.0,
    0.0,
    0.0,
    0.0,
    -1.0 / 4.0,
];
pub(crate) const BT_4_5: [f64; 64] = [
    4.0, 0.0, -21.0, 0.0, 21.0, 0.0, -4.0, 0.0, //
    0.0, 4.0, 4.0, -17.0, -17.0, 4.0, 4.0, 0.0, //
    0.0, 4.0, -4.0, -17.0, 17.0, 4.0, -4.0, 0.0, //
    0.0, 2.0, 1.0, -10.0, -5.0, 8.0, 4.0, 0.0, //
    0.0, 2.0, -1.0, -10.0, 5.0, 8.0, -4.0, 0.0, //
    0.0, 4.0, 8.0, -5.0, -10.0, 1.0, 2.0, 0.0, //
    0.0, 4.0, -8.0, -5.0, 10.0, 1.0, -2.0, 0.0, //
    0.0, 4.0, 0.0, -21.0, 0.0, 21.0, 0.0, -4.0,
];
