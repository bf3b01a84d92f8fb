//! The language's built-in functions: one `Builtin` variant each, with its signature here and
//! its checking and lowering in `check/builtins.rs`. Both are exhaustive matches, so a new
//! variant does not compile until it has both (and `tests/common/cases.rs` gives it a test).
//!
//! Layers with parameters (`dense`, `conv2d`, `maxout`) are not built-ins: they are written
//! in the language, in `prelude.net`.

/// Declares the enum and `Builtin::ALL` from one list, so the two cannot disagree.
macro_rules! builtins {
    ($($variant:ident),* $(,)?) => {
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum Builtin {
            $($variant),*
        }

        impl Builtin {
            /// Every built-in, in declaration order.
            pub const ALL: &'static [Builtin] = &[$(Builtin::$variant),*];
        }
    };
}

builtins! {
    // elementwise
    Exp, Log, Sqrt, Abs, Sigmoid, Tanh, Relu, LeakyRelu, Elu, Softplus, Erf, Gelu, Silu, Clip,
    // elementwise of two tensors, or reductions
    Max, Min,
    // a choice by a mask
    Where,
    // reductions and shapes
    Sum, Mean, Var, Transpose, Reshape, Flatten,
    // structure: joining, splitting, indexing, broadcasting, padding
    Concat, Split, Chunk, Take, Expand, BroadcastTo, Squeeze, Unsqueeze, Pad, Einsum,
    // probabilities and losses
    Softmax, LogSoftmax, OneHot, Argmax, Decode, CrossEntropy, Svm, Mse, L2,
    // convolution and pooling
    Conv, Conv1d, ConvTranspose2d, Upsample2d, Maxpool2d, Avgpool2d, GlobalAvgpool,
    // randomness (training mode)
    RandLike, Dropout,
    // metrics (train settings, not differentiable)
    Accuracy,
    // parameter initialisers
    Zeros, Constant, Normal, Uniform, Xavier, He,
    // optimizers and learning-rate schedules (train settings)
    Sgd, Momentum, Adam, AdamW, Step, Cosine,
    // data sources (data settings)
    Spiral, Synthetic, Csv, Npy, Idx,
}

/// What a built-in's value is used for; decides where it may appear.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// A function of tensors, lowered into graph nodes.
    Tensor,
    /// A metric of a train block (`metrics: [accuracy]`).
    Metric,
    /// A parameter initialiser (`param W: [..] = he`).
    Init,
    Optimizer,
    Schedule,
    DataSource,
}

/// A built-in's parameters, for binding positional and named arguments and for "takes
/// (x, axis?)" messages.
#[derive(Debug)]
pub struct Signature {
    pub name: &'static str,
    /// Parameter names; the first `required` must be given.
    pub params: &'static [&'static str],
    pub required: usize,
    /// Takes any number of positional tensors (l2).
    pub variadic: bool,
    pub kind: Kind,
    pub doc: &'static str,
}

const fn sig(
    name: &'static str,
    params: &'static [&'static str],
    required: usize,
    kind: Kind,
    doc: &'static str,
) -> Signature {
    Signature { name, params, required, variadic: false, kind, doc }
}

impl Builtin {
    pub fn signature(self) -> Signature {
        use Builtin::*;
        use Kind::*;
        match self {
            Exp => sig("exp", &["x"], 1, Tensor, "e^x"),
            Log => sig("log", &["x"], 1, Tensor, "natural logarithm"),
            Sqrt => sig("sqrt", &["x"], 1, Tensor, "square root"),
            Abs => sig("abs", &["x"], 1, Tensor, "absolute value"),
            Sigmoid => sig("sigmoid", &["x"], 1, Tensor, "1 / (1 + e^-x)"),
            Tanh => sig("tanh", &["x"], 1, Tensor, "hyperbolic tangent"),
            Relu => sig("relu", &["x"], 1, Tensor, "max(0, x)"),
            LeakyRelu => sig("leaky_relu", &["x", "alpha"], 1, Tensor, "max(x, alpha*x), alpha = 0.01"),
            Elu => sig("elu", &["x", "alpha"], 1, Tensor, "x if x > 0 else alpha*(e^x - 1), alpha = 1"),
            Softplus => sig("softplus", &["x"], 1, Tensor, "log(1 + e^x), computed stably"),
            Erf => sig("erf", &["x"], 1, Tensor, "the error function (2/sqrt(pi)) ∫0^x e^(-t²) dt"),
            Gelu => sig(
                "gelu",
                &["x", "approximate"],
                1,
                Tensor,
                "x·Φ(x) = x/2·(1 + erf(x/√2)); approximate: \"tanh\" for torch's tanh form",
            ),
            Silu => sig("silu", &["x"], 1, Tensor, "x·sigmoid(x) (swish)"),
            Clip => sig(
                "clip",
                &["x", "lo", "hi"],
                1,
                Tensor,
                "min(max(x, lo), hi) with numbers lo and hi (either may be left out), as torch.clamp",
            ),
            Where => sig(
                "where",
                &["condition", "x", "y"],
                3,
                Tensor,
                "x where condition is nonzero, else y (broadcasting), as numpy.where",
            ),
            Max => sig(
                "max",
                &["x", "y", "axis", "keepdims"],
                1,
                Tensor,
                "max(a, b) elementwise, or max(x, axis: k) over an axis (or all)",
            ),
            Min => sig(
                "min",
                &["x", "y", "axis", "keepdims"],
                1,
                Tensor,
                "min(a, b) elementwise, or min(x, axis: k) over an axis (or all)",
            ),
            Sum => sig("sum", &["x", "axis", "keepdims"], 1, Tensor, "sum over an axis, or over all elements"),
            Mean => sig("mean", &["x", "axis", "keepdims"], 1, Tensor, "mean over an axis, or over all elements"),
            Var => sig(
                "var",
                &["x", "axis", "correction", "keepdims"],
                1,
                Tensor,
                "variance over an axis or all elements: sum of squared deviations / (n - correction), correction = 1",
            ),
            Transpose => sig("transpose", &["x", "perm"], 1, Tensor, "reverse the axes, or permute them by `perm`"),
            Reshape => {
                sig("reshape", &["x", "shape"], 2, Tensor, "same elements in a new shape; one dimension may be -1")
            }
            Flatten => sig("flatten", &["x"], 1, Tensor, "[N, d1, d2, ...] -> [N, d1*d2*...]"),
            Concat => sig("concat", &["tensors", "axis"], 1, Tensor, "join a list of tensors along an axis (0)"),
            Split => sig(
                "split",
                &["x", "sizes", "axis"],
                2,
                Tensor,
                "a list of pieces along an axis (0): of the given sizes, or of `sizes` each (torch.split)",
            ),
            Chunk => {
                sig("chunk", &["x", "chunks", "axis"], 2, Tensor, "a list of `chunks` near-equal pieces (torch.chunk)")
            }
            Take => sig(
                "take",
                &["x", "indices", "axis"],
                2,
                Tensor,
                "the elements at integer indices along an axis (of the flattened x without one), as numpy.take",
            ),
            Expand => {
                sig("expand", &["x", "shape"], 2, Tensor, "broadcast to a shape; -1 keeps a size (torch.Tensor.expand)")
            }
            BroadcastTo => sig("broadcast_to", &["x", "shape"], 2, Tensor, "broadcast to a shape (numpy.broadcast_to)"),
            Squeeze => sig("squeeze", &["x", "axis"], 1, Tensor, "remove unit axes (all of them, or the given ones)"),
            Unsqueeze => sig("unsqueeze", &["x", "axis"], 2, Tensor, "insert a unit axis at a position"),
            Pad => sig(
                "pad",
                &["x", "widths"],
                2,
                Tensor,
                "zero padding: n on every side, [before, after] on every axis, or one pair per axis (numpy.pad)",
            ),
            Einsum => Signature {
                name: "einsum",
                params: &["spec"],
                required: 1,
                variadic: true,
                kind: Tensor,
                doc: "einsum(\"bij,bjk->bik\", a, b): a contraction of one or two tensors written with axis letters",
            },
            Softmax => sig("softmax", &["x", "axis"], 1, Tensor, "e^x / sum(e^x) along the last axis"),
            LogSoftmax => {
                sig("log_softmax", &["x", "axis"], 1, Tensor, "log(softmax(x)) along the last axis, computed stably")
            }
            OneHot => sig("one_hot", &["labels", "classes"], 2, Tensor, "class indices -> one-hot rows"),
            Argmax => sig(
                "argmax",
                &["x", "axis"],
                1,
                Tensor,
                "index of the largest element along the last axis (the first, on ties); no gradient",
            ),
            Decode => sig(
                "decode",
                &["ids", "alphabet"],
                2,
                Tensor,
                "print token ids as text: id k is the k-th character of `alphabet` (eval output only)",
            ),
            CrossEntropy => sig(
                "cross_entropy",
                &["scores", "labels"],
                2,
                Tensor,
                "mean over the batch of -log softmax(scores)[label]",
            ),
            Svm => sig(
                "svm",
                &["scores", "labels", "margin"],
                2,
                Tensor,
                "multiclass hinge loss: mean of sum_j!=y max(0, s_j - s_y + margin)",
            ),
            Mse => sig("mse", &["prediction", "target"], 2, Tensor, "mean of (prediction - target)^2"),
            L2 => Signature {
                name: "l2",
                params: &["tensors"],
                required: 0,
                variadic: true,
                kind: Tensor,
                doc: "0.5 * sum of squares of the given tensors (all weight matrices and filters when none are given)",
            },
            Conv => sig(
                "conv",
                &["x", "w", "stride", "pad", "groups"],
                2,
                Tensor,
                "convolution of [N, C, H, W] with filters [F, C / groups, KH, KW]",
            ),
            Conv1d => sig(
                "conv1d",
                &["x", "w", "stride", "pad"],
                2,
                Tensor,
                "convolution of [N, C, L] with filters [F, C, K]",
            ),
            ConvTranspose2d => sig(
                "conv_transpose2d",
                &["x", "w", "stride", "pad"],
                2,
                Tensor,
                "transposed convolution of [N, C, H, W] with w [C, F, KH, KW] (torch's layout): conv's input gradient",
            ),
            Upsample2d => sig(
                "upsample2d",
                &["x", "scale"],
                1,
                Tensor,
                "nearest-neighbour upsampling of [N, C, H, W] by a whole factor (2)",
            ),
            Maxpool2d => sig(
                "maxpool2d",
                &["x", "size", "stride"],
                1,
                Tensor,
                "max over size×size windows (no padding); stride = size; the output size is rounded down",
            ),
            Avgpool2d => sig(
                "avgpool2d",
                &["x", "size", "stride", "pad"],
                1,
                Tensor,
                "mean over size×size windows of the input zero-padded by `pad` (0), the padding counted; stride = size",
            ),
            GlobalAvgpool => sig(
                "global_avgpool",
                &["x", "keepdims"],
                1,
                Tensor,
                "[N, C, H, W] -> [N, C]: the mean of each channel over its plane",
            ),
            RandLike => sig(
                "rand_like",
                &["x"],
                1,
                Tensor,
                "uniform random numbers in [0, 1) of x's shape, a new stream each step (training mode only)",
            ),
            Dropout => sig(
                "dropout",
                &["x", "p"],
                1,
                Tensor,
                "training: zero each element with probability p (0.5), scale the rest by 1/(1 - p); inference: x",
            ),
            Accuracy => sig(
                "accuracy",
                &["scores", "labels"],
                2,
                Metric,
                "fraction of rows whose largest score is at the label",
            ),
            Zeros => sig("zeros", &["shape"], 0, Init, "initialiser: all zeros; zeros([B, H]) is a tensor of zeros"),
            Constant => sig("constant", &["value"], 1, Init, "initialiser: every element = value"),
            Normal => sig("normal", &["std"], 0, Init, "initialiser: Gaussian, mean 0, std (default 1)"),
            Uniform => sig(
                "uniform",
                &["low", "high"],
                0,
                Init,
                "initialiser: uniform in [low, high) (default [-1, 1); one argument a: [-a, a))",
            ),
            Xavier => sig("xavier", &[], 0, Init, "initialiser: uniform ±sqrt(6 / (fan_in + fan_out))"),
            He => sig("he", &[], 0, Init, "initialiser: Gaussian with std sqrt(2 / fan_in)"),
            Sgd => sig("sgd", &["lr"], 1, Optimizer, "optimizer: w -= lr * dw"),
            Momentum => sig(
                "momentum",
                &["lr", "momentum", "nesterov"],
                1,
                Optimizer,
                "optimizer: SGD with momentum (0.9), optionally Nesterov",
            ),
            Adam => sig(
                "adam",
                &["lr", "beta1", "beta2", "eps"],
                0,
                Optimizer,
                "optimizer: Adam (lr 1e-3, 0.9, 0.999, 1e-8): p -= lr * m^ / (sqrt(v^) + eps)",
            ),
            AdamW => sig(
                "adamw",
                &["lr", "beta1", "beta2", "eps", "weight_decay"],
                0,
                Optimizer,
                "optimizer: Adam with decoupled weight decay (0.01) of the weights: p -= lr * decay * p",
            ),
            Step => sig(
                "step",
                &["every", "gamma"],
                1,
                Schedule,
                "learning-rate schedule: multiply by gamma (0.1) every `every` steps",
            ),
            Cosine => {
                sig("cosine", &["min_lr"], 0, Schedule, "learning-rate schedule: cosine decay to min_lr over the run")
            }
            Spiral => sig(
                "spiral",
                &["points", "classes", "seed"],
                2,
                DataSource,
                "data: the CS231n spiral, `points` per class",
            ),
            Synthetic => sig(
                "synthetic",
                &["samples", "classes", "seed"],
                2,
                DataSource,
                "data: seeded random inputs of the model's shape, random labels",
            ),
            Csv => sig(
                "csv",
                &["path", "type", "columns", "shape", "scale", "test", "label"],
                1,
                DataSource,
                "data: columns of a CSV file with a header row (a field), or features and a `label` column (a source)",
            ),
            Npy => sig(
                "npy",
                &["path", "type", "shape", "scale", "test", "labels"],
                1,
                DataSource,
                "data: an NPY array (a field: `npy(\"y.npy\", float, [1])`), or NPY files of features and labels (a source)",
            ),
            Idx => sig(
                "idx",
                &["images", "labels", "scale"],
                2,
                DataSource,
                "data: MNIST-style IDX files of images and labels",
            ),
        }
    }

    pub fn name(self) -> &'static str {
        self.signature().name
    }

    /// The built-in called `name`, if any.
    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.iter().copied().find(|b| b.name() == name)
    }
}

impl Signature {
    /// "dense(x, units, init?)" style description of what the function takes.
    pub fn describe(&self) -> String {
        let mut ps: Vec<String> = self
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| if i < self.required { p.to_string() } else { format!("{p}?") })
            .collect();
        if self.variadic {
            ps.truncate(self.required);
            ps.push("tensors...".into());
        }
        format!("{}({})", self.name, ps.join(", "))
    }
}
