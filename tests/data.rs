//! Data loading: the generators against their formulas, every file format round-tripped from
//! small files written here (and NPY files written by numpy, in tests/data/), the digits set
//! and its fixed split, batching, and one test per kind of bad input, each checking that the
//! message names the file and the line, item or byte.

use std::path::{Path, PathBuf};

use netc::diag::Diagnostic;
use netc::runtime::data::{self, Dataset, Labels, LoadOptions, ModelShape};
use netc::runtime::rng::Rng;

use crate::common;
use common::TempDir;

fn temp_dir(test: &str) -> TempDir {
    common::temp_dir("data", test)
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The message with its help and notes, for matching.
fn text(d: &Diagnostic) -> String {
    let mut s = d.message.clone();
    for n in &d.notes {
        s.push_str("\nnote: ");
        s.push_str(n);
    }
    if let Some(h) = &d.help {
        s.push_str("\nhelp: ");
        s.push_str(h);
    }
    s
}

/// Assert `result` failed with a message containing every one of `parts`.
#[track_caller]
fn assert_error<T: std::fmt::Debug>(result: Result<T, Diagnostic>, parts: &[&str]) {
    let err = result.expect_err("expected an error");
    assert_eq!(err.code, data::CODE);
    let msg = text(&err);
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} does not contain {p:?}");
    }
}

fn classes(d: &Dataset) -> Vec<u32> {
    match d.labels() {
        Some(Labels::Classes(c)) => c,
        other => panic!("expected class labels, got {other:?}"),
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

// ---- generators ----

#[test]
fn spiral_has_the_declared_shape_and_labels() {
    let d = data::spiral(100, 3, 0).unwrap();
    assert_eq!(d.len(), 300);
    assert_eq!(d.sample_shape(), &[2]);
    assert_eq!(d.features().len(), 600);
    assert_eq!(d.num_classes(), Some(3));
    assert_eq!(d.class_counts(), Some(vec![100, 100, 100]));
    // Class order: the first 100 points are class 0, and so on.
    assert!(classes(&d).iter().enumerate().all(|(i, &c)| c as usize == i / 100));
}

#[test]
fn spiral_is_deterministic_per_seed() {
    assert_eq!(data::spiral(50, 4, 7).unwrap(), data::spiral(50, 4, 7).unwrap());
    assert_ne!(data::spiral(50, 4, 7).unwrap().features(), data::spiral(50, 4, 8).unwrap().features());
}

#[test]
fn spiral_points_follow_the_formula_within_the_noise() {
    // r = linspace(0, 1, N) exactly; t = linspace(4j, 4(j+1), N) + 0.2 * N(0, 1), so the angle
    // atan2(x, y) differs from the noiseless t by a gaussian of standard deviation 0.2.
    let (n, k) = (200, 3);
    let d = data::spiral(n, k, 1).unwrap();
    let mut deviations = Vec::new();
    for j in 0..k {
        for i in 0..n {
            let p = d.sample(j * n + i);
            let (x, y) = (p[0] as f64, p[1] as f64);
            let r = i as f64 / (n - 1) as f64;
            assert!(((x * x + y * y).sqrt() - r).abs() < 1e-6, "radius of point {i} of class {j}");
            if i > 0 {
                let t = 4.0 * j as f64 + 4.0 * r;
                let diff =
                    (x.atan2(y) - t + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU) - std::f64::consts::PI;
                deviations.push(diff);
            }
        }
    }
    let m = deviations.len() as f64;
    let mean = deviations.iter().sum::<f64>() / m;
    let std = (deviations.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / m).sqrt();
    assert!(mean.abs() < 0.03, "noise mean {mean}");
    assert!((std - 0.2).abs() < 0.02, "noise std {std}");
}

#[test]
fn spiral_with_one_point_per_class_sits_at_the_origin() {
    let d = data::spiral(1, 2, 0).unwrap();
    assert_eq!(d.features(), &[0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn synthetic_data_is_seeded_normal_with_labels_in_range() {
    let d = data::synthetic(500, &[1, 4, 4], 10, None, 3).unwrap();
    assert_eq!((d.len(), d.sample_shape(), d.num_classes()), (500, &[1usize, 4, 4][..], Some(10)));
    assert!(classes(&d).iter().all(|&c| c < 10));
    assert_eq!(d, data::synthetic(500, &[1, 4, 4], 10, None, 3).unwrap());
    let mean = d.features().iter().map(|&v| v as f64).sum::<f64>() / d.features().len() as f64;
    assert!(mean.abs() < 0.05, "mean {mean}");
    // Ids for an int input: every whole number below the bound, and nothing else.
    let ids = data::synthetic(200, &[6], 3, Some(7), 3).unwrap();
    assert!(ids.features().iter().all(|&v| v.fract() == 0.0 && (0.0..7.0).contains(&v)));
    assert!((0..7).all(|k| ids.features().contains(&(k as f32))));
    assert_error(data::synthetic(5, &[2], 0, None, 0), &["synthetic data", "at least one class"]);
    assert_error(data::synthetic(usize::MAX, &[2, 2], 3, None, 0), &["synthetic data", "too many"]);
    assert_error(data::spiral(usize::MAX, 3, 0), &["spiral data", "too many"]);
}

// ---- CSV ----

#[test]
fn csv_round_trip_with_scale_columns_and_shape() {
    let dir = temp_dir("csv-round-trip");
    let path = write(&dir, "t.csv", "a, b ,\"label\"\r\n1,2,0\r\n\r\n3,4,1\n");
    let d = data::load_csv(&path, &LoadOptions { scale: 0.5, ..Default::default() }).unwrap();
    assert_eq!(d.features(), &[0.5, 1.0, 1.5, 2.0]);
    assert_eq!(classes(&d), &[0, 1]);
    assert_eq!(d.sample_shape(), &[2]);
    assert_eq!(d.source(), path.display().to_string());

    let opts = LoadOptions {
        feature_columns: Some(vec!["b".into(), "a".into()]),
        sample_shape: Some(vec![1, 2]),
        classes: Some(2),
        ..Default::default()
    };
    let d = data::load_csv(&path, &opts).unwrap();
    assert_eq!(d.features(), &[2.0, 1.0, 4.0, 3.0]);
    assert_eq!((d.sample_shape(), d.num_classes()), (&[1usize, 2][..], Some(2)));

    let path = write(&dir, "r.csv", "x,y\n1,0.25\n2,-1.5\n");
    let opts = LoadOptions { label_column: "y".into(), targets: true, ..Default::default() };
    let d = data::load_csv(&path, &opts).unwrap();
    assert_eq!(d.labels().unwrap(), Labels::Targets { shape: vec![], values: vec![0.25, -1.5] });
}

fn digits() -> Dataset {
    let opts =
        LoadOptions { scale: 1.0 / 16.0, sample_shape: Some(vec![1, 8, 8]), classes: Some(10), ..Default::default() };
    data::load_csv(Path::new("examples/data/digits.csv"), &opts).unwrap()
}

#[test]
fn digits_loads_with_the_documented_counts_and_split() {
    let d = digits();
    assert_eq!((d.len(), d.sample_size(), d.sample_shape()), (1797, 64, &[1usize, 8, 8][..]));
    assert_eq!(d.class_counts().unwrap(), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    assert!(d.features().iter().all(|&v| (0.0..=1.0).contains(&v)));
    // Row 0 of the CSV starts 0,0,5,13 and is a 0.
    assert_eq!(&d.sample(0)[..4], &[0.0, 0.0, 5.0 / 16.0, 13.0 / 16.0]);
    assert_eq!(classes(&d)[0], 0);

    let (train, test) = d.split_at(1500).unwrap();
    assert_eq!((train.len(), test.len()), (1500, 297));
    assert_eq!(train.class_counts().unwrap(), [151, 151, 150, 153, 148, 152, 151, 149, 146, 149]);
    assert_eq!(test.class_counts().unwrap(), [27, 31, 27, 30, 33, 30, 30, 30, 28, 31]);
}

#[test]
fn csv_missing_file() {
    let dir = temp_dir("csv-missing");
    assert_error(data::load_csv(&dir.join("nope.csv"), &LoadOptions::default()), &["nope.csv", "cannot read"]);
}

#[test]
fn csv_empty_file() {
    let dir = temp_dir("csv-empty");
    let path = write(&dir, "empty.csv", "\n  \n");
    assert_error(data::load_csv(&path, &LoadOptions::default()), &["empty.csv", "empty", "header row"]);
}

#[test]
fn csv_missing_header() {
    let dir = temp_dir("csv-no-header");
    let path = write(&dir, "nohead.csv", "1,2,0\n3,4,1\n");
    assert_error(data::load_csv(&path, &LoadOptions::default()), &["nohead.csv:1:", "missing header"]);
}

#[test]
fn csv_unknown_label_column_suggests_the_nearest() {
    let dir = temp_dir("csv-label-column");
    let path = write(&dir, "cols.csv", "a,b,label\n1,2,0\n");
    let opts = LoadOptions { label_column: "labels".into(), ..Default::default() };
    assert_error(data::load_csv(&path, &opts), &["cols.csv:1:", "no column named `labels`", "did you mean `label`?"]);
    let opts = LoadOptions { label_column: "lable".into(), ..Default::default() };
    assert_error(data::load_csv(&path, &opts), &["no column named `lable`", "did you mean `label`?"]);
    let opts = LoadOptions { label_column: "target".into(), ..Default::default() };
    let err = data::load_csv(&path, &opts).unwrap_err();
    assert_eq!(err.help, None, "no suggestion for a name nothing like a column");
    let opts = LoadOptions { feature_columns: Some(vec!["a".into(), "c".into()]), ..Default::default() };
    assert_error(data::load_csv(&path, &opts), &["cols.csv:1:", "`c`", "the columns are: a, b, label"]);
}

#[test]
fn csv_row_with_the_wrong_number_of_fields() {
    let dir = temp_dir("csv-fields");
    let path = write(&dir, "short.csv", "a,b,label\n1,2,0\n3,1\n");
    assert_error(data::load_csv(&path, &LoadOptions::default()), &["short.csv:3:", "expected 3 fields", "found 2"]);
}

#[test]
fn csv_non_numeric_field() {
    let dir = temp_dir("csv-number");
    let path = write(&dir, "nan.csv", "a,b,label\n1,2,0\n3,four,1\n");
    assert_error(
        data::load_csv(&path, &LoadOptions::default()),
        &["nan.csv:3:", "column `b`", "`four` is not a number"],
    );
    let path = write(&dir, "blank.csv", "a,b,label\n1,,0\n");
    assert_error(data::load_csv(&path, &LoadOptions::default()), &["blank.csv:2:", "column `b`", "empty"]);
    let path = write(&dir, "inf.csv", "a,b,label\n1,inf,0\n");
    assert_error(data::load_csv(&path, &LoadOptions::default()), &["inf.csv:2:", "not a finite number"]);
}

#[test]
fn csv_non_integer_label() {
    let dir = temp_dir("csv-label-int");
    let path = write(&dir, "frac.csv", "a,label\n1,0\n2,1.5\n");
    assert_error(
        data::load_csv(&path, &LoadOptions::default()),
        &["frac.csv:3:", "column `label`", "1.5", "not a class"],
    );
    let path = write(&dir, "neg.csv", "a,label\n1,-1\n");
    assert_error(data::load_csv(&path, &LoadOptions::default()), &["neg.csv:2:", "-1"]);
    let path = write(&dir, "word.csv", "a,label\n1,cat\n");
    assert_error(data::load_csv(&path, &LoadOptions::default()), &["word.csv:2:", "`cat` is not a number"]);
}

#[test]
fn csv_label_out_of_range_for_the_declared_classes() {
    let dir = temp_dir("csv-label-range");
    let path = write(&dir, "range.csv", "a,label\n1,0\n2,1\n\n3,12\n");
    let opts = LoadOptions { classes: Some(10), ..Default::default() };
    assert_error(data::load_csv(&path, &opts), &["range.csv: label 12 at line 5 is out of range for 10 classes"]);
}

#[test]
fn csv_binary_garbage_and_no_rows() {
    let dir = temp_dir("csv-garbage");
    let path = write(&dir, "bin.csv", [0x89, b'P', b'N', b'G', 0xff, 0x00, 0x12]);
    assert_error(data::load_csv(&path, &LoadOptions::default()), &["bin.csv", "not a text file", "byte 0"]);
    let path = write(&dir, "head.csv", "a,label\n");
    assert_error(data::load_csv(&path, &LoadOptions::default()), &["head.csv", "no data rows"]);
    let path = write(&dir, "dup.csv", "a,a,label\n1,2,3\n");
    assert_error(data::load_csv(&path, &LoadOptions::default()), &["dup.csv:1:", "`a` appears twice"]);
}

#[test]
fn csv_declared_shape_must_hold_a_row() {
    let dir = temp_dir("csv-shape");
    let path = write(&dir, "s.csv", "a,b,c,label\n1,2,3,0\n");
    let opts = LoadOptions { sample_shape: Some(vec![2, 2]), ..Default::default() };
    assert_error(data::load_csv(&path, &opts), &["s.csv", "[3] (3 values)", "[2, 2] (4 values)"]);
}

// ---- NPY ----

#[test]
fn npy_files_written_by_numpy_load() {
    let expected: Vec<f32> = (0..12).map(|i| i as f32 / 2.0).collect();
    let d = data::load_npy(&fixture("x_f32.npy"), &fixture("y_i64.npy"), &LoadOptions::default()).unwrap();
    assert_eq!((d.len(), d.sample_shape(), d.features()), (4, &[3usize][..], &expected[..]));
    assert_eq!(classes(&d), &[0, 1, 2, 1]);
    assert_eq!(d.label_source(), fixture("y_i64.npy").display().to_string());

    // Version 2.0 header, float64 features, uint8 labels.
    let d = data::load_npy(&fixture("x_f64_v2.npy"), &fixture("y_u8.npy"), &LoadOptions::default()).unwrap();
    assert_eq!((d.features(), classes(&d).as_slice()), (&expected[..], &[2u32, 0, 1, 1][..]));

    // Big-endian floats, float targets.
    let opts = LoadOptions { targets: true, scale: 2.0, ..Default::default() };
    let d = data::load_npy(&fixture("x_be_f4.npy"), &fixture("y_f32_targets.npy"), &opts).unwrap();
    assert_eq!(d.features(), &(0..12).map(|i| i as f32).collect::<Vec<_>>()[..]);
    assert_eq!(d.labels().unwrap(), Labels::Targets { shape: vec![1], values: vec![0.5, 1.5, 2.5, 3.5] });
}

/// An NPY file: version 1.0 header padded to a multiple of 64 bytes, as numpy writes it.
fn npy(descr: &str, fortran: bool, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let order = if fortran { "True" } else { "False" };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn npy_round_trip_from_written_files() {
    let dir = temp_dir("npy-round-trip");
    let x = write(&dir, "x.npy", npy("<f4", false, &[2, 2, 2], &f32_bytes(&[1., 2., 3., 4., 5., 6., 7., 8.])));
    let y = write(&dir, "y.npy", npy("<i4", false, &[2], &[1, 0, 0, 0, 0, 0, 0, 0]));
    let opts = LoadOptions { sample_shape: Some(vec![1, 4]), classes: Some(2), ..Default::default() };
    let d = data::load_npy(&x, &y, &opts).unwrap();
    assert_eq!((d.sample_shape(), d.sample(1)), (&[1usize, 4][..], &[5.0f32, 6., 7., 8.][..]));
    assert_eq!(classes(&d), &[1, 0]);
}

#[test]
fn npy_bad_magic() {
    let dir = temp_dir("npy-magic");
    let y = write(&dir, "y.npy", npy("<i8", false, &[1], &[0; 8]));
    let x = write(&dir, "x.npy", b"NUMPY but not really");
    assert_error(data::load_npy(&x, &y, &LoadOptions::default()), &["x.npy: byte 0:", "not an NPY file"]);
    let x = write(&dir, "z.npy", b"PK\x03\x04rest of a zip");
    assert_error(data::load_npy(&x, &y, &LoadOptions::default()), &["z.npy", ".npz archive"]);
    let x = write(&dir, "empty.npy", b"");
    assert_error(data::load_npy(&x, &y, &LoadOptions::default()), &["empty.npy", "not an NPY file"]);
}

#[test]
fn npy_truncated_data_and_header() {
    let dir = temp_dir("npy-truncated");
    let y = write(&dir, "y.npy", npy("<i8", false, &[3], &[0; 24]));
    let x = write(&dir, "x.npy", npy("<f4", false, &[3, 2], &[0; 20]));
    assert_error(
        data::load_npy(&x, &y, &LoadOptions::default()),
        &["x.npy: truncated data", "needs 24 bytes after the 128-byte header, found 20"],
    );
    let mut bytes = npy("<f4", false, &[3, 2], &[0; 24]);
    bytes.truncate(30);
    let x = write(&dir, "h.npy", bytes);
    assert_error(data::load_npy(&x, &y, &LoadOptions::default()), &["h.npy: truncated", "118 bytes at byte 10"]);
    let x = write(&dir, "v.npy", b"\x93NUMPY\x01");
    assert_error(data::load_npy(&x, &y, &LoadOptions::default()), &["v.npy: truncated"]);
}

#[test]
fn npy_huge_declared_shape_is_an_error_not_an_allocation() {
    let dir = temp_dir("npy-huge");
    let y = write(&dir, "y.npy", npy("<i8", false, &[1], &[0; 8]));
    let x = write(&dir, "x.npy", npy("<f8", false, &[1 << 40, 1 << 20], &[0; 8]));
    assert_error(data::load_npy(&x, &y, &LoadOptions::default()), &["x.npy", "truncated data", "found 8"]);
    let x = write(&dir, "o.npy", npy("<f8", false, &[usize::MAX, 3], &[]));
    assert_error(data::load_npy(&x, &y, &LoadOptions::default()), &["o.npy", "impossibly large"]);
}

#[test]
fn npy_unsupported_dtype_and_bad_header() {
    let dir = temp_dir("npy-dtype");
    let y = fixture("y_i64.npy");
    assert_error(
        data::load_npy(&fixture("x_f16.npy"), &y, &LoadOptions::default()),
        &["x_f16.npy", "unsupported dtype '<f2'"],
    );
    let x = write(&dir, "u.npy", npy("<U3", false, &[4], &[0; 48]));
    assert_error(data::load_npy(&x, &y, &LoadOptions::default()), &["u.npy: byte 10:", "'<U3'"]);
    let mut bytes = npy("<f4", false, &[4, 3], &[0; 48]);
    bytes[20] = b'#'; // inside the dict: no longer a string key
    let x = write(&dir, "d.npy", bytes);
    assert_error(data::load_npy(&x, &y, &LoadOptions::default()), &["d.npy: byte ", "NPY header"]);
}

#[test]
fn npy_fortran_order_is_a_clear_error() {
    assert_error(
        data::load_npy(&fixture("x_fortran.npy"), &fixture("y_i64.npy"), &LoadOptions::default()),
        &["x_fortran.npy", "Fortran", "np.ascontiguousarray"],
    );
}

#[test]
fn npy_mismatch_with_the_declared_shape_and_label_count() {
    let (x, y) = (fixture("x_f32.npy"), fixture("y_i64.npy"));
    let opts = LoadOptions { sample_shape: Some(vec![2, 2]), ..Default::default() };
    assert_error(data::load_npy(&x, &y, &opts), &["x_f32.npy", "[3] (3 values)", "declared shape [2, 2] (4 values)"]);
    let dir = temp_dir("npy-count");
    let y5 = write(&dir, "y5.npy", npy("<i8", false, &[5], &[0; 40]));
    assert_error(data::load_npy(&x, &y5, &LoadOptions::default()), &["y5.npy: 5 labels", "x_f32.npy has 4 samples"]);
    let opts = LoadOptions { classes: Some(2), ..Default::default() };
    assert_error(data::load_npy(&x, &y, &opts), &["y_i64.npy: label 2 at item 2 is out of range for 2 classes"]);
    let yf = write(&dir, "yf.npy", npy("<f4", false, &[4], &f32_bytes(&[0.0, 1.0, 0.5, 1.0])));
    assert_error(data::load_npy(&x, &yf, &LoadOptions::default()), &["yf.npy: item 2:", "0.5 is not a class"]);
}

// ---- IDX ----

fn idx(ty: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, ty, dims.len() as u8];
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend(data);
    out
}

#[test]
fn idx_round_trip() {
    let dir = temp_dir("idx-round-trip");
    let pixels: Vec<u8> = (0..12).map(|i| i * 20).collect();
    let images = write(&dir, "images.idx", idx(8, &[3, 2, 2], &pixels));
    let labels = write(&dir, "labels.idx", idx(8, &[3], &[7, 0, 9]));
    let opts = LoadOptions { scale: 1.0 / 255.0, classes: Some(10), ..Default::default() };
    let d = data::load_idx(&images, &labels, &opts).unwrap();
    assert_eq!((d.len(), d.sample_shape()), (3, &[2usize, 2][..]));
    assert_eq!(d.sample(2), [160.0, 180.0, 200.0, 220.0].map(|p: f32| p * (1.0 / 255.0)));
    assert_eq!(classes(&d), &[7, 0, 9]);
}

#[test]
fn a_scale_that_is_not_a_number_is_an_error() {
    let dir = temp_dir("idx-scale");
    let images = write(&dir, "images.idx", idx(8, &[1, 2, 2], &[0, 1, 2, 3]));
    let labels = write(&dir, "labels.idx", idx(8, &[1], &[0]));
    let opts = LoadOptions { scale: f32::NAN, ..Default::default() };
    assert_error(data::load_idx(&images, &labels, &opts), &["images.idx", "scale factor"]);
}

#[test]
fn idx_bad_magic() {
    let dir = temp_dir("idx-magic");
    let images = write(&dir, "images.idx", idx(8, &[1, 1, 1], &[0]));
    let labels = write(&dir, "labels.idx", idx(8, &[1], &[0]));
    // Swapped files: each magic names the other kind.
    assert_error(
        data::load_idx(&labels, &images, &LoadOptions::default()),
        &["labels.idx: byte 0:", "0x00000801", "images file"],
    );
    assert_error(data::load_idx(&images, &images, &LoadOptions::default()), &["images.idx: byte 0:", "labels file"]);
    let junk = write(&dir, "junk.idx", b"\x12\x34\x56\x78\x00");
    assert_error(
        data::load_idx(&junk, &labels, &LoadOptions::default()),
        &["junk.idx: byte 0:", "bad magic number 0x12345678"],
    );
    let floats = write(&dir, "floats.idx", idx(0x0d, &[1, 1], &[0; 4]));
    assert_error(data::load_idx(&floats, &labels, &LoadOptions::default()), &["floats.idx: byte 2:", "0x0d"]);
    let gz = write(&dir, "images.gz", [0x1f, 0x8b, 8, 0, 0, 0]);
    assert_error(data::load_idx(&gz, &labels, &LoadOptions::default()), &["images.gz", "gzip", "gunzip"]);
    let tiny = write(&dir, "tiny.idx", [0, 0]);
    assert_error(data::load_idx(&tiny, &labels, &LoadOptions::default()), &["tiny.idx: truncated: 2 bytes"]);
}

#[test]
fn idx_truncated_and_huge() {
    let dir = temp_dir("idx-truncated");
    let labels = write(&dir, "labels.idx", idx(8, &[2], &[0, 1]));
    let images = write(&dir, "images.idx", idx(8, &[2, 28, 28], &[0; 1000]));
    assert_error(
        data::load_idx(&images, &labels, &LoadOptions::default()),
        &["images.idx: truncated data", "[2, 28, 28] need 1568 bytes after the 16-byte header, found 1000"],
    );
    let header = write(&dir, "header.idx", &idx(8, &[2, 28, 28], &[])[..10]);
    assert_error(data::load_idx(&header, &labels, &LoadOptions::default()), &["header.idx: truncated", "16 bytes"]);
    let huge = write(&dir, "huge.idx", idx(8, &[u32::MAX, u32::MAX], &[1, 2, 3]));
    assert_error(data::load_idx(&huge, &labels, &LoadOptions::default()), &["huge.idx: truncated data", "found 3"]);
    let huge = write(&dir, "huge3.idx", idx(8, &[u32::MAX, u32::MAX, u32::MAX], &[1, 2, 3]));
    assert_error(data::load_idx(&huge, &labels, &LoadOptions::default()), &["huge3.idx", "impossibly large"]);
}

#[test]
fn idx_count_mismatch_and_label_range() {
    let dir = temp_dir("idx-count");
    let images = write(&dir, "images.idx", idx(8, &[6, 1, 1], &[0; 6]));
    let labels = write(&dir, "labels.idx", idx(8, &[5], &[0; 5]));
    assert_error(
        data::load_idx(&images, &labels, &LoadOptions::default()),
        &["labels.idx: 5 labels, but", "images.idx has 6 images"],
    );
    let labels = write(&dir, "labels.idx", idx(8, &[6], &[1, 2, 3, 4, 5, 12]));
    let opts = LoadOptions { classes: Some(10), ..Default::default() };
    assert_error(
        data::load_idx(&images, &labels, &opts),
        &["labels.idx: label 12 at item 5 is out of range for 10 classes"],
    );
}

// ---- split, shuffle, batches ----

/// Ten samples whose single feature equals their index and label `index % 3`.
fn counting() -> Dataset {
    let features: Vec<f32> = (0..10).map(|i| i as f32).collect();
    Dataset::new("counting", vec![1], features, Labels::Classes((0..10).map(|i| i % 3).collect()), Some(3)).unwrap()
}

#[test]
fn split_by_count_and_fraction() {
    let (a, b) = counting().split_fraction(0.8).unwrap();
    assert_eq!((a.features(), b.features()), (&[0., 1., 2., 3., 4., 5., 6., 7.][..], &[8., 9.][..]));
    assert_eq!(classes(&b), &[2, 0]);
    let (a, b) = counting().split_at(10).unwrap();
    assert_eq!((a.len(), b.len()), (10, 0));
    assert_error(counting().split_at(11), &["counting", "11", "10 samples"]);
    assert_error(counting().split_fraction(1.5), &["counting", "between 0 and 1"]);
    assert_error(counting().split_fraction(f64::NAN), &["between 0 and 1"]);
}

#[test]
fn the_test_half_of_a_split_reports_original_lines() {
    let dir = temp_dir("split-lines");
    let path = write(&dir, "s.csv", "a,label\n1,0\n2,1\n3,2\n4,7\n");
    let (_, test) = data::load_csv(&path, &LoadOptions::default()).unwrap().split_at(2).unwrap();
    let model = ModelShape { input: "x", sample_shape: &[1], label: None, classes: Some(3) };
    assert_error(test.validate(&model), &["s.csv: label 7 at line 5 is out of range for 3 classes"]);
}

#[test]
fn batches_cover_every_sample_and_keep_the_last_partial_batch() {
    let d = counting();
    let mut batches = d.batches(4, false).unwrap();
    assert_eq!(batches.per_epoch(), 3);
    let (mut x, mut y) = (vec![0f32; batches.x_len()], vec![0f32; batches.y_len()]);
    let mut sizes = vec![];
    while let Some(n) = batches.next_into(&mut x, &mut y) {
        sizes.push(n);
        for i in 0..n {
            assert_eq!(y[i], (x[i] as u32 % 3) as f32, "label travels with its sample");
        }
    }
    assert_eq!(sizes, [4, 4, 2]);
    assert_eq!(&x[..2], &[8.0, 9.0]);

    let mut batches = d.batches(4, true).unwrap();
    assert_eq!(batches.per_epoch(), 2);
    let mut sizes = vec![];
    while let Some(n) = batches.next_into(&mut x, &mut y) {
        sizes.push(n);
    }
    assert_eq!(sizes, [4, 4]);
    assert_error(d.batches(0, false), &["counting", "batch size"]);
}

#[test]
fn shuffling_is_seeded_and_changes_every_epoch() {
    let d = counting();
    let epoch = |batches: &mut data::Batches, rng: &mut Rng| {
        batches.shuffle(rng);
        let mut order = vec![];
        while let Some(ix) = batches.next_indices() {
            order.extend_from_slice(ix);
        }
        order
    };
    let (mut a, mut b) = (d.batches(3, false).unwrap(), d.batches(3, false).unwrap());
    let (mut ra, mut rb) = (Rng::new(5), Rng::new(5));
    let first = epoch(&mut a, &mut ra);
    let second = epoch(&mut a, &mut ra);
    assert_eq!(first, epoch(&mut b, &mut rb), "same seed, same order");
    assert_ne!(first, second, "a new order each epoch");
    let mut sorted = second.clone();
    sorted.sort();
    assert_eq!(sorted, (0..10).collect::<Vec<_>>(), "each sample once per epoch");

    // Shuffled batches carry the right labels, into f64 buffers (the interpreter's).
    let (mut x, mut y) = (vec![0f64; a.x_len()], vec![0f64; a.y_len()]);
    a.shuffle(&mut ra);
    while let Some(n) = a.next_into(&mut x, &mut y) {
        assert!((0..n).all(|i| y[i] == (x[i] as u32 % 3) as f64));
    }
    a.restart();
    assert_eq!(a.next_indices(), Some(&[0usize, 1, 2][..]));
}

#[test]
fn batches_of_targets_copy_whole_target_rows() {
    let labels = Labels::Targets { shape: vec![2], values: vec![0., 1., 10., 11., 20., 21.] };
    let d = Dataset::new("t", vec![1], vec![0., 1., 2.], labels, None).unwrap();
    let mut batches = d.batches(2, false).unwrap();
    let (mut x, mut y) = (vec![0f32; batches.x_len()], vec![0f32; batches.y_len()]);
    batches.next_into(&mut x, &mut y);
    assert_eq!(y, [0., 1., 10., 11.]);
    assert_eq!(batches.next_into(&mut x, &mut y), Some(1));
    assert_eq!((&x[..1], &y[..2]), (&[2.0f32][..], &[20.0f32, 21.][..]));
}

// ---- validation against the model ----

#[test]
fn validate_accepts_a_matching_model_and_names_the_file_otherwise() {
    let d = digits();
    let ok = ModelShape { input: "x", sample_shape: &[1, 8, 8], label: Some(("labels", &[])), classes: Some(10) };
    d.validate(&ok).unwrap();
    // A flat MLP input holds the same 64 values: row-major data needs no reshape.
    d.validate(&ModelShape { sample_shape: &[64], ..ok }).unwrap();

    let wrong = ModelShape { sample_shape: &[1, 8, 9], ..ok };
    assert_error(
        d.validate(&wrong),
        &["examples/data/digits.csv: 64 features per row, but model input x is [B, 1, 8, 9] = 72 values"],
    );
    assert_error(
        d.validate(&ModelShape { classes: Some(5), ..ok }),
        &["digits.csv: label", "out of range for 5 classes"],
    );
    assert_error(
        d.validate(&ModelShape { label: Some(("y", &[10])), ..ok }),
        &["digits.csv: 1 class index per row, but model label y is [B, 10] = 10 values"],
    );
}

#[test]
fn validate_targets_against_a_classifier_and_generated_data() {
    let labels = Labels::Targets { shape: vec![], values: vec![0.5, 1.5] };
    let d = Dataset::new("r.npy", vec![2], vec![0.; 4], labels, None).unwrap();
    let model = ModelShape { input: "x", sample_shape: &[2], label: None, classes: Some(3) };
    assert_error(d.validate(&model), &["r.npy: the labels are float targets", "class indices 0..3"]);
    let spiral = data::spiral(10, 3, 0).unwrap();
    let model = ModelShape { input: "x", sample_shape: &[3], label: None, classes: Some(3) };
    assert_error(
        spiral.validate(&model),
        &["spiral data: 2 features per sample, but model input x is [B, 3] = 3 values"],
    );
}

#[test]
fn dataset_new_checks_its_sizes() {
    assert_error(Dataset::new("m", vec![2], vec![0.; 5], Labels::Classes(vec![0, 1]), None), &["m: 5 feature values"]);
    assert_error(Dataset::new("m", vec![2], vec![0.; 4], Labels::Classes(vec![0, 4]), Some(3)), &["label 4 at item 1"]);
    let mut d = counting();
    d.reshape(&[1, 1]).unwrap();
    assert_error(d.reshape(&[2]), &["counting", "[1, 1] (1 values)"]);
}

// ---- robustness ----

/// A copy of `bytes` with a seeded random corruption: truncated, bytes overwritten, or bytes
/// inserted.
fn mutate(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match rng.below(3) {
        0 => out.truncate(rng.below(bytes.len() as u64 + 1) as usize),
        1 => {
            for _ in 0..=rng.below(4) {
                let i = rng.below(out.len() as u64) as usize;
                out[i] = rng.next_u64() as u8;
            }
        }
        _ => {
            let i = rng.below(out.len() as u64 + 1) as usize;
            out.splice(i..i, (0..=rng.below(8)).map(|_| rng.next_u64() as u8));
        }
    }
    out
}

#[test]
fn corrupted_files_give_errors_not_panics() {
    let dir = temp_dir("corrupted");
    let csv = b"a,b,label\n1,2,0\n3,4.5,1\n".to_vec();
    let x = std::fs::read(fixture("x_f32.npy")).unwrap();
    let y = std::fs::read(fixture("y_i64.npy")).unwrap();
    let images = idx(8, &[2, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8]);
    let labels = idx(8, &[2], &[0, 1]);
    let mut rng = Rng::new(99);
    let opts = LoadOptions { classes: Some(2), sample_shape: Some(vec![1, 2]), ..Default::default() };
    for _ in 0..1000 {
        let p = write(&dir, "c.csv", mutate(&csv, &mut rng));
        let _ = data::load_csv(&p, &opts);
        let (px, py) = (write(&dir, "x.npy", mutate(&x, &mut rng)), write(&dir, "y.npy", mutate(&y, &mut rng)));
        let _ = data::load_npy(&px, &py, &LoadOptions::default());
        let (pi, pl) =
            (write(&dir, "i.idx", mutate(&images, &mut rng)), write(&dir, "l.idx", mutate(&labels, &mut rng)));
        let _ = data::load_idx(&pi, &pl, &opts);
    }
}
