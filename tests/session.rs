//! `session::Session`, the library object the Python module wraps: training on arrays from
//! memory is training on the data block, `netc run --save` and `Session::save` write the same
//! bytes, arrays are checked as data files are, a progress hook can stop a run, and the
//! forward pass runs in batches of any size.

use crate::common;

use std::path::Path;

use netc::session::{Fields, Options, Session, TensorKind};
use netc::training::data::{train_fields, ArrayField, TrainField};
use netc::training::{Overrides, Progress, Silent};

fn digits() -> Session {
    Session::from_file(Path::new("examples/digits_mlp.net"), &Options::default()).expect("compiles")
}

/// The first 1500 rows of examples/data/digits.csv as the data block reads them.
fn digits_arrays() -> Vec<ArrayField> {
    let text = std::fs::read_to_string("examples/data/digits.csv").unwrap();
    let (mut x, mut y) = (vec![], vec![]);
    for line in text.lines().skip(1).take(1500) {
        let row: Vec<f32> = line.split(',').map(|v| v.parse().unwrap()).collect();
        x.extend(row[..64].iter().map(|v| v * (1.0 / 16.0)));
        y.push(row[64]);
    }
    vec![
        ArrayField { name: "x".into(), shape: vec![1500, 64], values: x },
        ArrayField { name: "labels".into(), shape: vec![1500], values: y },
    ]
}

#[test]
fn fit_on_arrays_is_fit_on_the_data_block_is_netc_run() {
    let out = common::tmp("session-cli.safetensors");
    let (code, _, err) =
        common::netc(&["run", "examples/digits_mlp.net", "--steps", "100", "--quiet", "--save", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let steps = Overrides { steps: Some(100), ..Overrides::default() };
    let mut a = digits();
    let report = a.fit(Fields::DataBlock, &steps, &mut Silent).unwrap();
    assert_eq!((report.steps, a.steps()), (100, 100));
    let mut b = digits();
    b.fit(Fields::Arrays(digits_arrays()), &steps, &mut Silent).unwrap();
    for i in 0..a.tensors().len() {
        assert_eq!(a.value(i), b.value(i), "{}", a.tensors()[i].name);
    }
    let mine = common::tmp("session-mine.safetensors");
    a.save(&mine).unwrap();
    assert_eq!(std::fs::read(&mine).unwrap(), std::fs::read(&out).unwrap());
    // Loading restores the optimizer state and the step count.
    let mut c = digits();
    c.load(&out).unwrap();
    assert_eq!(c.steps(), 100);
    for i in 0..a.tensors().len() {
        assert_eq!(a.value(i), c.value(i));
    }
    let _ = (std::fs::remove_file(out), std::fs::remove_file(mine));
}

#[test]
fn a_progress_hook_stops_the_run_after_a_step() {
    struct StopAt(usize);
    impl Progress for StopAt {
        fn start(&mut self, _: usize) {}
        fn update(&mut self, _: usize, _: f32, _: f64) {}
        fn finish(&mut self) {}
        fn after_step(&mut self, step: usize, _: f32) -> bool {
            step < self.0
        }
    }
    let mut s = digits();
    let report = s.fit(Fields::DataBlock, &Overrides::default(), &mut StopAt(7)).unwrap();
    assert!(report.interrupted);
    assert_eq!((report.losses.len(), s.steps()), (7, 7));
    // A second fit goes on from step 7 with another data order.
    let more = s.fit(Fields::DataBlock, &Overrides { steps: Some(3), ..Overrides::default() }, &mut Silent).unwrap();
    assert!(!more.interrupted);
    assert_eq!(s.steps(), 10);
}

#[test]
fn arrays_are_checked_like_data_files() {
    let mut s = digits();
    let fit = |s: &mut Session, arrays: Vec<ArrayField>| {
        s.fit(Fields::Arrays(arrays), &Overrides { steps: Some(1), ..Overrides::default() }, &mut Silent)
            .map(|_| ())
            .unwrap_err()
            .message
    };
    let mut arrays = digits_arrays();
    arrays[0] = ArrayField { name: "x".into(), shape: vec![750, 128], values: arrays[0].values.clone() };
    assert!(fit(&mut s, arrays).contains("`x` has shape [750, 128], but train digits_mlp reads it as [N, 64]"));
    let mut arrays = digits_arrays();
    arrays[1].values[3] = 10.0;
    assert!(fit(&mut s, arrays).contains("out of range for 10 classes"));
    let mut arrays = digits_arrays();
    arrays[1].name = "label".into();
    assert!(fit(&mut s, arrays).contains("reads no field named `label`"));
    let mut arrays = digits_arrays();
    arrays.pop();
    assert!(fit(&mut s, arrays).contains("reads the field `labels` ([N]), which was not given"));
    let mut arrays = digits_arrays();
    arrays[1] = ArrayField { name: "labels".into(), shape: vec![1499], values: vec![0.0; 1499] };
    assert!(fit(&mut s, arrays).contains("1499"));
    assert_eq!(s.steps(), 0);
}

#[test]
fn the_fields_of_a_train_block() {
    let c = netc::frontend::check::check_source(&std::fs::read_to_string("examples/tagging.net").unwrap()).unwrap();
    let fields = train_fields(&c.trains[0]);
    let f = |name: &str| fields.iter().find(|f| f.name == name).cloned().unwrap();
    // The model one-hot encodes its tokens (`one_hot(tokens, 6)`): they are class indices too.
    assert_eq!(
        f("tokens"),
        TrainField {
            name: "tokens".into(),
            shape: vec![8],
            integer: true,
            bound: Some(6),
            model_input: true,
            required: true
        }
    );
    assert_eq!(
        f("tags"),
        TrainField {
            name: "tags".into(),
            shape: vec![8],
            integer: true,
            bound: Some(3),
            model_input: false,
            required: true
        }
    );
    assert_eq!(f("mask").shape, vec![8]);
    assert!(f("mask").required); // the loss reads it
    assert_eq!(fields.len(), 3);
    let s = digits();
    assert_eq!(
        s.fields().iter().map(|f| (f.name.as_str(), f.integer, f.bound)).collect::<Vec<_>>(),
        [("x", false, None), ("labels", true, Some(10))]
    );
    assert!(s.tensors().iter().take(4).all(|t| t.kind == TensorKind::Param));
    assert!(s.tensors().iter().skip(4).all(|t| t.kind == TensorKind::Optimizer));
}

#[test]
fn state_tensors_are_state() {
    let s = Session::from_file(Path::new("examples/digits_bn_cnn.net"), &Options::default()).unwrap();
    let state: Vec<&str> =
        s.tensors().iter().filter(|t| t.kind == TensorKind::State).map(|t| t.name.as_str()).collect();
    assert_eq!(state.len(), 2, "{state:?}");
}

#[test]
fn forward_in_batches_of_any_size_and_of_no_samples() {
    let mut s = digits();
    let x: Vec<f32> = (0..10 * 64).map(|i| (i % 17) as f32 / 16.0).collect();
    let mut whole = vec![0f32; 100];
    s.forward(&[&x], 10, 256, &mut [&mut whole]).unwrap();
    let mut threes = vec![0f32; 100];
    s.forward(&[&x], 10, 3, &mut [&mut threes]).unwrap();
    for (a, b) in whole.iter().zip(&threes) {
        assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{a} vs {b}");
    }
    s.forward(&[&[]], 0, 256, &mut [&mut []]).unwrap();
    let err = s.forward(&[&x[..64]], 10, 256, &mut [&mut whole]).unwrap_err();
    assert!(err.message.contains("holds 64 values, 10 samples need 640"), "{}", err.message);
}

#[test]
fn gradients_in_both_modes_leave_the_parameters_alone() {
    let mut s = digits();
    let arrays = || {
        let mut a = digits_arrays();
        for f in &mut a {
            let per = f.values.len() / 1500;
            f.values.truncate(32 * per);
            f.shape[0] = 32;
        }
        a
    };
    let before: Vec<Vec<f32>> = (0..s.tensors().len()).map(|i| s.value(i).to_vec()).collect();
    let (loss, grads) = s.loss_and_grads(arrays(), true).unwrap();
    let (loss2, grads2) = s.loss_and_grads(arrays(), false).unwrap();
    // No dropout or batch norm in this model: the modes agree.
    assert_eq!(loss, loss2);
    assert_eq!(grads, grads2);
    assert_eq!(grads.len(), 4);
    assert!(loss.is_finite() && grads.iter().all(|g| g.iter().any(|v| *v != 0.0)));
    for (i, b) in before.iter().enumerate() {
        assert_eq!(s.value(i), &b[..]);
    }
}

#[test]
fn int_inputs_from_arrays_train_as_the_data_block_and_are_checked() {
    let open = || Session::from_file(Path::new("examples/text_classify.net"), &Options::default()).expect("compiles");
    let read = |path: &str| netc::runtime::data::read_npy(Path::new(path)).expect("reads");
    let (tokens, labels) = (read("examples/data/topics_tokens.npy"), read("examples/data/topics_labels.npy"));
    // The data block's training set: its first 1600 sentences.
    let arrays = vec![
        ArrayField { name: "tokens".into(), shape: vec![1600, 16], values: tokens.values[..1600 * 16].to_vec() },
        ArrayField { name: "labels".into(), shape: vec![1600], values: labels.values[..1600].to_vec() },
    ];
    let steps = Overrides { steps: Some(30), ..Overrides::default() };
    let mut a = open();
    a.fit(Fields::DataBlock, &steps, &mut Silent).unwrap();
    let mut b = open();
    b.fit(Fields::Arrays(arrays.clone()), &steps, &mut Silent).unwrap();
    for i in 0..a.tensors().len() {
        assert_eq!(a.value(i), b.value(i), "{}", a.tensors()[i].name);
    }

    // An id past the embedding's 64 rows, or not a whole number: refused with its sample, by
    // fit and by the forward pass alike.
    let mut scores = vec![0.0; 2 * 4];
    for (bad, says) in [(64.0, "not a valid id: it indexes an axis of 64"), (1.5, "not a whole number")] {
        let mut x = tokens.values[..2 * 16].to_vec();
        x[16 + 5] = bad;
        let e = b.forward(&[&x], 2, 2, &mut [&mut scores]).unwrap_err();
        assert!(e.message.contains(says) && e.message.contains("item 1"), "{}", e.message);
        let mut arrays = arrays.clone();
        arrays[0].values[16 + 5] = bad;
        let e = b.fit(Fields::Arrays(arrays), &steps, &mut Silent).map(|_| ()).unwrap_err();
        assert!(e.message.contains(says), "{}", e.message);
    }
    assert_eq!(b.steps(), 30);
    b.forward(&[&tokens.values[..2 * 16]], 2, 2, &mut [&mut scores]).unwrap();
    assert!(scores.iter().all(|s| s.is_finite()));
}
