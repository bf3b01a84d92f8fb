//! `netc run` on bad data: each case is a clear error naming the file and the line or field,
//! exit code 1, and no weights file written.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("netc-train-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// Run `netc run` on a model of 4 features and 3 classes reading `source`, with `--save`.
fn run_with(dir: &Dir, source: &str) -> (i32, String, bool) {
    let net = format!(
        "model m(x: [B, 4]) -> scores: [B, 3] {{ x |> dense(3) }}\n\
         data d {{ source: {source} }}\n\
         train m {{ loss: cross_entropy(scores, labels); steps: 2; batch: 2 }}\n"
    );
    let file = dir.write("model.net", net.as_bytes());
    let save = dir.0.join("w.safetensors");
    let out = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["run", file.to_str().unwrap(), "--engine", "interp", "--save", save.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    (out.status.code().unwrap_or(-1), err, Path::new(&save).exists())
}

fn assert_fails(dir: &Dir, source: &str, needles: &[&str]) {
    let (code, err, saved) = run_with(dir, source);
    assert_eq!(code, 1, "{source}: expected exit 1, got {code}: {err}");
    assert!(!saved, "{source}: a weights file was written despite the error");
    for n in needles {
        assert!(err.contains(n), "{source}: the message lacks `{n}`:\n{err}");
    }
}

#[test]
fn a_good_csv_trains_and_saves() {
    let dir = Dir::new("good");
    dir.write("ok.csv", b"a,b,c,d,label\n1,2,3,4,0\n4,3,2,1,1\n0,0,1,1,2\n");
    let (code, err, saved) = run_with(&dir, "csv(\"ok.csv\")");
    assert_eq!(code, 0, "{err}");
    assert!(saved);
}

#[test]
fn missing_file() {
    let dir = Dir::new("missing");
    assert_fails(&dir, "csv(\"nope.csv\")", &["nope.csv"]);
}

#[test]
fn malformed_csv_line() {
    let dir = Dir::new("malformed");
    dir.write("bad.csv", b"a,b,c,d,label\n1,2,3,4,0\n1,2,3,0\n");
    assert_fails(&dir, "csv(\"bad.csv\")", &["bad.csv:3", "expected 5 fields"]);
    dir.write("nan.csv", b"a,b,c,d,label\n1,2,x3,4,0\n");
    assert_fails(&dir, "csv(\"nan.csv\")", &["nan.csv:2", "`c`"]);
}

#[test]
fn shape_disagrees_with_the_model() {
    let dir = Dir::new("shape");
    dir.write("wide.csv", b"a,b,c,d,e,label\n1,2,3,4,5,0\n");
    assert_fails(&dir, "csv(\"wide.csv\")", &["wide.csv", "5", "4"]);
}

#[test]
fn label_out_of_range() {
    let dir = Dir::new("labels");
    dir.write("labels.csv", b"a,b,c,d,label\n1,2,3,4,0\n1,2,3,4,7\n");
    assert_fails(&dir, "csv(\"labels.csv\")", &["labels.csv", "7", "line 3", "3 classes"]);
}

#[test]
fn truncated_npy_and_idx() {
    let dir = Dir::new("truncated");
    // A float32 [2, 4] array with only 3 of its 8 values.
    let header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }";
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let pad = 64 - (10 + header.len() + 1) % 64;
    let len = (header.len() + pad + 1) as u16;
    npy.extend_from_slice(&len.to_le_bytes());
    npy.extend_from_slice(header);
    npy.extend(std::iter::repeat_n(b' ', pad));
    npy.push(b'\n');
    npy.extend_from_slice(&[0u8; 12]);
    dir.write("x.npy", &npy);
    dir.write("y.npy", b"\x93NUMPY");
    assert_fails(&dir, "npy(\"x.npy\", \"y.npy\")", &["x.npy"]);

    // IDX images: magic 0x0803, 2 images of 2x2, but only 5 of 8 bytes.
    let mut images = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
    images.extend_from_slice(&[1, 2, 3, 4, 5]);
    dir.write("img.idx", &images);
    dir.write("lab.idx", &[0, 0, 8, 1, 0, 0, 0, 2, 0, 1]);
    assert_fails(&dir, "idx(\"img.idx\", \"lab.idx\")", &["img.idx"]);
}

/// Token ids for a model input declared `int`: whole numbers inside the embedding's rows, or
/// an error naming the file, the line and the valid range, before any step runs.
#[test]
fn integer_inputs_take_whole_ids_in_range() {
    let dir = Dir::new("ids");
    let net = "model m(x: [B, 4] int) -> scores: [B, 3] {\n  mean(embedding(x, 5, 2), axis: 1) |> dense(3)\n}\n\
               data d { source: csv(\"ids.csv\") }\n\
               train m { loss: cross_entropy(scores, labels); steps: 2; batch: 2 }\n";
    let file = dir.write("ids.net", net.as_bytes());
    let run = |csv: &[u8], engine: &str| {
        dir.write("ids.csv", csv);
        let out = Command::new(env!("CARGO_BIN_EXE_netc"))
            .args(["run", file.to_str().unwrap(), "--engine", engine, "--quiet"])
            .output()
            .unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for engine in ["interp", "jit"] {
        let (code, err) = run(b"a,b,c,d,label\n0,1,2,3,0\n4,4,0,1,2\n", engine);
        assert_eq!(code, 0, "{engine}: {err}");
        let (code, err) = run(b"a,b,c,d,label\n0,1,2.5,3,0\n4,4,0,1,2\n", engine);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("ids.csv") && err.contains("2.5") && err.contains("line 2") && err.contains("int"),
            "{err}"
        );
        let (code, err) = run(b"a,b,c,d,label\n0,1,2,3,0\n4,5,0,1,2\n", engine);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("value 5") && err.contains("line 3") && err.contains("0..4"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Training through gathers with many repeated ids (their gradient a scatter-add) and batched
/// products big enough to be divided among threads gives the same weights, bit for bit, on
/// 1, 2 and 3 GEMM threads.
#[test]
fn ids_and_batched_products_train_to_the_same_bits_on_any_thread_count() {
    let dir = Dir::new("threads");
    // 32 × 32 ids from a vocabulary of 40: each id about 26 times per batch.
    let net = "model m(tokens: [B, 32] int) -> scores: [B, 3] {\n\
                 let e = embedding(tokens, 40, 64)                       # [B, 32, 64]\n\
                 let h = e |> dense(64) |> tanh                         # 2048 x 64 x 64 per step\n\
                 let a = softmax(h @ transpose(e, perm: [0, 2, 1]) / 8)   # [B, 32, 32]\n\
                 mean(a @ h, axis: 1) |> dense(3)\n\
               }\n\
               data d { source: synthetic(samples: 96, classes: 3, seed: 4) }\n\
               train m { loss: cross_entropy(scores, labels); optimizer: adam(lr: 0.01); steps: 6; batch: 32 }\n";
    let file = dir.write("threads.net", net.as_bytes());
    let weights = |threads: &str| {
        let save = dir.0.join(format!("w{threads}.safetensors"));
        let out = Command::new(env!("CARGO_BIN_EXE_netc"))
            .args(["run", file.to_str().unwrap(), "--quiet", "--save", save.to_str().unwrap()])
            .env("MATMUL_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read(save).unwrap()
    };
    let one = weights("1");
    for threads in ["2", "3"] {
        assert!(weights(threads) == one, "{threads} threads give other weights");
    }
}
