//! The command line's verbs over the library (flags are parsed in main.rs):
//! `netc run` (`eval` blocks, then `train`; on the ranks of an MPI job `distributed`), `netc bench`, `netc graph` (`graph`, drawn by
//! `dot`), `netc gradcheck` (`graph::gradcheck`), `netc check` (`report`), `netc summary` (`summary`),
//! `netc predict` (`predict`), `netc repl`.
//! `netc build` is `drivers::object`.

pub mod bench;
pub mod distributed;
pub mod dot;
pub mod eval;
pub mod graph;
pub mod predict;
pub mod repl;
pub mod report;
pub mod summary;
pub mod train;
