//! The checked program: what the front end hands to every later stage (training, drivers,
//! commands), so that none of them imports the checker.

use crate::diag::Span;
use crate::ir::graph::{Graph, NodeId};
use crate::ir::tensor::Tensor;

/// A model: its forward graph in inference mode (inputs, parameters and state, named
/// outputs), as evaluation, eval blocks and `netc build`'s `forward` run it.
#[derive(Clone, Debug)]
pub struct Model {
    pub name: String,
    pub graph: Graph,
    /// Every layer (and model) instance its body calls, in call order, for `netc summary`.
    pub layers: Vec<Layer>,
    pub span: Span,
}

/// One call of a layer (or of a model) inside a model: what it computed and owns.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// The instance's qualified name, the prefix of its parameters: `fc1`, `block_1.dense_2`.
    pub name: String,
    /// What was called: `dense`, `conv2d`, a user layer or a model.
    pub kind: String,
    /// The graph nodes the call added (its parameters' nodes among them).
    pub nodes: std::ops::Range<usize>,
    /// Its parameters, as indices into the graph's `params` (nested instances' included).
    pub params: std::ops::Range<usize>,
    /// The value it returned.
    pub output: Option<NodeId>,
    /// 0 for a call in the model's body, 1 inside such a layer, ...
    pub depth: usize,
}

/// Where a data set comes from (paths are relative to the `.net` file).
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Spiral { points: usize, classes: usize, seed: u64 },
    Synthetic { samples: usize, classes: usize, seed: u64 },
    Csv { path: String, label: String, scale: f64 },
    Npy { features: String, labels: String, scale: f64 },
    Idx { images: String, labels: String, scale: f64 },
}

/// How the samples of the source are split into training and test sets.
#[derive(Clone, Debug, PartialEq)]
pub enum Split {
    /// The first `n` samples train, the rest test.
    Count(usize),
    /// The first fraction trains, the rest tests.
    Fraction(f64),
}

/// The element type of a data field. Integers (class indices, token ids) are carried in the
/// graph's float type as whole numbers; their loaders check that every value is one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Float,
    Int,
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Float => "float",
            FieldType::Int => "int",
        }
    }
}

/// Which columns of a CSV file a field reads.
#[derive(Clone, Debug, PartialEq)]
pub enum Columns {
    /// Every column that no other field of the block reads from the same file.
    Rest,
    /// These columns, in this order.
    Names(Vec<String>),
    /// `"first:last"`: the columns from `first` to `last` inclusive, in header order (pandas'
    /// `.loc` label slicing).
    Range(String, String),
}

/// The file a field is read from.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldFile {
    /// An NPY array of shape `[samples, ...]`.
    Npy { path: String },
    /// Columns of a CSV file with a header row.
    Csv { path: String, columns: Columns },
}

impl FieldFile {
    pub fn path(&self) -> &str {
        match self {
            FieldFile::Npy { path } | FieldFile::Csv { path, .. } => path,
        }
    }
}

/// One named field of a data block, e.g. `y: npy("y.npy", float, [1])`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldDecl {
    pub name: String,
    /// The declared type; `None` takes the type of the model input the field feeds (`int`
    /// for one declared `tokens: [B, T] int`), else float (`FieldDecl::ty_for`).
    pub ty: Option<FieldType>,
    /// The per-sample shape when declared (`shape: [T]`); otherwise a model input's
    /// declaration gives it, or the file's own (integers: one value per sample).
    pub shape: Option<Vec<usize>>,
    pub file: FieldFile,
    /// The file of the test set's values of this field, when there is one.
    pub test: Option<FieldFile>,
    /// Every value is multiplied by this (floats only).
    pub scale: f64,
    pub span: Span,
}

impl FieldDecl {
    /// The field's type when it feeds a model input declared int (`integer_input`) or not.
    pub fn ty_for(&self, integer_input: bool) -> FieldType {
        match (self.ty, integer_input) {
            (Some(ty), _) => ty,
            (None, true) => FieldType::Int,
            (None, false) => FieldType::Float,
        }
    }
}

#[derive(Clone, Debug)]
pub struct DataDecl {
    pub name: String,
    /// Named fields (`x: npy("x.npy")`); empty when the block has a `source`.
    pub fields: Vec<FieldDecl>,
    /// A source of features and class labels, whose fields are the model's one input and
    /// `labels`; `None` when the block declares fields.
    pub source: Option<Source>,
    /// A separate test set, when the file names one.
    pub test: Option<Source>,
    /// Used instead of `source` (and `test`) when their files do not exist, e.g. a synthetic
    /// stand-in for MNIST until its files are downloaded.
    pub otherwise: Option<Source>,
    pub split: Option<Split>,
    pub shuffle: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Optimizer {
    Sgd {
        lr: f64,
    },
    Momentum {
        lr: f64,
        momentum: f64,
        nesterov: bool,
    },
    /// Adam in the PyTorch/optax form, p −= lr·m̂/(√v̂ + eps); `adamw` is Adam with a
    /// decoupled weight decay (p −= lr·decay·p each step; 0 for `adam`).
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        decay: f64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    Step { every: usize, gamma: f64 },
    Cosine { min_lr: f64 },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Length {
    Steps(usize),
    Epochs(usize),
}

/// What a metric measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// The fraction of samples (of positions, for sequence targets) whose largest score is at
    /// the integer target.
    Accuracy,
    /// Mean squared error of a float target.
    Mse,
    /// Mean absolute error of a float target.
    Mae,
}

impl MetricKind {
    pub fn name(self) -> &'static str {
        match self {
            MetricKind::Accuracy => "accuracy",
            MetricKind::Mse => "mse",
            MetricKind::Mae => "mae",
        }
    }
}

/// A metric of a train block: `accuracy(scores, labels)` compares the model output `output`
/// with the data field `target`, counting only where the field `mask` is nonzero if given.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub kind: MetricKind,
    pub output: String,
    pub target: String,
    pub mask: Option<String>,
}

/// A train block: the model's forward graph extended with the loss.
#[derive(Clone, Debug)]
pub struct TrainDecl {
    /// The block's name: `train NAME { model: M }`, else the model's (`train M { }`).
    pub name: String,
    pub model: String,
    /// Index into `Checked::data`.
    pub data: Option<usize>,
    /// The train step's forward pass, in training mode. Inputs: the model's inputs, then each
    /// other data field the loss reads (kind `Label`), each named after its field, and the
    /// `RandomKey` input if the model draws random numbers; outputs: `loss`, then the model's
    /// outputs; `updates`: the state updates (`<-`) of a step.
    pub graph: Graph,
    /// The same in inference mode, without updates: the loss and outputs on test data. Its
    /// parameters and state are the same as `graph`'s, in the same order.
    pub eval_graph: Graph,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    pub weight_decay: f64,
    pub length: Length,
    pub batch: Option<usize>,
    pub drop_last: bool,
    pub seed: u64,
    pub metrics: Vec<Metric>,
    /// Parameters (indices into `graph.params`) that training leaves as they are.
    pub frozen: Vec<usize>,
    /// Rescale the gradients when their global L2 norm is above this (PyTorch's
    /// `clip_grad_norm_`).
    pub clip_norm: Option<f64>,
    /// Steps of linear learning-rate warmup before the schedule starts.
    pub warmup: usize,
    pub span: Span,
}

/// `grad f wrt x, y` in an eval block.
#[derive(Clone, Debug)]
pub struct GradRequest {
    pub of_name: String,
    pub of: NodeId,
    pub wrt: Vec<(String, NodeId)>,
    pub span: Span,
}

/// An eval block: values of its `let x = literal` variables, what to show, what to differentiate.
#[derive(Clone, Debug)]
pub struct EvalDecl {
    pub name: Option<String>,
    pub graph: Graph,
    /// Values of `graph.inputs`, in order.
    pub values: Vec<Tensor>,
    /// Bare expressions to print: (source text, node).
    pub shows: Vec<(String, NodeId)>,
    /// For each of `shows`, whether the checker takes its value for integers (whole numbers by
    /// construction, which may index: `check::Checker::is_integer`); false for floats, also
    /// floats that happen to be whole (`[1.5] * 2`).
    pub integer_shows: Vec<bool>,
    /// For each of `shows`, the alphabet it is printed with as text (`decode(ids, alphabet)`).
    pub alphabets: Vec<Option<String>>,
    pub grads: Vec<GradRequest>,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct Checked {
    pub models: Vec<Model>,
    pub data: Vec<DataDecl>,
    pub trains: Vec<TrainDecl>,
    pub evals: Vec<EvalDecl>,
    /// Remarks about a program that is fine (code `N-…`): a convolution or pooling whose
    /// windows leave the last rows or columns unread (PyTorch's floor rule). `netc check`
    /// prints them.
    pub notes: Vec<crate::diag::Diagnostic>,
}
