//! Build script: compiles the lalrpop grammar in `grammar/` into the parser module.
fn main() {
    lalrpop::Configuration::new().set_in_dir("grammar").process().expect("lalrpop grammar failed to compile");
}
