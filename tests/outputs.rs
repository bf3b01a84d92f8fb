//! Every file netc writes goes through one atomic writer (`runtime::files`): it never replaces
//! a device, a symbolic link, a FIFO or one of the run's inputs, two outputs of a command may
//! not be the same file, and a write that fails (a full disk, simulated with the
//! `NETC_FAIL_WRITES_AFTER` hook) leaves the previous file exactly as it was, with no
//! temporary file behind.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{temp_dir, TempDir};

const MODEL: &str = "model m(x: [B, 4]) -> s: [B, 3] { x |> dense(3) }\n\
                     data d { source: synthetic(samples: 8, classes: 3, seed: 0) }\n\
                     train m { loss: cross_entropy(s, labels); steps: 3; batch: 4 }\n";

fn netc_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netc")).args(args).envs(env.iter().copied()).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn netc(args: &[&str]) -> (i32, String) {
    netc_env(args, &[])
}

fn setup(test: &str) -> (TempDir, String) {
    let dir = temp_dir("outputs", test);
    let model = dir.join("m.net");
    std::fs::write(&model, MODEL).unwrap();
    (dir, model.to_str().unwrap().to_string())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn save_and_plot_refuse_devices_links_and_inputs() {
    let (dir, model) = setup("refuse");
    // A device: /dev/null stays the device it is.
    let (code, err) = netc(&["run", &model, "--quiet", "--save", "/dev/null"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("character device"), "{err}");
    assert!(Path::new("/dev/null").metadata().unwrap().file_type().is_file() == false);
    // A symbolic link: neither it nor its target is replaced.
    let target = dir.join("target.txt");
    std::fs::write(&target, "keep").unwrap();
    let link = dir.join("link.safetensors");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (code, err) = netc(&["run", &model, "--quiet", "--save", s(&link)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    // The source itself, as --save or as --plot.
    for flag in ["--save", "--plot"] {
        let (code, err) = netc(&["run", &model, "--quiet", flag, &model]);
        assert_eq!(code, 1, "{flag}: {err}");
        assert!(err.contains("input file"), "{flag}: {err}");
        assert_eq!(std::fs::read_to_string(&model).unwrap(), MODEL);
    }
    // --save and --plot naming the same file.
    let both = dir.join("out");
    let (code, err) = netc(&["run", &model, "--quiet", "--save", s(&both), "--plot", s(&both)]);
    assert_eq!(code, 1, "{err}");
    assert!(!both.exists());
    // A good run writes both, and nothing else.
    let (w, plot) = (dir.join("w.safetensors"), dir.join("loss.svg"));
    let (code, err) = netc(&["run", &model, "--quiet", "--save", s(&w), "--plot", s(&plot)]);
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read_to_string(&plot).unwrap().contains("</svg>"));
    assert_eq!(listing(&dir), ["link.safetensors", "loss.svg", "m.net", "target.txt", "w.safetensors"]);
}

#[test]
fn build_refuses_clashing_outputs_and_inputs() {
    let (dir, model) = setup("build_paths");
    // -o x.h: the header would default to the same x.h.
    let (code, err) = netc(&["build", &model, "-o", s(&dir.join("x.h"))]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("another output"), "{err}");
    // --header equal to -o.
    let o = dir.join("m.o");
    let (code, err) = netc(&["build", &model, "-o", s(&o), "--header", s(&o)]);
    assert_eq!(code, 1, "{err}");
    // -o or --header naming the source.
    for args in [vec!["-o", model.as_str()], vec!["-o", s(&o), "--header", model.as_str()]] {
        let mut all = vec!["build", model.as_str()];
        all.extend(args);
        let (code, err) = netc(&all);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("input file"), "{err}");
        assert_eq!(std::fs::read_to_string(&model).unwrap(), MODEL);
    }
    assert_eq!(listing(&dir), ["m.net"], "nothing was written");
}

#[test]
fn a_full_disk_replaces_nothing_and_leaves_no_temporary() {
    let (dir, model) = setup("full_disk");
    let (o, h) = (dir.join("m.o"), dir.join("m.h"));
    let (code, err) = netc(&["build", &model, "-o", s(&o)]);
    assert_eq!(code, 0, "{err}");
    let (good_o, good_h) = (std::fs::read(&o).unwrap(), std::fs::read(&h).unwrap());
    // Another build over them whose writes fail after 100 bytes: both stay as they were.
    std::fs::write(&model, MODEL.replace("dense(3)", "dense(3) |> relu")).unwrap();
    let full = [("NETC_FAIL_WRITES_AFTER", "100")];
    let (code, err) = netc_env(&["build", &model, "-o", s(&o)], &full);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("No space left"), "{err}");
    assert_eq!(std::fs::read(&o).unwrap(), good_o);
    assert_eq!(std::fs::read(&h).unwrap(), good_h);
    // The disk filling up after the object was staged, while the header is: neither file is
    // replaced (the object is renamed into place only once the header is on disk too).
    let dir2 = temp_dir("outputs", "full_disk_sizes");
    let (code, err) = netc(&["build", &model, "-o", s(&dir2.join("m.o"))]);
    assert_eq!(code, 0, "{err}");
    let object_size = std::fs::metadata(dir2.join("m.o")).unwrap().len();
    let room = [("NETC_FAIL_WRITES_AFTER", &*(object_size + 10).to_string())];
    let (code, err) = netc_env(&["build", &model, "-o", s(&o)], &room);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("cannot write {}", s(&h))), "{err}");
    assert_eq!(std::fs::read(&o).unwrap(), good_o);
    assert_eq!(std::fs::read(&h).unwrap(), good_h);
    // ... and removed when there was none before.
    let fresh = dir.join("fresh.o");
    let (code, err) = netc_env(&["build", &model, "-o", s(&fresh)], &room);
    assert_eq!(code, 1, "{err}");
    assert!(!fresh.exists());
    assert!(!dir.join("fresh.h").exists());
    // --save, --plot and graph -o on a full disk: no file, or the old one.
    let w = dir.join("w.safetensors");
    std::fs::write(&w, "old weights").unwrap();
    let (code, err) = netc_env(&["run", &model, "--quiet", "--save", s(&w)], &full);
    assert_eq!(code, 1, "{err}");
    assert_eq!(std::fs::read_to_string(&w).unwrap(), "old weights");
    let plot = dir.join("loss.svg");
    let (code, err) = netc_env(&["run", &model, "--quiet", "--plot", s(&plot)], &full);
    assert_eq!(code, 1, "{err}");
    assert!(!plot.exists());
    let dot = dir.join("g.dot");
    let (code, err) = netc_env(&["graph", &model, "-o", s(&dot)], &full);
    assert_eq!(code, 1, "{err}");
    assert!(!dot.exists());
    assert_eq!(listing(&dir), ["m.h", "m.net", "m.o", "w.safetensors"], "no temporary is left behind");
}

#[test]
fn temporaries_of_killed_writers_are_cleaned_up() {
    let (dir, model) = setup("stale");
    let w = dir.join("w.safetensors");
    // What a SIGKILL in the middle of a save leaves: a temporary of a process that is gone.
    let stale = dir.join(".w.safetensors.netc-4294967294.tmp");
    std::fs::write(&stale, vec![0u8; 1000]).unwrap();
    let (code, err) = netc(&["run", &model, "--quiet", "--save", s(&w)]);
    assert_eq!(code, 0, "{err}");
    assert!(!stale.exists());
    assert_eq!(listing(&dir), ["m.net", "w.safetensors"]);
}

#[test]
fn predict_writes_atomically_and_never_over_its_inputs() {
    let dir = temp_dir("outputs", "predict");
    let model = dir.join("double.net");
    std::fs::write(&model, "model double(x: [B, 2]) -> y: [B, 2] { x * 2 }\n").unwrap();
    let input = dir.join("x.csv");
    std::fs::write(&input, "a,b\n1,2\n3,4\n").unwrap();
    let run = |out: &Path, env: &[(&str, &str)]| {
        netc_env(&["predict", s(&model), "--input", s(&input), "-o", s(out), "--quiet"], env)
    };
    // Over its own input, the source, or a device: refused, and nothing changes.
    for out in [input.as_path(), Path::new("/dev/null")] {
        let (code, err) = run(out, &[]);
        assert_eq!(code, 1, "{err}");
    }
    assert_eq!(std::fs::read_to_string(&input).unwrap(), "a,b\n1,2\n3,4\n");
    let as_csv = dir.join("double.csv");
    std::fs::copy(&model, &as_csv).unwrap();
    let (code, err) =
        netc(&["predict", s(&as_csv), "--input", s(&input), "-o", s(&as_csv), "--model", "double", "--quiet"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("input file"), "{err}");
    // A full disk leaves the previous output as it was.
    let out = dir.join("y.csv");
    let (code, err) = run(&out, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "y_0,y_1\n2,4\n6,8\n");
    let (code, err) = run(&out, &[("NETC_FAIL_WRITES_AFTER", "3")]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "y_0,y_1\n2,4\n6,8\n");
    let npy = dir.join("y.npy");
    let (code, err) = run(&npy, &[("NETC_FAIL_WRITES_AFTER", "3")]);
    assert_eq!(code, 1, "{err}");
    assert!(!npy.exists());
    assert_eq!(listing(&dir), ["double.csv", "double.net", "x.csv", "y.csv"], "no temporary is left");
}
