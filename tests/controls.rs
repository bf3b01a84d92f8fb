//! The training controls: freezing, partial initialisation, gradient clipping, warmup and
//! several train blocks; the parameter-naming rule; `netc summary`; and the command line's
//! refusals (bad values, flags that do nothing, output paths that cannot be written).

use crate::common;

use common::*;

use netc::ir::graph::ParamKind;
use netc::runtime::weights;

fn write(dir: &TempDir, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// The named tensors of a weights file.
fn tensors(path: &std::path::Path) -> Vec<weights::Weight> {
    weights::load(path).unwrap()
}

fn tensor<'a>(ws: &'a [weights::Weight], name: &str) -> &'a [f32] {
    &ws.iter().find(|w| w.name == name).unwrap_or_else(|| panic!("no {name}")).data
}

const TWO_LAYERS: &str = "model m(x: [B, 2]) -> scores: [B, 3] {
  let body = x |> dense(16) |> relu
  body |> dense(3)
}
data d { source: spiral(points: 30, classes: 3, seed: 1) }
";

#[test]
fn frozen_parameters_are_bit_identical_after_training() {
    let dir = temp_dir("controls", "freeze");
    let net = write(
        &dir,
        "f.net",
        &format!("{TWO_LAYERS}train m {{\n  loss: cross_entropy(scores, labels)\n  optimizer: adam(lr: 0.05)\n  steps: 20\n  freeze: [body]\n}}\n"),
    );
    let (init, trained) = (dir.join("init.safetensors"), dir.join("trained.safetensors"));
    let (code, _, err) = netc(&["run", &net, "--stop-after", "0", "--quiet", "--save", init.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = netc(&["run", &net, "--json", "--save", trained.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(field(&out, "frozen"), r#"["body.W","body.b"]"#);
    let (a, b) = (tensors(&init), tensors(&trained));
    for name in ["body.W", "body.b"] {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(tensor(&a, name)), bits(tensor(&b, name)), "{name} changed");
    }
    assert_ne!(tensor(&a, "dense_1.W"), tensor(&b, "dense_1.W"), "the head trains");
    // Frozen parameters get no optimizer state.
    assert!(!b.iter().any(|w| w.name.starts_with("body.") && w.name.ends_with(".m")), "state for a frozen tensor");

    // `netc summary` counts them as frozen.
    let (code, out, _) = netc(&["summary", &net]);
    assert_eq!(code, 0);
    assert!(out.contains("trainable 51, frozen 48"), "{out}");

    // A pattern that matches nothing is an error naming the parameters.
    let bad = write(
        &dir,
        "bad.net",
        &format!("{TWO_LAYERS}train m {{ loss: cross_entropy(scores, labels); freeze: [bdy] }}\n"),
    );
    let (code, _, err) = netc(&["check", &bad]);
    assert_eq!(code, 1);
    assert!(err.contains("`bdy` matches no parameter") && err.contains("did you mean `body`?"), "{err}");
    let glob = write(
        &dir,
        "glob.net",
        &format!("{TWO_LAYERS}train m {{ loss: cross_entropy(scores, labels); freeze: [\"*.b\"] }}\n"),
    );
    let (code, out, err) = netc(&["run", &glob, "--json", "--steps", "1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(field(&out, "frozen"), r#"["body.b","dense_1.b"]"#);
}

#[test]
fn init_from_loads_the_matching_tensors_and_says_which() {
    let dir = temp_dir("controls", "init_from");
    let source =
        write(&dir, "a.net", &format!("{TWO_LAYERS}train m {{ loss: cross_entropy(scores, labels); steps: 5 }}\n"));
    let pretrained = dir.join("a.safetensors");
    let (code, _, err) = netc(&["run", &source, "--quiet", "--save", pretrained.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    // A new head of 5 classes: body.* match, dense_1.W has another shape, dense_1.b too.
    let target = write(
        &dir,
        "b.net",
        "model m(x: [B, 2]) -> scores: [B, 5] {
  let body = x |> dense(16) |> relu
  let extra = body |> dense(8)
  extra |> dense(5)
}
data d { source: spiral(points: 30, classes: 5, seed: 1) }
train m { loss: cross_entropy(scores, labels); steps: 3 }
",
    );
    let start = dir.join("b0.safetensors");
    let (code, _, err) = netc(&[
        "run",
        &target,
        "--init-from",
        pretrained.to_str().unwrap(),
        "--stop-after",
        "0",
        "--save",
        start.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("loaded (2): body.W, body.b"), "{err}");
    assert!(err.contains("dense_1.W (shape [16, 3] in the file, [8, 5] in the model)"), "{err}");
    assert!(err.contains("left at init (4): extra.W, extra.b, dense_1.W, dense_1.b"), "{err}");
    let (a, b) = (tensors(&pretrained), tensors(&start));
    assert_eq!(tensor(&a, "body.W"), tensor(&b, "body.W"), "loaded values are the file's");

    let (code, out, _) = netc(&["run", &target, "--init-from", pretrained.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0);
    assert!(field(&out, "init_from").contains("\"loaded\":[\"body.W\",\"body.b\"]"), "{out}");
    let (code, _, err) =
        netc(&["run", &target, "--init-from", pretrained.to_str().unwrap(), "--load", pretrained.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
}

/// The L2 norm of the difference of all tensors of two weights files named in `names`.
fn step_norm(a: &[weights::Weight], b: &[weights::Weight], names: &[&str]) -> f64 {
    names
        .iter()
        .map(|n| tensor(a, n).iter().zip(tensor(b, n)).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>())
        .sum::<f64>()
        .sqrt()
}

#[test]
fn clipping_bounds_the_global_norm_of_the_gradients() {
    let dir = temp_dir("controls", "clip");
    let params = ["body.W", "body.b", "dense_1.W", "dense_1.b"];
    // One SGD step with lr 1 moves the parameters by exactly the (clipped) gradient.
    let run = |clip: &str| {
        let tag: String = clip.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let net = write(
            &dir,
            &format!("c{tag}.net"),
            &format!(
                "{TWO_LAYERS}train m {{\n  loss: 10 * cross_entropy(scores, labels)\n  optimizer: sgd(lr: 1)\n  steps: 1\n{clip}\n}}\n"
            ),
        );
        let (init, after) = (dir.join(&format!("i{tag}.st")), dir.join(&format!("a{tag}.st")));
        let (code, _, err) = netc(&["run", &net, "--quiet", "--stop-after", "0", "--save", init.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = netc(&["run", &net, "--quiet", "--save", after.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        step_norm(&tensors(&init), &tensors(&after), &params)
    };
    let unclipped = run("");
    assert!(unclipped > 0.5, "the test needs a gradient above the limit: {unclipped}");
    let clipped = run("  clip_norm: 0.25");
    assert!((clipped - 0.25).abs() < 1e-4, "the step's norm is the limit: {clipped}");
    let loose = run("  clip_norm: 1000");
    assert!((loose - unclipped).abs() < 1e-6 * unclipped, "a limit above the norm changes nothing");
}

#[test]
fn warmup_ramps_up_to_the_schedule_which_then_runs_over_the_remaining_steps() {
    let src = "model m(x: [B, 2]) -> s: [B, 2] { x |> dense(2) }
train m { loss: mean(s); optimizer: sgd(lr: 0.1); schedule: cosine(min_lr: 0); warmup: 10; steps: 110 }
";
    let c = netc::frontend::check::check_source(src).unwrap();
    let t = &c.trains[0];
    let lr = |s| netc::training::optim::learning_rate(t, s, 110);
    assert!((lr(0) - 0.01).abs() < 1e-15 && (lr(4) - 0.05).abs() < 1e-15 && (lr(9) - 0.1).abs() < 1e-15);
    assert!((lr(10) - 0.1).abs() < 1e-15, "the cosine starts after the warmup");
    assert!((lr(60) - 0.05).abs() < 1e-12, "halfway through the 100 cosine steps: {}", lr(60));
}

#[test]
fn several_train_blocks_are_chosen_by_name() {
    let dir = temp_dir("controls", "several");
    let net = write(
        &dir,
        "two.net",
        &format!(
            "{TWO_LAYERS}train pretrain {{ model: m; loss: cross_entropy(scores, labels); steps: 2 }}\n\
             train finetune {{ model: m; loss: cross_entropy(scores, labels); steps: 3; freeze: [body] }}\n"
        ),
    );
    let (code, _, err) = netc(&["run", &net]);
    assert_eq!(code, 1);
    assert!(err.contains("2 train blocks; choose one with --train NAME: pretrain, finetune"), "{err}");
    let (code, out, err) = netc(&["run", &net, "--train", "finetune", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!((field(&out, "train"), field(&out, "steps")), ("\"finetune\"".to_string(), "3".to_string()));
    let (code, _, err) = netc(&["run", &net, "--train", "fintune"]);
    assert_eq!(code, 1);
    assert!(err.contains("no train block is named `fintune` (did you mean `finetune`?)"), "{err}");
    let dup = write(
        &dir,
        "dup.net",
        &format!("{TWO_LAYERS}train m {{ loss: cross_entropy(scores, labels) }}\ntrain m {{ loss: mean(scores) }}\n"),
    );
    let (code, _, err) = netc(&["check", &dup]);
    assert_eq!(code, 1);
    assert!(err.contains("two train blocks are named `m`"), "{err}");
}

/// The parameter names `netc check` prints for a model body.
fn parameter_names(body: &str) -> Vec<String> {
    let src = format!("model m(x: [B, 4]) -> [B, 3] {{\n{body}\n}}\n");
    let c = netc::frontend::check::check_source(&src).unwrap_or_else(|d| panic!("{body}: {d:?}"));
    c.models[0].graph.params.iter().map(|p| p.name.clone()).collect()
}

#[test]
fn appending_a_layer_to_a_pipeline_keeps_the_names_before_it() {
    // The rule: `let NAME = …` names the first layer its value calls; other layer calls are
    // LAYER_k, counted per layer in call order.
    let one = parameter_names("  let body = x |> dense(3)\n  body");
    assert_eq!(one, ["body.W", "body.b"]);
    let two = parameter_names("  let body = x |> dense(3) |> relu\n  body");
    assert_eq!(two, one, "appending relu renamed the dense");
    let three = parameter_names("  let body = x |> dense(8) |> relu |> dense(3)\n  body");
    assert_eq!(three, ["body.W", "body.b", "dense_1.W", "dense_1.b"]);
    let four = parameter_names("  let body = x |> dense(8) |> relu |> dense(3) |> tanh |> dense(3)\n  body");
    assert_eq!(&four[..4], &three[..]);
    // A call nested in a builtin's argument is still the first layer called.
    assert_eq!(parameter_names("  let h = relu(dense(x, 3))\n  h"), ["h.W", "h.b"]);
    assert_eq!(parameter_names("  x |> dense(8) |> dense(3)"), ["dense_1.W", "dense_1.b", "dense_2.W", "dense_2.b"]);
}

#[test]
fn summary_matches_check_for_every_example() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "net") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        let c = netc::frontend::check::check_source(&src).unwrap();
        let (code, check, _) = netc(&["check", path.to_str().unwrap()]);
        assert_eq!(code, 0);
        let (code, summary, err) = netc(&["summary", path.to_str().unwrap()]);
        if c.models.is_empty() {
            assert_eq!(code, 1, "{}: a file without models has no summary", path.display());
            continue;
        }
        assert_eq!(code, 0, "{}: {err}", path.display());
        for m in &c.models {
            let count = netc::commands::report::param_count(&m.graph);
            let tensors = m.graph.params.len();
            // State (running statistics) is counted among the parameters and named apart.
            let state: Vec<_> = m.graph.params.iter().filter(|p| p.kind == ParamKind::State).collect();
            let of_state = if state.is_empty() { String::new() } else { format!(" ({} of them state)", state.len()) };
            assert!(check.contains(&format!("parameters: {tensors} tensors{of_state}, {count} values")), "{check}");
            let grouped = netc::commands::summary::grouped(count);
            assert!(
                summary.contains(&format!("parameters: {grouped} in {tensors} tensors")),
                "{}: summary disagrees with check ({count}):\n{summary}",
                path.display()
            );
            let state_values: usize =
                state.iter().map(|p| p.shape.iter().map(|d| d.known().unwrap_or(1)).product::<usize>()).sum();
            if state_values > 0 {
                let trainable = netc::commands::summary::grouped(count - state_values);
                let state_values = netc::commands::summary::grouped(state_values);
                assert!(
                    summary.contains(&format!("trainable {trainable}, frozen 0, state {state_values}")),
                    "{}: the summary counts state apart:\n{summary}",
                    path.display()
                );
            }
        }
        n += 1;
    }
    assert!(n >= 8, "examples are missing");
    let (_, out, _) = netc(&["summary", "examples/digits_cnn.net"]);
    assert!(out.contains("conv2d_1") && out.contains("[B, 8, 8, 8]") && out.contains("train step at batch"), "{out}");
    let (_, out, _) = netc(&["summary", "examples/text_classify.net"]);
    assert!(out.contains("model text_classify(tokens: [B, 16] int)") && out.contains("embedding"), "{out}");
}

#[test]
fn bad_option_values_are_usage_errors_with_the_choices() {
    let (code, _, err) = netc(&["graph", "examples/gates.net", "--format", "svg"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("possible values: dot, text"), "{err}");
    let (code, _, err) = netc(&["run", "examples/spiral.net", "--engine", "gpu"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("possible values: jit, interp"), "{err}");
}

#[test]
fn flags_that_would_do_nothing_or_fail_late_are_refused_first() {
    let (code, _, err) = netc(&["run", "examples/gates.net", "--plot", "loss.svg"]);
    assert_eq!(code, 1);
    assert!(err.contains("--plot does nothing: examples/gates.net has no train block"), "{err}");
    let (code, _, err) = netc(&["run", "examples/spiral.net", "--load", "a.st", "--resume", "b.st"]);
    assert_eq!(code, 1);
    assert!(err.contains("--load and --resume both give the starting weights"), "{err}");
    // A save path in a missing folder is refused before the 10000 steps, not after them.
    let (code, out, err) = netc(&["run", "examples/spiral.net", "--save", "/nonexistent-netc-dir/w.safetensors"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--save /nonexistent-netc-dir/w.safetensors: the folder /nonexistent-netc-dir does not exist"),
        "{err}"
    );
    assert!(out.is_empty(), "it trained first: {out}");
    let (code, _, err) = netc(&["run", "examples/spiral.net", "--plot", "/tmp"]);
    assert_eq!(code, 1);
    assert!(err.contains("--plot /tmp: it is a directory"), "{err}");
}

#[test]
fn plot_save_and_build_say_what_they_wrote_and_build_makes_its_folder() {
    let dir = temp_dir("controls", "wrote");
    let (plot, save) = (dir.join("loss.svg"), dir.join("w.safetensors"));
    let (code, _, err) = netc(&[
        "run",
        "examples/spiral.net",
        "--steps",
        "5",
        "--plot",
        plot.to_str().unwrap(),
        "--save",
        save.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("wrote the loss curve (5 steps) to {}", plot.display())), "{err}");
    assert!(err.contains(&format!("wrote {} (4 parameter tensors, step 5)", save.display())), "{err}");
    let object = dir.join("out/nested/m.o");
    let (code, _, err) = netc(&["build", "examples/spiral.net", "-o", object.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(object.exists() && object.with_extension("h").exists());
}

#[test]
fn graph_draws_an_index_as_one_node_and_takes_trained_values() {
    let (code, dot, _) = netc(&["graph", "examples/neuron.net"]);
    assert_eq!(code, 0);
    assert!(dot.contains("label=\"w[0]\"") && dot.contains("label=\"x[1]\""), "{dot}");
    let forward = &dot[..dot.find("cluster_backward").unwrap_or(dot.len())];
    assert!(!forward.contains("slice"), "the slices of an index are hidden:\n{forward}");

    let dir = temp_dir("controls", "graph_load");
    let w = dir.join("w.safetensors");
    let (code, _, err) =
        netc(&["run", "examples/spiral.net", "--steps", "3", "--quiet", "--save", w.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, a, _) = netc(&["graph", "examples/spiral.net", "--values"]);
    assert_eq!(code, 0);
    let (code, b, err) = netc(&["graph", "examples/spiral.net", "--values", "--load", w.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(a, b, "the trained values are drawn");
    let (code, _, err) = netc(&["graph", "examples/spiral.net", "--load", w.to_str().unwrap()]);
    assert_eq!(code, 1, "--load without --values draws no values: {err}");
}
