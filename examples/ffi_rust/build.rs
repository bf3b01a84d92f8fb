//! Links the object that `netc build` wrote: $NETC_OBJECT, else `spiral_net.o` next to this
//! file (see README.md). An object is linked like any other, plus libm.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=NETC_OBJECT");
    let object = std::env::var_os("NETC_OBJECT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("spiral_net.o"));
    if !object.exists() {
        eprintln!(
            "error: {} does not exist; first run\n  netc build examples/spiral.net -o examples/ffi_rust/spiral_net.o",
            object.display()
        );
        std::process::exit(1);
    }
    println!("cargo:rerun-if-changed={}", object.display());
    println!("cargo:rustc-link-arg={}", object.display());
    println!("cargo:rustc-link-lib=m");
}
