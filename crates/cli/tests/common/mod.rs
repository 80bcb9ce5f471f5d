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
