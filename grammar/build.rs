//! Build script: compiles the lalrpop grammar in `grammar/` into the parser module.
fn main() {
    // Only the grammar decides the parser: without this, Cargo reruns the script (and rebuilds
    // netc) whenever any file in the package changes, even one written into the repository root.
    println!("cargo:rerun-if-changed=grammar/netc.lalrpop");
    println!("cargo:rerun-if-changed=grammar/build.rs");
    lalrpop::Configuration::new().set_in_dir("grammar").process().expect("lalrpop grammar failed to compile");
}
