//! Memory limits: a model whose parameters or activations would not fit is refused before
//! anything is allocated, with the computed size, instead of failing inside an allocator.

use crate::diag::Diagnostic;
use crate::ir::graph::{Dim, Graph};

/// The most elements any one tensor may have (2^48: beyond any memory, and far from overflow
/// when sizes are multiplied by element sizes or the batch).
pub const MAX_ELEMENTS: usize = 1 << 48;

/// The default limit: three quarters of the machine's memory (8 GiB if it cannot be read).
pub fn default_limit() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
    });
    total.map_or(8 << 30, |t| t / 4 * 3)
}

pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Bytes of every value of `g` with symbolic dimensions bound to `batch`: parameters, and an
/// upper bound for activations (every node kept). Computed in u128, so it cannot overflow.
pub fn sizes(g: &Graph, batch: usize) -> (u128, u128) {
    let bytes = g.dtype.size_bytes() as u128;
    let numel = |shape: &[Dim]| -> u128 {
        shape
            .iter()
            .map(|d| match d {
                Dim::Known(n) => *n as u128,
                Dim::Sym(_) => batch as u128,
            })
            .fold(1u128, |a, n| a.saturating_mul(n))
    };
    let params = g.params.iter().map(|p| numel(&p.shape)).fold(0u128, |a, n| a.saturating_add(n)).saturating_mul(bytes);
    let values = g.nodes.iter().map(|n| numel(&n.shape)).fold(0u128, |a, n| a.saturating_add(n)).saturating_mul(bytes);
    (params, values)
}

/// Refuse a graph whose parameters, or parameters plus activations, exceed `limit` bytes.
pub fn check(g: &Graph, batch: usize, limit: u64, what: &str) -> Result<(), Diagnostic> {
    let (params, values) = sizes(g, batch);
    if params > limit as u128 {
        return Err(Diagnostic::new(
            "E-memory",
            format!("{what}: the parameters need {}, over the memory limit of {}", human(params), human(limit as u128)),
        )
        .help("make the model smaller, or raise the limit with --memory-limit"));
    }
    if values > limit as u128 {
        return Err(Diagnostic::new(
            "E-memory",
            format!(
                "{what}: parameters and activations at batch {batch} need up to {}, over the memory limit of {}",
                human(values),
                human(limit as u128)
            ),
        )
        .help("lower the batch size (--batch), or raise the limit with --memory-limit"));
    }
    Ok(())
}
