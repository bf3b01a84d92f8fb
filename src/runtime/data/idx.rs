//! MNIST-style IDX files: a 4-byte magic `00 00 type ndim`, `ndim` big-endian u32 dimensions,
//! then the values. netc reads unsigned-byte files (type 0x08): labels are `0x00000801`
//! (`[items]`), images `0x00000803` (`[items, rows, cols]`; any rank from 2 is accepted).

use std::path::Path;

use super::{assemble, error, fmt_dims, read_file, reserve, Labels, LoadOptions, Origin};
use crate::diag::Diagnostic;

/// Load an images file and a labels file, e.g. MNIST's `train-images-idx3-ubyte` and
/// `train-labels-idx1-ubyte` (decompressed). Pixels are scaled by `opts.scale` (1/255 puts
/// them in 0..1). Errors name the file and the byte offset or item.
pub fn load_idx(images: &Path, labels: &Path, opts: &LoadOptions) -> Result<super::Dataset, Diagnostic> {
    let (iname, lname) = (images.display().to_string(), labels.display().to_string());
    let ibytes = read_file(images)?;
    let (dims, pixels) = parse(&iname, &ibytes, Kind::Images)?;
    let lbytes = read_file(labels)?;
    let (ldims, label_bytes) = parse(&lname, &lbytes, Kind::Labels)?;
    if dims[0] != ldims[0] {
        return Err(error(format!("{lname}: {} labels, but {iname} has {} images", ldims[0], dims[0]))
            .help("the images and labels files must come from the same set (both train or both test)"));
    }
    let mut values = reserve(pixels.len(), &iname)?;
    values.extend(pixels.iter().map(|&p| p as f32));
    let labels = if opts.targets {
        Labels::Targets { shape: vec![], values: label_bytes.iter().map(|&l| l as f32).collect() }
    } else {
        Labels::Classes(label_bytes.iter().map(|&l| l as u32).collect())
    };
    assemble(Origin::new(&iname, None), Origin::new(&lname, None), dims[1..].to_vec(), values, labels, opts)
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Images,
    Labels,
}

/// Check the magic and sizes; returns the dimensions and exactly the data bytes they declare.
fn parse<'a>(name: &str, bytes: &'a [u8], kind: Kind) -> Result<(Vec<usize>, &'a [u8]), Diagnostic> {
    let expected = match kind {
        Kind::Images => "an images file (magic 0x00000803)",
        Kind::Labels => "a labels file (magic 0x00000801)",
    };
    let Some(&[z0, z1, ty, ndim]) = bytes.first_chunk::<4>() else {
        return Err(error(format!("{name}: truncated: {} bytes, too short for an IDX magic number", bytes.len())));
    };
    let magic = u32::from_be_bytes([z0, z1, ty, ndim]);
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(error(format!("{name}: byte 0: a gzip file, not an IDX file"))
            .help("decompress it first, e.g. `gunzip train-images-idx3-ubyte.gz`"));
    }
    if z0 != 0 || z1 != 0 || ndim == 0 {
        return Err(error(format!("{name}: byte 0: bad magic number 0x{magic:08x}; expected {expected}")));
    }
    if ty != 0x08 {
        return Err(error(format!(
            "{name}: byte 2: IDX element type 0x{ty:02x} is not supported; netc reads unsigned bytes (0x08)"
        )));
    }
    let rank_ok = match kind {
        Kind::Images => ndim >= 2,
        Kind::Labels => ndim == 1,
    };
    if !rank_ok {
        return Err(error(format!(
            "{name}: byte 0: magic number 0x{magic:08x} has {ndim} dimensions; expected {expected}"
        )));
    }
    let header = 4 + 4 * ndim as usize;
    let Some(dim_bytes) = bytes.get(4..header) else {
        return Err(error(format!(
            "{name}: truncated: the header needs {header} bytes for {ndim} dimensions, the file has {}",
            bytes.len()
        )));
    };
    let dims: Vec<usize> =
        dim_bytes.chunks_exact(4).map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize).collect();
    let Some(needed) = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) else {
        return Err(error(format!("{name}: the dimensions {} are impossibly large", fmt_dims(None, &dims))));
    };
    let found = bytes.len() - header;
    if found != needed {
        let what = if found < needed { "truncated data" } else { "size mismatch" };
        return Err(error(format!(
            "{name}: {what}: dimensions {} need {needed} bytes after the {header}-byte header, found {found}",
            fmt_dims(None, &dims)
        )));
    }
    Ok((dims, &bytes[header..]))
}
