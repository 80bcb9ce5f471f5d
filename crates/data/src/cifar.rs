//! CIFAR-10 binary batches (`data_batch_1.bin` ... `data_batch_5.bin`,
//! `test_batch.bin`).
//!
//! Each record is 3,073 bytes: a label byte (0..9) then 3,072 pixel bytes,
//! the 1,024 red values of the 32x32 image row by row, then green, then
//! blue. Images become NHWC `[N, 32, 32, 3]` scaled to `[0, 1]`.

use crate::error::{format_err, io_err, Result};
use crate::mnist::LabeledImages;
use convnet_tensor::Tensor;
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
    let mut pixels = vec![0.0f32; n * 3072];
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
        labels.push(rec[0] as f32);
        let img = &mut pixels[i * 3072..(i + 1) * 3072];
        for ch in 0..3 {
            for p in 0..1024 {
                img[p * 3 + ch] = rec[1 + ch * 1024 + p] as f32 / 255.0;
            }
        }
    }
    Ok(LabeledImages {
        images: Tensor::from_vec(&[n, 32, 32, 3], pixels).expect("sizes agree"),
        labels: Tensor::from_vec(&[n], labels).expect("sizes agree"),
    })
}

/// Reads one batch file.
pub fn read_cifar_batch(path: &Path) -> Result<LabeledImages> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    parse_cifar_batch(path, &bytes)
}

/// Concatenates splits.
pub fn concat(parts: &[LabeledImages]) -> LabeledImages {
    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut shape = parts[0].images.shape().to_vec();
    shape[0] = 0;
    for p in parts {
        x.extend_from_slice(p.images.data());
        y.extend_from_slice(p.labels.data());
        shape[0] += p.len();
    }
    let n = shape[0];
    LabeledImages {
        images: Tensor::from_vec(&shape, x).expect("sizes agree"),
        labels: Tensor::from_vec(&[n], y).expect("sizes agree"),
    }
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
    Ok((concat(&train), test))
}

/// Encodes images `[N, 32, 32, 3]` in `[0, 1]` and labels as a batch file
/// (used by tests and to export data).
pub fn encode_cifar_batch(data: &LabeledImages) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * RECORD);
    for i in 0..data.len() {
        out.push(data.labels.data()[i] as u8);
        let img = &data.images.data()[i * 3072..(i + 1) * 3072];
        for ch in 0..3 {
            for p in 0..1024 {
                out.push((img[p * 3 + ch] * 255.0).round() as u8);
            }
        }
    }
    out
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
        assert_eq!(d.images.shape(), &[2, 32, 32, 3]);
        assert_eq!(d.labels.data(), &[3.0, 9.0]);
        assert_eq!(d.images.data()[0], 1.0);
        assert!((d.images.data()[3 + 1] - 0.2).abs() < 1e-6);
        assert!((d.images.data()[3072 + 1023 * 3 + 2] - 0.4).abs() < 1e-6);
        assert_eq!(encode_cifar_batch(&d), bytes);
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
