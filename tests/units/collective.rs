//! Moved from `src/runtime/collective.rs`'s unit tests.

use netc::diag::{Diagnostic, Span};

use netc::runtime::collective::*;

#[test]
fn launchers_are_detected_by_their_variables() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    };
    assert_eq!(Launch::from_vars(env(&[("HOME", "/root")])), None);
    let ompi = Launch::from_vars(env(&[("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_SIZE", "4")]));
    assert_eq!(ompi, Some(Launch { variable: "OMPI_COMM_WORLD_RANK", rank: Some(1), size: Some(4) }));
    let pmix = Launch::from_vars(env(&[("PMIX_RANK", "0")])).unwrap();
    assert_eq!((pmix.rank, pmix.size), (Some(0), None));
    let hydra = Launch::from_vars(env(&[("PMI_RANK", "2"), ("PMI_SIZE", "3")])).unwrap();
    assert_eq!((hydra.rank, hydra.size), (Some(2), Some(3)));
}

/// The ring schedule, run on p simulated ranks, sums every chunk exactly once per rank
/// and leaves every rank with every chunk's total.
#[test]
fn the_ring_schedule_sums_every_chunk_on_every_rank() {
    for p in 1..=7 {
        let len = 23;
        // Rank r's buffer: element i is 10^r (a sum shows which ranks went into it).
        let mut bufs: Vec<Vec<f64>> = (0..p).map(|r| vec![10f64.powi(r as i32); len]).collect();
        let schedules: Vec<_> = (0..p).map(|r| ring_schedule(r, p)).collect();
        for k in 0..p.saturating_sub(1) {
            // Every rank sends before any receives: snapshot the messages of this step.
            let sent: Vec<Vec<f64>> = (0..p).map(|r| bufs[r][chunk(len, p, schedules[r].0[k].0)].to_vec()).collect();
            for r in 0..p {
                let (want, recv) = (schedules[(r + p - 1) % p].0[k].0, schedules[r].0[k].1);
                assert_eq!(want, recv, "rank {r} step {k} receives the chunk its left neighbour sends");
                for (a, b) in bufs[r][chunk(len, p, recv)].iter_mut().zip(&sent[(r + p - 1) % p]) {
                    *a += b;
                }
            }
        }
        for k in 0..p.saturating_sub(1) {
            let sent: Vec<Vec<f64>> = (0..p).map(|r| bufs[r][chunk(len, p, schedules[r].1[k].0)].to_vec()).collect();
            for r in 0..p {
                let recv = schedules[r].1[k].1;
                assert_eq!(schedules[(r + p - 1) % p].1[k].0, recv);
                bufs[r][chunk(len, p, recv)].copy_from_slice(&sent[(r + p - 1) % p]);
            }
        }
        let total: f64 = (0..p).map(|r| 10f64.powi(r as i32)).sum();
        for (r, b) in bufs.iter().enumerate() {
            assert!(b.iter().all(|&x| x == total), "p = {p}, rank {r}: {b:?}");
        }
    }
}

#[test]
fn diagnostics_cross_ranks_unchanged() {
    let d = Diagnostic::new("E-data", "x.npy: truncated").label(Span::new(3, 9), "here").note("a note").help("a help");
    assert_eq!(decode(&encode(&d)), d);
    assert_eq!(agree(&Local, Err::<(), _>(d.clone())), Err(d));
    assert_eq!(agree(&Local, Ok::<_, Diagnostic>(3)), Ok(3));
}

#[test]
fn fingerprints_see_every_bit_and_every_boundary() {
    let f = |v: &[f32]| Fingerprint::default().floats(v).value();
    assert_eq!(f(&[1.0, 2.0]), f(&[1.0, 2.0]));
    assert_ne!(f(&[1.0, 2.0]), f(&[1.0, f32::from_bits(2.0f32.to_bits() ^ 1)]));
    let s = |a: &str, b: &str| Fingerprint::default().str(a).str(b).value();
    assert_ne!(s("ab", "c"), s("a", "bc"));
}
