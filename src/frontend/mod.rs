//! The front end: source text in, a `Checked` program out (one graph per model, train block
//! and eval block), or every diagnostic found.
//!
//! - `lexer`: logos tokens; `parser` (+ `grammar/netc.lalrpop`): tokens → `ast`
//! - `check/`: names, shapes and settings, by elaborating the program (each call of a
//!   function or layer is expanded with its arguments' shapes); built-ins lower into graph
//!   primitives through `lower`
//! - `checked`: the checked program, what every later stage reads
//! - `prelude.net`: the built-in layers written in the language

pub mod ast;
pub mod builtins;
pub mod check;
pub mod checked;
pub mod lexer;
pub mod lower;
pub mod parser;
