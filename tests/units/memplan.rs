//! Moved from `src/codegen/memplan.rs`'s unit tests.

mod tests {
    use netc::codegen::kernel::{Access, Expr, Un};
    use netc::codegen::kernel::{Base, Kernel, Mono};
    use netc::codegen::memplan::*;
    use std::rc::Rc;

    fn map(from: Base, to: Base, n: i64) -> Kernel {
        let shape = vec![Mono::known(n)];
        let x = Rc::new(Expr::Load(Access::contiguous(from, &shape)));
        Kernel::Map {
            shape: shape.clone(),
            expr: Rc::new(Expr::Unary(Un::Exp, x)),
            out: Access::contiguous(to, &shape),
        }
    }

    #[test]
    fn a_chain_reuses_memory() {
        // in -> t0 -> t1 -> t2 -> out: each temporary dies as the next is born.
        let temps = vec![Mono::known(100), Mono::known(100), Mono::known(100)];
        let ks = vec![
            map(Base::Input(0), Base::Temp(0), 100),
            map(Base::Temp(0), Base::Temp(1), 100),
            map(Base::Temp(1), Base::Temp(2), 100),
            map(Base::Temp(2), Base::Output(0), 100),
        ];
        let p = plan(&ks, &temps);
        assert_eq!(p.in_place, 2);
        assert_eq!(p.size.eval(&[]), 112);
        assert_eq!(p.unshared.eval(&[]), 300);
    }

    #[test]
    fn overlapping_lives_do_not_share() {
        let shape = vec![Mono::known(10)];
        let x = |t| Rc::new(Expr::Load(Access::contiguous(Base::Temp(t), &shape)));
        let both = Rc::new(Expr::Binary(netc::codegen::kernel::Bin::Add, x(0), x(1)));
        let ks = vec![
            map(Base::Input(0), Base::Temp(0), 10),
            map(Base::Input(0), Base::Temp(1), 10),
            Kernel::Map { shape: shape.clone(), expr: both, out: Access::contiguous(Base::Output(0), &shape) },
        ];
        let p = plan(&ks, &[Mono::known(10), Mono::known(10)]);
        assert_ne!(p.offsets[0], p.offsets[1]);
        assert_eq!(p.size.eval(&[]), 32);
    }
}

mod scan_tests {

    use netc::codegen::memplan::*;

    /// Random live ranges and sizes: temporaries alive at the same time never share memory,
    /// and the size is the highest end of any block.
    #[test]
    fn the_scan_never_overlaps_live_temporaries() {
        let mut state = 12345u64;
        let mut next = |m: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) % m
        };
        for _ in 0..50 {
            let n = 300;
            let first: Vec<usize> = (0..n).map(|_| next(200) as usize).collect();
            let last: Vec<usize> = first.iter().map(|&f| f + next(30) as usize).collect();
            let sizes: Vec<i64> = (0..n).map(|_| round_up(1 + next(100) as i64)).collect();
            let mut local = vec![0i64; n];
            let total = scan_in_order((0..n).collect(), &first, &last, &|t| sizes[t], &mut local);
            for a in 0..n {
                assert!(local[a] + sizes[a] <= total);
                for b in 0..a {
                    let live = first[a] <= last[b] && first[b] <= last[a];
                    let shared = local[a] < local[b] + sizes[b] && local[b] < local[a] + sizes[a];
                    assert!(!(live && shared), "{a} and {b} overlap");
                }
            }
        }
    }
}
