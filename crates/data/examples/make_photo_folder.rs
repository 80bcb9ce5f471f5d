//! Makes a large folder of photo-like JPEGs for the streaming benchmark
//! (BENCHMARKS.md, "Image folders at scale"): N files in class sub-folders,
//! each a different crop (and mirror) of one of the photos in a source
//! folder, re-encoded as JPEG, so decoding costs what real photos cost and
//! no two files are alike. Deterministic: the same arguments give the same
//! files.
//!
//! ```sh
//! cargo run --release -p convnet-data --example make_photo_folder -- \
//!     data/cats-vs-dogs /tmp/photos-5000 5000
//! ```

use std::path::{Path, PathBuf};

fn photos(dir: &Path) -> Vec<(String, Vec<PathBuf>)> {
    let mut classes: Vec<_> = std::fs::read_dir(dir)
        .expect("source folder")
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect();
    classes.sort();
    classes
        .into_iter()
        .map(|c| {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&c)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "jpeg"))
                .collect();
            files.sort();
            (c.file_name().unwrap().to_string_lossy().to_string(), files)
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: make_photo_folder SOURCE_FOLDER OUT_FOLDER COUNT");
        std::process::exit(2);
    }
    let (src, out) = (Path::new(&args[1]), Path::new(&args[2]));
    let n: usize = args[3].parse().expect("COUNT is a number");
    let classes = photos(src);
    let decoded: Vec<Vec<image::RgbImage>> = classes
        .iter()
        .map(|(_, files)| {
            files
                .iter()
                .map(|f| image::open(f).expect("a readable photo").to_rgb8())
                .collect()
        })
        .collect();
    for (name, _) in &classes {
        std::fs::create_dir_all(out.join(name)).unwrap();
    }
    for i in 0..n {
        let c = i % classes.len();
        let pool = &decoded[c];
        let k = i / classes.len();
        let photo = &pool[k % pool.len()];
        // A crop of 80-100 % of each side, placed by i; mirrored every other round.
        let round = (k / pool.len()) as u32;
        let (w, h) = photo.dimensions();
        let cw = w * (80 + (round * 7) % 21) / 100;
        let ch = h * (80 + (round * 11) % 21) / 100;
        let x = (round * 13) % (w - cw + 1);
        let y = (round * 17) % (h - ch + 1);
        let mut img = image::imageops::crop_imm(photo, x, y, cw, ch).to_image();
        if round % 2 == 1 {
            img = image::imageops::flip_horizontal(&img);
        }
        let path = out.join(&classes[c].0).join(format!("{i:06}.jpg"));
        img.save(&path).unwrap();
    }
    println!("wrote {n} JPEGs under {}", out.display());
}
