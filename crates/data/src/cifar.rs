//! CIFAR-10 binary batches (`data_batch_1.bin` ... `data_batch_5.bin`,
//! `test_batch.bin`).
//!
//! Each record is 3,073 bytes: a label byte (0..9) then 3,072 pixel bytes,
//! the 1,024 red values of the 32x32 image row by row, then green, then
//! blue. Images become NHWC `[N, 32, 32, 3]` scaled to `[0, 1]`.

use crate::error::{format_err, io_err, Result};
use crate::images::LabeledImages;
use std::path::Path;

/// Bytes per record.
pub const RECORD: usize = 1 + 3 * 1024;
/// Class names, in label order.
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Parses one batch file's bytes; `path` names the file in errors.
pub fn parse_cifar_batch(path: &Path, bytes: &[u8]) -> Result<LabeledImages> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(format_err(
            path,
            "file size",
            format!("a positive multiple of {RECORD} bytes (label + 32x32x3 pixels per image)"),
            format!(
                "{} bytes ({} whole records and {} bytes left over{})",
                bytes.len(),
                bytes.len() / RECORD,
                bytes.len() % RECORD,
                if !bytes.len().is_multiple_of(RECORD) {
                    ": truncated?"
                } else {
                    ""
                }
            ),
        ));
    }
    let n = bytes.len() / RECORD;
    let mut pixels = vec![0u8; n * 3072];
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] > 9 {
            return Err(format_err(
                path,
                format!("label of record {i} (byte offset {})", i * RECORD),
                "a class 0..9",
                rec[0].to_string(),
            ));
        }
        labels.push(rec[0] as u32);
        let img = &mut pixels[i * 3072..(i + 1) * 3072];
        for ch in 0..3 {
            for p in 0..1024 {
                img[p * 3 + ch] = rec[1 + ch * 1024 + p];
            }
        }
    }
    LabeledImages::from_bytes([32, 32, 3], pixels, labels)
}

/// Reads one batch file.
pub fn read_cifar_batch(path: &Path) -> Result<LabeledImages> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    parse_cifar_batch(path, &bytes)
}

/// Concatenates splits of one image shape (in memory, as bytes).
pub fn concat(parts: &[LabeledImages]) -> Result<LabeledImages> {
    let shape = parts[0].image_shape();
    let mut x = Vec::new();
    let mut y = Vec::new();
    for p in parts {
        if p.image_shape() != shape {
            return Err(crate::DataError::Mismatch(format!(
                "cannot concatenate images of shapes {:?} and {:?}",
                shape,
                p.image_shape()
            )));
        }
        for i in 0..p.len() {
            x.extend_from_slice(&p.image_bytes(i)?);
            y.push(p.label(i) as u32);
        }
    }
    LabeledImages::from_bytes(shape, x, y)
}

/// Loads the five training batches and the test batch from `dir` (the
/// `cifar-10-batches-bin` folder). Missing training batches are an error
/// only if none is present.
pub fn load_cifar10(dir: &Path) -> Result<(LabeledImages, LabeledImages)> {
    let mut train = Vec::new();
    for i in 1..=5 {
        let p = dir.join(format!("data_batch_{i}.bin"));
        if p.exists() {
            train.push(read_cifar_batch(&p)?);
        }
    }
    if train.is_empty() {
        return Err(io_err(
            &dir.join("data_batch_1.bin"),
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no CIFAR-10 training batch (data_batch_1.bin .. data_batch_5.bin) in this folder",
            ),
        ));
    }
    let test = read_cifar_batch(&dir.join("test_batch.bin"))?;
    Ok((concat(&train)?, test))
}

/// Encodes 32x32x3 images and their labels as a batch file (used by tests
/// and to export data).
pub fn encode_cifar_batch(data: &LabeledImages) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * RECORD);
    for i in 0..data.len() {
        out.push(data.label(i) as u8);
        let img = data.image_bytes(i)?;
        for ch in 0..3 {
            for p in 0..1024 {
                out.push(img[p * 3 + ch]);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_channel_order() {
        let mut bytes = vec![0u8; 2 * RECORD];
        bytes[0] = 3;
        bytes[1] = 255; // red of pixel 0
        bytes[1 + 1024 + 1] = 51; // green of pixel 1
        bytes[RECORD] = 9;
        bytes[RECORD + 1 + 2048 + 1023] = 102; // blue of the last pixel of image 2
        let d = parse_cifar_batch(Path::new("b.bin"), &bytes).unwrap();
        let x = d.images_tensor().unwrap();
        assert_eq!(x.shape(), &[2, 32, 32, 3]);
        assert_eq!(d.labels(), vec![3, 9]);
        assert_eq!(x.data()[0], 1.0);
        assert!((x.data()[3 + 1] - 0.2).abs() < 1e-6);
        assert!((x.data()[3072 + 1023 * 3 + 2] - 0.4).abs() < 1e-6);
        assert_eq!(encode_cifar_batch(&d).unwrap(), bytes);
    }

    #[test]
    fn bad_files_are_reported() {
        let e = parse_cifar_batch(Path::new("b.bin"), &vec![0u8; RECORD + 5])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("b.bin: file size: expected a positive multiple of 3073")
                && e.contains("truncated"),
            "{e}"
        );
        let mut bytes = vec![0u8; RECORD];
        bytes[0] = 10;
        let e = parse_cifar_batch(Path::new("b.bin"), &bytes)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("label of record 0") && e.contains("found 10"),
            "{e}"
        );
    }
}
