//! No input makes the front end panic: random token soup, random bytes, and mutilated
//! examples all come back as `Ok` or as diagnostics.

use proptest::prelude::*;

const PIECES: &[&str] = &[
    "model",
    "layer",
    "fn",
    "data",
    "train",
    "eval",
    "let",
    "param",
    "grad",
    "wrt",
    "return",
    "x",
    "W",
    "B",
    "relu",
    "dense",
    "conv2d",
    "maxpool2d",
    "conv",
    "sum",
    "mean",
    "max",
    "reshape",
    "flatten",
    "cross_entropy",
    "labels",
    "scores",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "=",
    "->",
    "|>",
    "+",
    "-",
    "*",
    "/",
    "@",
    "**",
    ".",
    ";",
    "\n",
    "0",
    "1",
    "2",
    "3",
    "-1",
    "784",
    "1e-3",
    "0.5",
    "\"s\"",
    "axis",
    "shape",
    "he",
    "normal",
    "spiral",
    "sgd",
];

fn examples() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "net"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(crate::common::proptest_cases(300))]

    #[test]
    fn token_soup_never_panics(idx in proptest::collection::vec(0..PIECES.len(), 0..60)) {
        let src: Vec<&str> = idx.iter().map(|&i| PIECES[i]).collect();
        let _ = netc::frontend::check::check_source(&src.join(" "));
    }

    #[test]
    fn random_text_never_panics(s in "\\PC{0,200}") {
        let _ = netc::frontend::check::check_source(&s);
    }

    #[test]
    fn mutilated_examples_never_panic(which in 0usize..8, at in 0usize..4000, len in 0usize..40, piece in 0..PIECES.len()) {
        let ex = examples();
        let src = &ex[which % ex.len()];
        let at = at % (src.len() + 1);
        let end = (at + len).min(src.len());
        if src.is_char_boundary(at) && src.is_char_boundary(end) {
            let mutated = format!("{}{}{}", &src[..at], PIECES[piece], &src[end..]);
            let _ = netc::frontend::check::check_source(&mutated);
        }
    }
}
