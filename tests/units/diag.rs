//! Moved from `src/diag.rs`'s unit tests.

use netc::diag::*;

#[test]
fn suggests_close_names_only() {
    assert_eq!(nearest("relu", ["relu6", "tanh", "elu"]), Some("elu"));
    assert_eq!(nearest("sigmod", ["sigmoid", "softmax"]), Some("sigmoid"));
    assert_eq!(nearest("xyz", ["sigmoid", "softmax"]), None);
    // Ties: the typo's case first, then the earlier candidate.
    assert_eq!(nearest("y", ["B", "x", "a"]), Some("x"));
    assert_eq!(nearest("y", ["a", "x", "B"]), Some("a"));
}

#[test]
fn line_and_column_count_characters_from_one() {
    let text = "ab\nçd\n";
    assert_eq!(line_column(text, 0), (1, 1));
    assert_eq!(line_column(text, 3), (2, 1));
    assert_eq!(line_column(text, 5), (2, 2)); // after the two bytes of ç
    assert_eq!(line_column(text, 4), (2, 1)); // inside ç: its start
    assert_eq!(line_column(text, 99), (3, 1));
}

#[test]
fn ties_go_to_the_same_case_then_the_first_given() {
    assert_eq!(nearest("y", ["B", "x", "a"]), Some("x"));
    assert_eq!(nearest("y", ["a", "x"]), Some("a"));
    assert_eq!(nearest("T", ["x", "B"]), Some("B"));
}
