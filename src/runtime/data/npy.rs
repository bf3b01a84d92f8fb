//! NPY arrays, numpy's `np.save` format (versions 1.0, 2.0 and 3.0): the magic `\x93NUMPY`, a
//! version, a little-endian header length, a Python dict literal
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (1797, 64), }`, then the raw values.
//! The dict is parsed by hand; only C-order arrays of plain numbers are read.

use std::path::Path;

use super::{
    assemble, class_index, error, fmt_dims, read_file, reserve, scale_values, Field, FieldSpec, FieldType, Labels,
    LoadOptions, Origin,
};
use crate::diag::Diagnostic;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Load features from one NPY file (shape `(samples, ...)`) and labels from another (shape
/// `(samples,)` of class indices, or `(samples, ...)` of float targets when `opts.targets`).
/// Features may be any float, integer or bool dtype; errors name the file and byte offset.
pub fn load_npy(features: &Path, labels: &Path, opts: &LoadOptions) -> Result<super::Dataset, Diagnostic> {
    let (fname, lname) = (features.display().to_string(), labels.display().to_string());
    let fbytes = read_file(features)?;
    let x = parse(&fname, &fbytes)?;
    let lbytes = read_file(labels)?;
    let y = parse(&lname, &lbytes)?;
    let (Some(&n), Some(&m)) = (x.shape.first(), y.shape.first()) else {
        let which = if x.shape.is_empty() { &fname } else { &lname };
        return Err(error(format!("{which}: a 0-d array holds no samples; expected shape [samples, ...]")));
    };
    if n != m {
        return Err(error(format!("{lname}: {m} labels, but {fname} has {n} samples")));
    }

    let mut values = reserve(x.count, &fname)?;
    values.extend((0..x.count).map(|i| x.value(i) as f32));
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(error(format!("{fname}: value {} at flat index {i} is not finite", values[i])));
    }

    let labels = if opts.targets {
        let mut targets = reserve(y.count, &lname)?;
        targets.extend((0..y.count).map(|i| y.value(i) as f32));
        Labels::Targets { shape: y.shape[1..].to_vec(), values: targets }
    } else {
        if y.count != m {
            return Err(error(format!(
                "{lname}: class labels must be one per sample, but the array has shape {}",
                fmt_dims(None, &y.shape)
            ))
            .help("for regression targets, load the labels as targets"));
        }
        let mut classes = reserve(m, &lname)?;
        for i in 0..m {
            classes.push(class_index(y.value(i)).map_err(|why| error(format!("{lname}: item {i}: {why}")))?);
        }
        Labels::Classes(classes)
    };
    assemble(Origin::new(&fname, None), Origin::new(&lname, None), x.shape[1..].to_vec(), values, labels, opts)
}

/// A whole NPY array as f32 values (exact for float32 and for integers up to 2^24).
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Read an NPY file; errors name the file and the byte offset.
pub fn read_npy(path: &Path) -> Result<Array, Diagnostic> {
    let name = path.display().to_string();
    let bytes = read_file(path)?;
    let a = parse(&name, &bytes)?;
    let mut values = reserve(a.count, &name)?;
    values.extend((0..a.count).map(|i| a.value(i) as f32));
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(error(format!("{name}: value {} at flat index {i} is not finite", values[i])));
    }
    Ok(Array { shape: a.shape, values })
}

/// Load an NPY array `[samples, ...]` as the field `spec.name`.
pub(super) fn load_field(spec: &FieldSpec) -> Result<Field, Diagnostic> {
    let name = spec.path.display().to_string();
    let Array { shape, mut values } = read_npy(&spec.path)?;
    if shape.is_empty() {
        return Err(error(format!(
            "{name}: field `{}`: a 0-d array holds no samples; expected shape [samples, ...]",
            spec.name
        )));
    }
    if spec.ty == FieldType::Float {
        scale_values(&name, &mut values, spec.scale)?;
    }
    let sample = shape[1..].to_vec();
    if sample.iter().product::<usize>() == 0 {
        return Err(error(format!(
            "{name}: field `{}`: samples of shape {} hold no values",
            spec.name,
            fmt_dims(None, &sample)
        )));
    }
    Field::from_parts(&spec.name, spec.ty, sample, values, Origin::new(&name, None))
}

/// The bytes of an NPY file (version 1.0, little-endian float32, C order) holding `values`
/// with `shape`, as `np.save` writes it: the header is padded so the data starts at a
/// multiple of 64 bytes.
pub fn npy_bytes(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    while (MAGIC.len() + 4 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + 4 * values.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// A parsed NPY file: its shape and element type, and the data bytes (already checked to be
/// exactly `count` elements long).
struct Npy<'a> {
    shape: Vec<usize>,
    count: usize,
    dtype: Dtype,
    data: &'a [u8],
}

/// The element types read: `kind` is numpy's letter (`f` float, `i` signed, `u` unsigned,
/// `b` bool), `size` the bytes per element.
#[derive(Clone, Copy, Debug)]
struct Dtype {
    kind: u8,
    size: usize,
    big_endian: bool,
}

impl Npy<'_> {
    /// Element `i` as f64: exact for every float32 and for integers up to 2^53.
    fn value(&self, i: usize) -> f64 {
        let size = self.dtype.size;
        let mut b = [0u8; 8];
        b[..size].copy_from_slice(&self.data[i * size..(i + 1) * size]);
        if self.dtype.big_endian {
            b[..size].reverse();
        }
        match (self.dtype.kind, size) {
            (b'f', 4) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            (b'f', _) => f64::from_le_bytes(b),
            (b'i', 1) => b[0] as i8 as f64,
            (b'i', 2) => i16::from_le_bytes([b[0], b[1]]) as f64,
            (b'i', 4) => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            (b'i', _) => i64::from_le_bytes(b) as f64,
            // Unsigned and bool: zero-extended little-endian bytes.
            _ => u64::from_le_bytes(b) as f64,
        }
    }
}

fn parse<'a>(name: &str, bytes: &'a [u8]) -> Result<Npy<'a>, Diagnostic> {
    if !bytes.starts_with(MAGIC) {
        let mut d = error(format!("{name}: byte 0: not an NPY file (it does not start with \\x93NUMPY)"));
        if bytes.starts_with(b"PK\x03\x04") {
            d = d.help("this looks like an .npz archive: save each array with np.save instead");
        }
        return Err(d);
    }
    let (len_at, len_size) = match bytes.get(6) {
        Some(1) => (8, 2),
        Some(2 | 3) => (8, 4),
        Some(v) => return Err(error(format!("{name}: byte 6: unsupported NPY version {v}.x (1.0 to 3.0 are read)"))),
        None => return Err(error(format!("{name}: truncated: {} bytes, too short for an NPY header", bytes.len()))),
    };
    let header_start = len_at + len_size;
    let Some(len_bytes) = bytes.get(len_at..header_start) else {
        return Err(error(format!("{name}: truncated: {} bytes, too short for an NPY header", bytes.len())));
    };
    let header_len = len_bytes.iter().rev().fold(0usize, |acc, &b| (acc << 8) | b as usize);
    let data_start = header_start + header_len;
    let Some(header) = bytes.get(header_start..data_start) else {
        return Err(error(format!(
            "{name}: truncated: the header declares {header_len} bytes at byte {header_start}, but the file has {}",
            bytes.len()
        )));
    };
    let header = Dict::parse(name, header, header_start)?;

    let descr = header.descr.ok_or_else(|| error(format!("{name}: byte {header_start}: the header has no 'descr'")))?;
    let dtype = parse_dtype(&descr)
        .ok_or_else(|| error(format!("{name}: byte {header_start}: unsupported dtype '{descr}'")).help(DTYPES_HELP))?;
    let shape = header.shape.ok_or_else(|| error(format!("{name}: byte {header_start}: the header has no 'shape'")))?;
    // A Fortran-order array with at most one dimension longer than 1 has the same layout in C order.
    if header.fortran_order && shape.iter().filter(|&&d| d > 1).count() > 1 {
        return Err(error(format!("{name}: the array is in Fortran (column-major) order, which is not supported"))
            .help("save a C-order copy: np.save(path, np.ascontiguousarray(a))"));
    }
    let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let needed = count.and_then(|c| c.checked_mul(dtype.size));
    let (Some(count), Some(needed)) = (count, needed) else {
        return Err(error(format!("{name}: the shape {} is impossibly large", fmt_dims(None, &shape))));
    };
    let found = bytes.len() - data_start;
    if found != needed {
        let what = if found < needed { "truncated data" } else { "size mismatch" };
        return Err(error(format!(
            "{name}: {what}: shape {} of '{descr}' needs {needed} bytes after the {data_start}-byte header, found {found}",
            fmt_dims(None, &shape)
        )));
    }
    Ok(Npy { shape, count, dtype, data: &bytes[data_start..] })
}

const DTYPES_HELP: &str = "netc reads float32, float64, int8/16/32/64, uint8/16/32/64 and bool arrays";

/// `'<f4'`, `'|u1'`, `'>i8'`: byte order, kind letter, size in bytes.
fn parse_dtype(descr: &str) -> Option<Dtype> {
    // Bytes, not chars: a corrupt header may hold any UTF-8 here.
    let (big_endian, rest) = match descr.as_bytes() {
        [b'<' | b'|', rest @ ..] => (false, rest),
        [b'>', rest @ ..] => (true, rest),
        [b'=', rest @ ..] => (cfg!(target_endian = "big"), rest),
        rest => (cfg!(target_endian = "big"), rest),
    };
    let (&kind, digits) = rest.split_first()?;
    let size: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let ok = match kind {
        b'f' => matches!(size, 4 | 8),
        b'i' | b'u' => matches!(size, 1 | 2 | 4 | 8),
        b'b' => size == 1,
        _ => false,
    };
    ok.then_some(Dtype { kind, size, big_endian })
}

/// The three keys of an NPY header dict that matter.
#[derive(Default)]
struct Dict {
    descr: Option<String>,
    fortran_order: bool,
    shape: Option<Vec<usize>>,
}

enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// A cursor over the header text; `base` is the header's byte offset in the file, for messages.
struct Cursor<'a> {
    name: &'a str,
    s: &'a [u8],
    pos: usize,
    base: usize,
}

impl Dict {
    fn parse(name: &str, header: &[u8], base: usize) -> Result<Dict, Diagnostic> {
        let mut c = Cursor { name, s: header, pos: 0, base };
        let mut dict = Dict::default();
        c.expect(b'{')?;
        loop {
            if c.eat(b'}') {
                return Ok(dict);
            }
            let key_at = c.pos;
            let key = c.string()?;
            c.expect(b':')?;
            match (key.as_str(), c.value()?) {
                ("descr", Value::Str(s)) => dict.descr = Some(s),
                ("fortran_order", Value::Bool(b)) => dict.fortran_order = b,
                ("shape", Value::Tuple(t)) => dict.shape = Some(t),
                ("descr" | "fortran_order" | "shape", _) => {
                    return Err(c.error_at(key_at, &format!("bad value for '{key}'")))
                }
                _ => {}
            }
            if !c.eat(b',') {
                c.expect(b'}')?;
                return Ok(dict);
            }
        }
    }
}

impl Cursor<'_> {
    fn error_at(&self, pos: usize, what: &str) -> Diagnostic {
        error(format!("{}: byte {}: NPY header: {what}", self.name, self.base + pos))
    }

    fn skip_space(&mut self) {
        while self.s.get(self.pos).is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// Skip spaces, then consume `b` if it is next.
    fn eat(&mut self, b: u8) -> bool {
        self.skip_space();
        let found = self.s.get(self.pos) == Some(&b);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect(&mut self, b: u8) -> Result<(), Diagnostic> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.error_at(self.pos, &format!("expected '{}'", b as char)))
        }
    }

    fn string(&mut self) -> Result<String, Diagnostic> {
        self.skip_space();
        let quote = match self.s.get(self.pos) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(self.error_at(self.pos, "expected a quoted string")),
        };
        let start = self.pos + 1;
        let Some(len) = self.s[start..].iter().position(|&b| b == quote) else {
            return Err(self.error_at(self.pos, "unterminated string"));
        };
        self.pos = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn value(&mut self) -> Result<Value, Diagnostic> {
        self.skip_space();
        let at = self.pos;
        match self.s.get(at) {
            Some(b'\'' | b'"') => Ok(Value::Str(self.string()?)),
            Some(b'(') => {
                self.pos += 1;
                let mut dims = Vec::new();
                while !self.eat(b')') {
                    dims.push(self.integer()?);
                    if !self.eat(b',') {
                        self.expect(b')')?;
                        break;
                    }
                }
                Ok(Value::Tuple(dims))
            }
            Some(b'[') => Err(self.error_at(at, "structured (record) arrays are not supported").help(DTYPES_HELP)),
            _ => {
                let word: Vec<u8> = self.s[at..].iter().take_while(|b| b.is_ascii_alphanumeric()).copied().collect();
                self.pos += word.len();
                match &word[..] {
                    b"True" => Ok(Value::Bool(true)),
                    b"False" => Ok(Value::Bool(false)),
                    _ => Err(self.error_at(at, "expected a string, True, False or a tuple")),
                }
            }
        }
    }

    /// A dimension: decimal digits, with Python 2's `L` suffix allowed.
    fn integer(&mut self) -> Result<usize, Diagnostic> {
        self.skip_space();
        let start = self.pos;
        let mut n: usize = 0;
        while let Some(&b) = self.s.get(self.pos).filter(|b| b.is_ascii_digit()) {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add((b - b'0') as usize))
                .ok_or_else(|| self.error_at(start, "dimension too large"))?;
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error_at(start, "expected a dimension (a whole number)"));
        }
        if self.s.get(self.pos) == Some(&b'L') {
            self.pos += 1;
        }
        Ok(n)
    }
}
