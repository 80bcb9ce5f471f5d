//! Helpers shared by the tests that drive the built `convnet` binary.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs `convnet` with `args` in the crate folder and waits for it.
pub fn convnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run convnet")
}

/// Standard output followed by standard error.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A fresh, empty temporary folder named after the test and this process.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("convnet-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small MNIST-format folder: the first `n` training and `m` test images
/// of the bundled copy.
pub fn small_idx(dir: &std::path::Path, n: usize, m: usize) {
    use convnet_data::idx::{encode_idx, read_idx, IdxArray};
    std::fs::create_dir_all(dir).unwrap();
    let src = convnet_data::Mnist::bundled_dir();
    for (name, count) in [
        ("train-images-idx3-ubyte", n),
        ("train-labels-idx1-ubyte", n),
        ("t10k-images-idx3-ubyte", m),
        ("t10k-labels-idx1-ubyte", m),
    ] {
        let a = read_idx(&src.join(format!("{name}.gz"))).unwrap();
        let per: usize = a.dims[1..].iter().product();
        let mut dims = a.dims.clone();
        dims[0] = count;
        let b = IdxArray {
            dims,
            data: a.data[..count * per].to_vec(),
        };
        std::fs::write(dir.join(name), encode_idx(&b)).unwrap();
    }
}

/// A real image bomb: a valid PNG of `side` x `side` black gray pixels, a
/// few hundred KB that decode to `side^2` bytes, written row by row so that
/// making it takes no more memory than the file.
pub fn png_bomb(side: u32) -> Vec<u8> {
    use std::io::Write;
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit gray, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let row = vec![0u8; side as usize + 1]; // filter byte 0, then the pixels
    for _ in 0..side {
        z.write_all(&row).unwrap();
    }
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

/// The peak resident memory (VmHWM) of process `pid`, in MiB.
pub fn peak_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        >> 10
}
