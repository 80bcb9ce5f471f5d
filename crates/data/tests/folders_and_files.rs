//! Image folders, CSV and CIFAR files on disk, and their errors.

use convnet_data::*;
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("convnet-data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn bundled_cats_dogs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cats-vs-dogs")
}

#[test]
fn bundled_cats_and_dogs_load_in_class_order_with_a_seeded_split() {
    let opts = FolderOptions::new(32, 48, 3)
        .with_validation_split(0.25)
        .with_seed(5);
    let f = load_image_folder(&bundled_cats_dogs(), &opts).unwrap();
    assert_eq!(f.classes, vec!["cats", "dogs"]);
    let x = f.train.images_tensor().unwrap();
    assert_eq!(x.shape(), &[60, 32, 48, 3]);
    let val = f.validation.as_ref().unwrap();
    assert_eq!(val.images_tensor().unwrap().shape(), &[20, 32, 48, 3]);
    let count = |l: Vec<usize>, c: usize| l.iter().filter(|&&v| v == c).count();
    let cats = count(f.train.labels(), 0) + count(val.labels(), 0);
    assert_eq!(cats, 40);
    assert!(x.data().iter().all(|&v| (0.0..=1.0).contains(&v)));
    // Nothing is decoded until asked for; then the cache holds the decoded bytes.
    assert_eq!(f.train.resident_bytes(), 80 * 32 * 48 * 3);
    assert_eq!(
        f.train
            .path(0)
            .unwrap()
            .parent()
            .unwrap()
            .file_name()
            .unwrap(),
        f.classes[f.train.label(0)].as_str()
    );
    // The same seed gives the same split; another seed another one.
    let g = load_image_folder(&bundled_cats_dogs(), &opts).unwrap();
    assert_eq!(g.train.labels(), f.train.labels());
    assert_eq!(g.train.resident_bytes(), 0);
    let h = load_image_folder(&bundled_cats_dogs(), &opts.clone().with_seed(6)).unwrap();
    assert_ne!(h.train.labels(), f.train.labels());
    let gray = load_image_folder(&bundled_cats_dogs(), &FolderOptions::new(16, 16, 1)).unwrap();
    assert_eq!(
        gray.train.images_tensor().unwrap().shape(),
        &[80, 16, 16, 1]
    );
    // Without a cache, batches are decoded afresh and equal the cached ones.
    let uncached =
        load_image_folder(&bundled_cats_dogs(), &opts.clone().with_cache_bytes(0)).unwrap();
    assert_eq!(uncached.train.images_tensor().unwrap(), x);
    assert_eq!(uncached.train.resident_bytes(), 0);
}

#[test]
fn resizing_keeps_exact_pixels_at_the_same_size_and_uniform_colours() {
    let d = tmp("resize");
    let mut img = image::RgbImage::new(4, 2);
    for (x, y, p) in img.enumerate_pixels_mut() {
        *p = image::Rgb([(x * 60) as u8, (y * 200) as u8, 7]);
    }
    let p = d.join("a.png");
    img.save(&p).unwrap();
    let v = load_image(&p, 2, 4, 3).unwrap();
    assert_eq!(v[3 * 3], 180.0 / 255.0); // pixel (0, 3), red
    assert_eq!(v[(4 + 1) * 3 + 1], 200.0 / 255.0); // pixel (1, 1), green
    let uniform = image::RgbImage::from_pixel(10, 6, image::Rgb([51, 102, 153]));
    let q = d.join("u.png");
    uniform.save(&q).unwrap();
    let v = load_image(&q, 3, 5, 3).unwrap();
    for px in v.chunks(3) {
        assert!(
            (px[0] - 0.2).abs() < 1e-6 && (px[1] - 0.4).abs() < 1e-6 && (px[2] - 0.6).abs() < 1e-6
        );
    }
    let g = load_image(&q, 3, 5, 1).unwrap();
    assert_eq!(g.len(), 15);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn folder_errors_name_the_file_or_folder() {
    let d = tmp("bad-folder");
    let e = load_image_folder(&d, &FolderOptions::new(8, 8, 3))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no sub-folders"), "{e}");
    std::fs::create_dir_all(d.join("cats")).unwrap();
    std::fs::create_dir_all(d.join("dogs")).unwrap();
    std::fs::write(d.join("cats/readme.txt"), "not an image").unwrap();
    image::RgbImage::new(3, 3)
        .save(d.join("dogs/d.png"))
        .unwrap();
    let e = load_image_folder(&d, &FolderOptions::new(8, 8, 3))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cats: class folder: expected at least one .jpg"),
        "{e}"
    );
    std::fs::write(d.join("cats/broken.jpg"), b"\xff\xd8\xff garbage").unwrap();
    // Images are read when a batch asks for them: an unreadable one is an
    // error naming it (--on-bad-image fail) ...
    let strict = FolderOptions::new(8, 8, 3).with_on_error(OnError::Fail);
    let f = load_image_folder(&d, &strict).unwrap();
    let e = f.train.batch(&[0, 1]).unwrap_err().to_string();
    assert!(
        e.contains("broken.jpg: image data: expected a readable"),
        "{e}"
    );
    // ... or left out of its batch and counted (the default).
    let f = load_image_folder(&d, &FolderOptions::new(8, 8, 3)).unwrap();
    let (x, labels) = f.train.batch(&[0, 1]).unwrap();
    assert_eq!((x.shape(), labels), (&[1, 8, 8, 3][..], vec![1]));
    assert_eq!(f.train.skipped(), 1);
    let e = load_image_folder(&d.join("missing"), &FolderOptions::new(8, 8, 3))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn cifar_batches_on_disk() {
    let d = tmp("cifar");
    let mut bytes = Vec::new();
    for i in 0..3u8 {
        bytes.push(i);
        bytes.extend((0..3072).map(|p| ((p + i as usize) % 256) as u8));
    }
    std::fs::write(d.join("data_batch_1.bin"), &bytes).unwrap();
    std::fs::write(d.join("data_batch_2.bin"), &bytes[..cifar::RECORD]).unwrap();
    std::fs::write(d.join("test_batch.bin"), &bytes[..2 * cifar::RECORD]).unwrap();
    let (train, test) = load_cifar10(&d).unwrap();
    assert_eq!((train.len(), train.image_shape()), (4, [32, 32, 3]));
    assert_eq!(test.labels(), vec![0, 1]);
    // Pixel 0 of image 1: red byte 1, green byte 1025 % 256 = 1, blue 2049 % 256 = 1.
    assert_eq!(&train.image_bytes(1).unwrap()[..3], &[1, 1, 1]);
    std::fs::write(d.join("test_batch.bin"), &bytes[..100]).unwrap();
    let e = load_cifar10(&d).unwrap_err().to_string();
    assert!(e.contains("test_batch.bin: file size"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn kaggle_csv_on_disk() {
    let d = tmp("csv");
    let header: Vec<String> = std::iter::once("label".to_string())
        .chain((0..784).map(|i| format!("pixel{i}")))
        .collect();
    let row = |l: u8| {
        std::iter::once(l.to_string())
            .chain((0..784).map(|i| (i % 256).to_string()))
            .collect::<Vec<_>>()
            .join(",")
    };
    std::fs::write(
        d.join("train.csv"),
        format!("{}\n{}\n{}\n", header.join(","), row(3), row(8)),
    )
    .unwrap();
    let c = read_kaggle_csv(&d.join("train.csv")).unwrap();
    assert_eq!((c.images.len(), c.images.image_shape()), (2, [28, 28, 1]));
    let l = c.labeled(&d.join("train.csv")).unwrap();
    assert_eq!(l.labels(), vec![3, 8]);
    let e = read_kaggle_csv(&d.join("nope.csv"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.csv"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}
