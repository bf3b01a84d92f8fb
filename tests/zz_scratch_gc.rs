// temporary investigation; deleted after use
#[test]
fn scratch() {
    let src = std::fs::read_to_string("examples/spiral.net").unwrap();
    let p = netc::parser::parse(&src).unwrap();
    let c = netc::check::check(&p, &src).unwrap();
    let ts = netc::explain::targets(&c, 4).unwrap();
    let t = &ts[0];
    let wrt: Vec<_> = t.wrt.iter().map(|w| w.1).collect();
    let r = netc::gradcheck::check(&t.graph, t.of, &wrt, &t.inputs, &t.params, 1e-6).unwrap();
    for x in &r {
        println!(
            "{} {:e} worst {} a {} n {}",
            x.name, x.max_rel_error, x.worst, x.analytic.data[x.worst], x.numeric.data[x.worst]
        );
    }
    let r = netc::gradcheck::check(&t.graph, t.of, &wrt, &t.inputs, &t.params, 1e-4).unwrap();
    for x in &r {
        println!(
            "eps 1e-4: {} {:e} worst {} a {} n {}",
            x.name, x.max_rel_error, x.worst, x.analytic.data[x.worst], x.numeric.data[x.worst]
        );
    }
    println!("{}", t.graph.to_text());
    // pre-activation values
    let v = netc::interp::run(&t.graph, &t.inputs, &t.params).unwrap();
    for (i, n) in t.graph.nodes.iter().enumerate() {
        if matches!(n.op, netc::graph::Op::Max) {
            println!("%{i} inputs {:?}", n.inputs);
            for &j in &n.inputs {
                let d = &v[j.index()].data;
                println!("  min |.| {:e}", d.iter().fold(f64::INFINITY, |m, x| m.min(x.abs())));
            }
        }
    }
    println!("dtype {:?}", t.graph.dtype);
}
