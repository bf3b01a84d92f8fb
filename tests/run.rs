//! `netc run`, `netc graph` and `netc gradcheck` on the lecture's examples: the lecture's
//! numbers, pictures that Graphviz renders, and a backward graph with no Jacobian in it.

use crate::common;
use common::*;
use std::process::Command;

#[test]
fn gates_prints_the_lectures_numbers() {
    let (code, out, err) = netc(&["run", "examples/gates.net"]);
    assert_eq!(code, 0, "{err}");
    for line in ["f = -12", "df/dx = -4", "df/dy = -4", "df/dz = 3"] {
        assert!(out.contains(line), "missing `{line}` in:\n{out}");
    }
}

#[test]
fn neuron_prints_the_lectures_numbers() {
    let (code, out, err) = netc(&["run", "examples/neuron.net"]);
    assert_eq!(code, 0, "{err}");
    // f = σ(2·-1 + -3·-2 + -3) = σ(1) = 0.731; dw = (1 - f)·f·[x0, x1, 1] = 0.197·[-1, -2, 1].
    assert!(out.contains("f = 0.731059"), "{out}");
    assert!(out.contains("df/dw = [-0.196612, -0.393224, 0.196612]"), "{out}");
    assert!(out.contains("df/dx = [0.393224, -0.589836]"), "{out}");
    assert_eq!(out.matches("f = 0.731059").count(), 2, "both the gate-by-gate and the sigmoid-gate neuron");
}

#[test]
fn stats_report_the_compilation_of_eval_blocks() {
    // An eval-only file: one compiled function per eval block (neuron.net has two).
    let (code, out, err) = netc(&["run", "--stats", "examples/neuron.net"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("f = 0.731059"), "the values are still printed: {out}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(": compiled in ")).collect();
    assert_eq!(lines.len(), 2, "one line per eval block:\n{err}");
    for l in &lines {
        assert!(l.starts_with("eval ") && l.contains(" kernels, workspace ") && l.contains(" bytes planned"), "{l}");
    }
    let (code, _, err) = netc(&["run", "--stats", "--engine", "interp", "examples/neuron.net"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.matches("interpreted (--engine interp), nothing compiled").count(), 2, "{err}");
    let (code, _, err) = netc(&["run", "examples/neuron.net"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("compiled in"), "no statistics without --stats: {err}");
}

#[test]
fn graph_pictures_label_edges_with_values_and_gradients() {
    let (code, dot, err) = netc(&["graph", "examples/gates.net", "--values"]);
    assert_eq!(code, 0, "{err}");
    assert!(dot.starts_with("digraph"), "{dot}");
    // The edge from q = x + y into the mul gate carries 3 forward and -4 backward.
    assert!(dot.contains(">3</font><br/><font color=\"red\">-4</font>"), "{dot}");
    // The output edge carries f = -12 and df/df = 1.
    assert!(dot.contains(">-12</font><br/><font color=\"red\">1</font>"), "{dot}");
    if Command::new("dot").arg("-V").output().is_ok() {
        let dir = std::env::temp_dir().join(format!("netc-graph-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let svg = dir.join("neuron.svg");
        let (code, _, err) = netc(&["graph", "examples/neuron.net", "--values", "-o", svg.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("<svg"), "Graphviz rendered no SVG");
        std::fs::remove_dir_all(dir).ok();
    }
}

/// Parse `%i: [dims] = op...` lines of the text form into (dims, is_backward).
fn shapes(text: &str) -> Vec<(Vec<String>, bool)> {
    let mut backward = false;
    let mut out = vec![];
    for line in text.lines() {
        if line.starts_with("# ---- backward") {
            backward = true;
        }
        let Some(rest) = line.split_once(": [").map(|x| x.1) else { continue };
        let dims = rest.split(']').next().unwrap();
        let dims: Vec<String> = dims.split(", ").filter(|d| !d.is_empty()).map(str::to_string).collect();
        out.push((dims, backward));
    }
    out
}

#[test]
fn spiral_backward_graph_builds_no_jacobian() {
    let (code, text, err) = netc(&["graph", "examples/spiral.net", "--format", "text"]);
    assert_eq!(code, 0, "{err}");
    let nodes = shapes(&text);
    assert!(nodes.iter().any(|n| n.1), "no backward part:\n{text}");
    // With the batch bound to 300, no backward value is larger than the largest forward one
    // (a Jacobian of [B, 100] wrt [B, 100] would be 900 million), and none has two batch axes.
    let size = |dims: &[String]| dims.iter().map(|d| d.parse::<usize>().unwrap_or(300)).product::<usize>();
    let largest_forward = nodes.iter().filter(|n| !n.1).map(|n| size(&n.0)).max().unwrap();
    for (dims, backward) in &nodes {
        if *backward {
            assert!(size(dims) <= largest_forward, "backward value of shape {dims:?} is larger than any activation");
            assert!(dims.iter().filter(|d| *d == "B").count() <= 1, "{dims:?} has two batch axes");
        }
    }
}

#[test]
fn optimised_graph_and_print_after() {
    let (code, text, err) = netc(&["graph", "examples/spiral.net", "--print-after", "cse"]);
    assert_eq!(code, 0, "{err}");
    assert!(text.starts_with("// after cse"), "{text}");
    let (code, _, err) = netc(&["graph", "examples/spiral.net", "--print-after", "nonsense"]);
    assert_eq!(code, 1);
    assert!(err.contains("nonsense"), "{err}");
}

#[test]
fn gradcheck_passes_on_the_lecture_examples() {
    for file in [
        "examples/gates.net",
        "examples/neuron.net",
        "examples/spiral.net",
        "examples/digits_mlp.net",
        "examples/digits_cnn.net",
    ] {
        let (code, out, err) = netc(&["gradcheck", file]);
        assert_eq!(code, 0, "{file}: {out}{err}");
        assert!(out.contains("ok"), "{out}");
        assert!(!out.contains("FAIL"), "{out}");
    }
}

#[test]
fn eval_blocks_that_call_the_trained_model_run_after_training_on_its_weights() {
    let dir = temp_dir("run", "post_train_eval");
    let trainer = "model tiny(x: [B, 2]) -> scores: [B, 2] { x |> dense(2) }
data d { source: spiral(points: 20, classes: 2, seed: 1) }
train tiny {
  loss: cross_entropy(scores, labels)
  optimizer: sgd(lr: 0.5)
  steps: 50
}
eval after { tiny([[1, 2]]) }
eval before { 1 + 2 }
";
    let file = dir.join("tiny.net");
    std::fs::write(&file, trainer).unwrap();
    let weights = dir.join("w.safetensors");
    let (code, out, err) = netc(&["run", file.to_str().unwrap(), "--save", weights.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    // `before` calls no model: it runs first; `after` runs once training has printed its table.
    let (before, trained, after) =
        (out.find("eval before").unwrap(), out.find("trained tiny").unwrap(), out.find("eval after").unwrap());
    assert!(before < trained && trained < after, "{out}");
    let shown = |text: &str| text[text.find("tiny([[1, 2]]) =").unwrap()..].lines().next().unwrap().to_string();
    // The same numbers as an eval-only file that loads the saved weights: the trained ones.
    let only_eval = dir.join("eval.net");
    let model = trainer.lines().next().unwrap();
    std::fs::write(&only_eval, format!("{model}\neval after {{ tiny([[1, 2]]) }}\n")).unwrap();
    let (code, loaded, err) = netc(&["run", only_eval.to_str().unwrap(), "--load", weights.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(shown(&out), shown(&loaded));
    let (_, untrained, _) = netc(&["run", only_eval.to_str().unwrap()]);
    assert_ne!(shown(&out), shown(&untrained), "training changed nothing?");
    // --json keeps stdout one JSON object; the evals go to stderr.
    let (code, out, err) = netc(&["run", file.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<serde_json::Value>(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(err.contains("eval after") && err.contains("eval before"), "{err}");
}
