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

/// The arguments of a small `convnet train` run, the one helper the CLI
/// tests share: a tiny net on the first 600 bundled MNIST images for one
/// epoch, quiet, seeded, into `OUT/NAME`. Each `with` sets a flag (replacing
/// its value if it is already set), so a test states only what it changes.
#[derive(Clone, Debug)]
pub struct TinyRun {
    command: Vec<String>,
    flags: Vec<(String, Option<String>)>,
}

impl TinyRun {
    /// `convnet train --model 8C5-P2-16-10 --limit 600 --batch-size 50
    /// --epochs 1 --validation-split 0.1 --quiet --seed 7 --out OUT --name NAME`.
    pub fn new(out: &std::path::Path, name: &str) -> TinyRun {
        TinyRun {
            command: vec!["train".into()],
            flags: Vec::new(),
        }
        .with("--model", "8C5-P2-16-10")
        .with("--limit", "600")
        .with("--batch-size", "50")
        .with("--epochs", "1")
        .with("--validation-split", "0.1")
        .flag("--quiet")
        .with("--seed", "7")
        .with("--out", out.to_str().unwrap())
        .with("--name", name)
    }

    /// The same flags after another command (`["finetune", SOURCE]`, ...).
    pub fn command(mut self, words: &[&str]) -> TinyRun {
        self.command = words.iter().map(|w| w.to_string()).collect();
        self
    }

    /// Sets `flag` to `value`.
    pub fn with(mut self, flag: &str, value: &str) -> TinyRun {
        match self.flags.iter_mut().find(|(f, _)| f == flag) {
            Some(slot) => slot.1 = Some(value.into()),
            None => self.flags.push((flag.into(), Some(value.into()))),
        }
        self
    }

    /// Sets a flag without a value (`--quiet`, `--horizontal-flip`).
    pub fn flag(mut self, flag: &str) -> TinyRun {
        if !self.flags.iter().any(|(f, _)| f == flag) {
            self.flags.push((flag.into(), None));
        }
        self
    }

    /// Sets every flag of `words`, a command-line fragment such as
    /// `["--epochs", "2", "--horizontal-flip"]` (a flag takes the next word
    /// as its value unless that word is a flag too).
    pub fn withs(mut self, words: &[&str]) -> TinyRun {
        let mut i = 0;
        while i < words.len() {
            let f = words[i];
            assert!(f.starts_with("--"), "{f}: expected a flag in {words:?}");
            match words.get(i + 1).filter(|v| !v.starts_with("--")) {
                Some(v) => {
                    self = self.with(f, v);
                    i += 2;
                }
                None => {
                    self = self.flag(f);
                    i += 1;
                }
            }
        }
        self
    }

    /// Drops the helper's `--limit`, `--batch-size`, `--validation-split`
    /// and `--seed`: `train`'s own defaults for them.
    pub fn command_defaults(self) -> TinyRun {
        self.without("--limit")
            .without("--batch-size")
            .without("--validation-split")
            .without("--seed")
    }

    /// Removes a flag (back to the command's default).
    pub fn without(mut self, flag: &str) -> TinyRun {
        self.flags.retain(|(f, _)| f != flag);
        self
    }

    /// The command line, without the program name.
    pub fn args(&self) -> Vec<String> {
        let mut out = self.command.clone();
        for (f, v) in &self.flags {
            out.push(f.clone());
            out.extend(v.clone());
        }
        out
    }

    /// Runs it and waits.
    pub fn run(&self) -> Output {
        let args = self.args();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        convnet(&refs)
    }

    /// Runs it and panics with its output unless it succeeded.
    pub fn ok(&self) -> Output {
        let o = self.run();
        assert!(o.status.success(), "{:?}: {}", self.args(), text(&o));
        o
    }
}

/// `n` JPEGs of `side x side` RGB in `dir/a` and `dir/b` (alternating), each
/// a different colour gradient so that no two files are alike.
pub fn make_folder(dir: &std::path::Path, n: usize, side: u32) {
    for class in ["a", "b"] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
    }
    for i in 0..n {
        let img = image::RgbImage::from_fn(side, side, |x, y| {
            image::Rgb([(x * 2 + i as u32) as u8, (y * 2) as u8, (i * 7) as u8])
        });
        let class = if i % 2 == 0 { "a" } else { "b" };
        img.save(dir.join(class).join(format!("{i:05}.jpg")))
            .unwrap();
    }
}
