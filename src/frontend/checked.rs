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
    pub span: Span,
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

#[derive(Clone, Debug)]
pub struct DataDecl {
    pub name: String,
    pub source: Source,
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
    Sgd { lr: f64 },
    Momentum { lr: f64, momentum: f64, nesterov: bool },
    Adam { lr: f64, beta1: f64, beta2: f64, eps: f64 },
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

/// A train block: the model's forward graph extended with the loss.
#[derive(Clone, Debug)]
pub struct TrainDecl {
    pub model: String,
    /// Index into `Checked::data`.
    pub data: Option<usize>,
    /// The train step's forward pass, in training mode: model inputs (and the `RandomKey`
    /// input if the model draws random numbers), then `labels`; outputs: `loss`, then the
    /// model's outputs; `updates`: the state updates (`<-`) of a step.
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
    pub metrics: Vec<String>,
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
    pub grads: Vec<GradRequest>,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct Checked {
    pub models: Vec<Model>,
    pub data: Vec<DataDecl>,
    pub trains: Vec<TrainDecl>,
    pub evals: Vec<EvalDecl>,
}
