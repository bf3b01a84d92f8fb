//! Moved from `src/runtime/files.rs`'s unit tests.

use std::fs::{self};
use std::path::{Path, PathBuf};

use netc::runtime::files::*;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("netc-files-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn devices_fifos_and_directories_are_not_read() {
    let d = scratch("read");
    assert!(matches!(read_input(Path::new("/dev/zero"), 1 << 20), Err(ReadError::NotRegular { .. })));
    assert!(matches!(read_input(&d, 1 << 20), Err(ReadError::NotRegular { what: "a directory" })));
    assert!(matches!(read_input(&d.join("none"), 1 << 20), Err(ReadError::NotFound)));
    let big = d.join("big");
    fs::write(&big, vec![b'x'; 100]).unwrap();
    assert!(matches!(read_input(&big, 99), Err(ReadError::TooLarge { size: 100, limit: 99 })));
    assert_eq!(read_input(&big, 100).unwrap().len(), 100);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn writes_replace_regular_files_only_and_never_inputs() {
    let d = scratch("write");
    let out = d.join("out.bin");
    write_atomic(&out, b"one", &[]).unwrap();
    write_atomic(&out, b"two", &[]).unwrap();
    assert_eq!(fs::read(&out).unwrap(), b"two");
    let input = d.join("model.net");
    fs::write(&input, "model").unwrap();
    assert!(matches!(write_atomic(&input, b"x", &[&input]), Err(WriteError::IsInput { .. })));
    assert_eq!(fs::read(&input).unwrap(), b"model");
    assert!(matches!(write_atomic(&d, b"x", &[]), Err(WriteError::NotRegular { .. })));
    assert!(matches!(write_atomic(Path::new("/dev/null"), b"x", &[]), Err(WriteError::NotRegular { .. })));
    #[cfg(unix)]
    {
        let link = d.join("link");
        std::os::unix::fs::symlink(&input, &link).unwrap();
        assert!(matches!(write_atomic(&link, b"x", &[]), Err(WriteError::NotRegular { .. })));
        assert_eq!(fs::read(&input).unwrap(), b"model");
    }
    let (a, b) = (d.join("x.o"), d.join("./x.o"));
    assert!(matches!(check_output_paths(&[&a, &b], &[]), Err((_, WriteError::SameOutput { .. }))));
    // Leftovers of killed writers (a process id that cannot exist) go at the next write.
    let stale = d.join(".out.bin.netc-4294967295.tmp");
    fs::write(&stale, "half").unwrap();
    write_atomic(&out, b"three", &[]).unwrap();
    assert!(!stale.exists());
    let names: Vec<_> = fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 3, "no temporary is left: {names:?}");
    // A name near the 255-byte limit: its temporary's name is legal too.
    let long = d.join(format!("{}.h", "h".repeat(250)));
    write_atomic(&long, b"long", &[]).unwrap();
    assert_eq!(fs::read(&long).unwrap(), b"long");
    fs::remove_file(&long).unwrap();
    // A group whose second file cannot be staged replaces neither.
    let (first, second) = (d.join("a.o"), d.join("no/such/dir/a.h"));
    fs::write(&first, "old").unwrap();
    let failed = write_atomic_all(&[(&first, b"new"), (&second, b"new")], &[]);
    assert!(matches!(failed, Err((p, WriteError::Io(_))) if p == second));
    assert_eq!(fs::read(&first).unwrap(), b"old");
    fs::remove_file(&first).unwrap();
    let _ = fs::remove_dir_all(&d);
}
