//! Every ```net block of docs/language.md checks; every ```net-error block is rejected.

#[test]
fn language_doc_examples_check() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/language.md")).unwrap();
    let mut blocks = vec![];
    let mut current: Option<(bool, String)> = None;
    for line in doc.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```net") => current = Some((true, String::new())),
            (None, "```net-error") => current = Some((false, String::new())),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some((_, text)), l) => {
                text.push_str(l);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(blocks.len() >= 12, "docs/language.md lost its examples");
    for (should_pass, src) in blocks {
        let result = netc::frontend::check::check_source(&src);
        if should_pass {
            assert!(result.is_ok(), "this example does not check:\n{src}\n{:#?}", result.err());
        } else {
            assert!(result.is_err(), "this example should be rejected:\n{src}");
        }
    }
}
