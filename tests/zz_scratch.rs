use netc::runtime::symbols::winograd_f32_on;
use netc::runtime::threads::Pool;
use netc::runtime::winograd::{Geometry, Transform};
#[test]
#[ignore]
fn scratch_time() {
    let pool = Pool::new(1);
    // c, h, w, f, oh, ow, pad, m, r
    for geom in [[384i64, 13, 13, 384, 13, 13, 1, 4, 3], [96, 27, 27, 256, 27, 27, 2, 4, 5]] {
        let g = Geometry::from_array(geom).unwrap();
        for op in std::env::var("OPS").map(|v| v.split(',').map(|o| match o { "f" => Transform::Filter, "fa" => Transform::FilterAdjoint, "i" => Transform::Input, _ => Transform::Output }).collect::<Vec<_>>()).unwrap_or(vec![Transform::Filter, Transform::FilterAdjoint, Transform::Input, Transform::Output]) {
            let (ns, nd) = g.sizes(op, 8);
            let src: Vec<f32> = (0..ns).map(|i| (i % 7) as f32 * 0.1).collect();
            let mut dst = vec![0f32; nd];
            let reps: usize = std::env::var("REPS").map(|v| v.parse().unwrap()).unwrap_or(20);
            let mut best = f64::MAX;
            for _ in 0..reps {
                let t = std::time::Instant::now();
                unsafe { winograd_f32_on(&pool, op.code(), &geom, 8, src.as_ptr(), dst.as_mut_ptr()) };
                best = best.min(t.elapsed().as_secs_f64());
            }
            println!("{geom:?} {op:?}: {:.3} ms  src {:.1} MB dst {:.1} MB", best * 1e3, ns as f64 * 4e-6, nd as f64 * 4e-6);
        }
    }
    std::hint::black_box(());
}
#[test]
#[ignore]
fn scratch_bw() {
    let n = 21_200_000 / 4;
    let mut dst = vec![1f32; n];
    let src = vec![2f32; n];
    let mut best = f64::MAX;
    for i in 0..20 {
        let t = std::time::Instant::now();
        dst.fill(i as f32);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("fill 21 MB: {:.3} ms = {:.1} GB/s", best * 1e3, 21.2e-3 / best);
    let mut best = f64::MAX;
    for _ in 0..20 {
        let t = std::time::Instant::now();
        dst.copy_from_slice(&src);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("copy 21 MB: {:.3} ms", best * 1e3);
    std::hint::black_box(&dst);
}
