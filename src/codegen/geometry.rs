//! The static geometry of convolutions and pools (only the batch is a run-time value), and
//! which algorithm computes a convolution. Part of the kernel IR (`kernel` re-exports it).

use crate::runtime::winograd::Tile;

/// Static geometry of a 2-D convolution; only the batch is a run-time value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ConvGeom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub f: usize,
    pub kh: usize,
    pub kw: usize,
    pub oh: usize,
    pub ow: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvGeom {
    /// A 1×1 convolution with stride 1 and no padding reads the image itself as its columns.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }

    /// Rows of the im2col matrix: C·KH·KW.
    pub fn patch(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Columns of the im2col matrix: OH·OW.
    pub fn pixels(&self) -> usize {
        self.oh * self.ow
    }
}

/// How convolutions are computed (`CompileOptions::conv`, `netc run/bench/build --conv`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum ConvAlgorithm {
    /// Winograd (`runtime::winograd`) for stride-1 3×3 and 5×5 convolutions with at least
    /// [`WINOGRAD_MIN_CHANNELS`] input and output channels, im2col + GEMM for the others.
    #[default]
    Auto,
    /// im2col + GEMM everywhere.
    Direct,
    /// Winograd for every stride-1 3×3 and 5×5 convolution: with output tiles of the given
    /// side (2 or 4), or of the side that needs the fewest multiplications.
    Winograd(Option<usize>),
}

/// Fewer input or output channels than this and `ConvAlgorithm::Auto` keeps im2col: the
/// transforms cost (C + F)·α² per tile against C·F·α² for the products, and the products'
/// inner dimension would be too short for the GEMM's kernels. (Measured: W3's second
/// convolution, 16 → 32 channels, see `bench/RESULTS.md`.)
pub const WINOGRAD_MIN_CHANNELS: usize = 16;

impl ConvAlgorithm {
    /// The Winograd algorithm this choice takes for a convolution, if any.
    pub fn winograd(self, g: &ConvGeom) -> Option<Tile> {
        if g.stride != 1 || g.kh != g.kw {
            return None;
        }
        match self {
            ConvAlgorithm::Direct => None,
            ConvAlgorithm::Winograd(m) => Tile::choose(g.kh, g.oh, g.ow, m),
            ConvAlgorithm::Auto if g.c >= WINOGRAD_MIN_CHANNELS && g.f >= WINOGRAD_MIN_CHANNELS => {
                Tile::choose(g.kh, g.oh, g.ow, None)
            }
            ConvAlgorithm::Auto => None,
        }
    }

    /// Parse `auto`, `direct`, `winograd`, `winograd2` or `winograd4` (the CLI's `--conv`).
    pub fn parse(s: &str) -> Result<ConvAlgorithm, String> {
        match s {
            "auto" => Ok(ConvAlgorithm::Auto),
            "direct" => Ok(ConvAlgorithm::Direct),
            "winograd" => Ok(ConvAlgorithm::Winograd(None)),
            "winograd2" => Ok(ConvAlgorithm::Winograd(Some(2))),
            "winograd4" => Ok(ConvAlgorithm::Winograd(Some(4))),
            _ => Err(format!("unknown convolution algorithm `{s}` (auto, direct, winograd, winograd2, winograd4)")),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConvOp {
    /// (x, w) -> y
    Forward,
    /// (g, w) -> dx
    InputGrad,
    /// (x, g) -> dw
    FilterGrad,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PoolGeom {
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub size: usize,
    pub stride: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PoolOp {
    /// x -> y
    Max,
    /// (x, g) -> dx
    MaxGrad,
    /// x -> y
    Avg,
    /// g -> dx
    AvgGrad,
}
