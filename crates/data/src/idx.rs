//! IDX files (MNIST, Fashion-MNIST), gzipped or raw.
//!
//! Layout: a big-endian u32 magic `0x0000TTDD` (`TT` the element type,
//! `0x08` = u8; `DD` the number of dimensions), one big-endian u32 per
//! dimension, then the elements row-major. Images are `0x00000803`
//! (`N x 28 x 28`), labels `0x00000801` (`N`). A file starting with the
//! gzip magic `1f 8b` is decompressed first.

use crate::error::{format_err, io_err, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// An IDX array of bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, e.g. `[60000, 28, 28]`.
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<u8>,
}

/// Reads a whole file, decompressing it if it is gzipped.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| io_err(path, e))?;
    decode_maybe_gz(path, raw)
}

/// Decompresses `raw` if it starts with the gzip magic, else returns it as
/// is; `path` is only used in error messages.
pub fn decode_maybe_gz(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>> {
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| format_err(path, "gzip stream", "a complete gzip file", e.to_string()))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses IDX bytes; `path` is only used in error messages.
pub fn parse_idx(path: &Path, bytes: &[u8]) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(format_err(
            path,
            "magic number",
            "4 bytes",
            format!("a file of {} bytes", bytes.len()),
        ));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let (zeros, ty, ndim) = (magic >> 16, (magic >> 8) & 0xff, (magic & 0xff) as usize);
    if zeros != 0 || ty != 0x08 || ndim == 0 {
        return Err(format_err(
            path,
            "magic number",
            "0x00000801 (labels) or 0x00000803 (images): u8 data with 1 to 4 dimensions",
            format!("{magic:#010x}"),
        ));
    }
    if ndim > 4 {
        return Err(format_err(
            path,
            "dimension count",
            "at most 4",
            ndim.to_string(),
        ));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(format_err(
            path,
            "header",
            format!("{header} bytes for {ndim} dimensions"),
            format!("{} bytes", bytes.len()),
        ));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            format_err(
                path,
                "dimensions",
                "a size that fits in memory",
                format!("{dims:?}"),
            )
        })?;
    let have = bytes.len() - header;
    if have != count {
        return Err(format_err(
            path,
            "data",
            format!("{count} bytes for dimensions {dims:?}"),
            format!(
                "{have} bytes{}",
                if have < count {
                    " (truncated file)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Reads an IDX file (gzipped or raw).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    parse_idx(path, &read_maybe_gz(path)?)
}

/// Encodes an array as raw IDX bytes (u8 elements).
pub fn encode_idx(array: &IdxArray) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, array.dims.len() as u8];
    for &d in &array.dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(&array.data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("test.idx")
    }

    #[test]
    fn round_trip() {
        let a = IdxArray {
            dims: vec![2, 3, 2],
            data: (0..12).collect(),
        };
        assert_eq!(parse_idx(p(), &encode_idx(&a)).unwrap(), a);
    }

    #[test]
    fn errors_name_the_field() {
        let a = IdxArray {
            dims: vec![2, 3],
            data: (0..6).collect(),
        };
        let mut bytes = encode_idx(&a);
        bytes.pop();
        let e = parse_idx(p(), &bytes).unwrap_err().to_string();
        assert!(
            e.contains("test.idx: data: expected 6 bytes") && e.contains("truncated"),
            "{e}"
        );
        let mut bad = encode_idx(&a);
        bad[2] = 0x0d; // float data
        let e = parse_idx(p(), &bad).unwrap_err().to_string();
        assert!(
            e.contains("magic number") && e.contains("0x00000d02"),
            "{e}"
        );
        let e = parse_idx(p(), &[0, 0, 8]).unwrap_err().to_string();
        assert!(e.contains("4 bytes"), "{e}");
        let e = parse_idx(p(), &[0, 0, 8, 3, 0, 0]).unwrap_err().to_string();
        assert!(e.contains("header: expected 16 bytes"), "{e}");
    }
}
