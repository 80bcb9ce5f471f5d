//! Image folders read lazily: a folder whose decoded images would not fit
//! the memory budget trains in bounded memory, and unreadable images are
//! skipped and counted or stop training with the file named.

mod common;
use common::{convnet, make_folder, png_bomb, text, tmp, TinyRun};

fn peak_mib(out: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.starts_with("Peak memory: "))
        .unwrap_or_else(|| panic!("no peak memory line in:\n{out}"));
    line["Peak memory: ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_folder_larger_than_the_budget_trains_in_bounded_memory() {
    let d = tmp("big-folder");
    // 2,000 images of 96x96x3: 221 MB as f32 (what decoding up front held,
    // before any copy), 55 MB as bytes; with no cache, only the batches in
    // flight are decoded (measured: 80-100 MiB whole-process peak, most of it
    // the allocator's retained decoding buffers, flat in the folder's size).
    make_folder(&d.join("data"), 2000, 96);
    let data = format!("folder:{}", d.join("data").display());
    let out = d.join("runs");
    let o = convnet(&[
        "train",
        "--data",
        &data,
        "--input",
        "96x96x3",
        "--model",
        "4C3S4-F-2",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--validation-split",
        "0.1",
        "--cache-mib",
        "0",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let peak = peak_mib(&t);
    assert!(
        peak < 160,
        "peak {peak} MiB: the folder's 221 MB of f32 pixels must not be held\n{t}"
    );
    assert!(t.contains("on 200 held-out samples"), "{t}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn unreadable_images_are_skipped_and_counted_or_stop_training_naming_the_file() {
    let d = tmp("bad-images");
    let data_dir = d.join("data");
    make_folder(&data_dir, 40, 16);
    std::fs::write(data_dir.join("a/zz-truncated.jpg"), b"\xff\xd8\xff\xe0 cut").unwrap();
    let data = format!("folder:{}", data_dir.display());
    let out = d.join("runs");
    let args = |policy: &'static str| -> Vec<String> {
        [
            "train",
            "--data",
            &data,
            "--input",
            "16x16x3",
            "--model",
            "2C3-F-2",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--validation-split",
            "0",
            "--on-bad-image",
            policy,
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |policy| {
        let a = args(policy);
        convnet(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let o = run("skip");
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    // Warned once (not once per epoch), counted once.
    assert_eq!(t.matches("zz-truncated.jpg").count(), 1, "{t}");
    assert!(t.contains("Skipped 1 unreadable image(s)"), "{t}");
    let o = run("fail");
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("zz-truncated.jpg: image data"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    let o = run("maybe");
    assert!(text(&o).contains("--on-bad-image 'maybe': expected skip or fail"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn class_names_given_at_training_label_predictions_and_pictures() {
    let d = tmp("class-names");
    make_folder(&d.join("data"), 20, 16);
    let data = format!("folder:{}", d.join("data").display());
    let out = d.join("runs");
    let o = TinyRun::new(&out, "named")
        .with("--data", &data)
        .with("--input", "16x16x3")
        .with("--model", "2C3-F-2")
        .with("--class-names", "left, right")
        .command_defaults()
        .run();
    assert!(o.status.success(), "{}", text(&o));
    let run = out.join("named");
    let cfg = std::fs::read_to_string(run.join("run.json")).unwrap();
    assert!(
        cfg.contains("\"left\"") && cfg.contains("\"right\""),
        "{cfg}"
    );
    let image = d.join("data/a/00000.jpg");
    let o = convnet(&["predict", run.to_str().unwrap(), image.to_str().unwrap()]);
    let t = text(&o);
    assert!(
        o.status.success() && (t.contains("left") || t.contains("right")),
        "{t}"
    );
    let o = convnet(&[
        "train",
        "--data",
        &data,
        "--input",
        "16x16x3",
        "--model",
        "2C3-F-2",
        "--class-names",
        "a,b,c",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        text(&o).contains("--class-names 3 names, the model has 2 classes"),
        "{}",
        text(&o)
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Image bombs (20000x20000 gray PNGs of about 400 KB that decode to 400 MB,
/// 1.2 GB as RGB) in a training folder and given to `predict`: refused from
/// their header, named, and the process stays small (eight of them took a
/// training to 4,256 MiB before).
#[test]
fn image_bombs_are_refused_from_their_header_in_bounded_memory() {
    let d = tmp("bombs");
    make_folder(&d.join("data"), 40, 32);
    let bomb = png_bomb(20_000);
    for i in 0..8 {
        let class = if i % 2 == 0 { "a" } else { "b" };
        std::fs::write(
            d.join("data").join(class).join(format!("bomb{i}.png")),
            &bomb,
        )
        .unwrap();
    }
    let data = format!("folder:{}", d.join("data").display());
    let out = d.join("runs");
    let o = TinyRun::new(&out, "r")
        .command_defaults()
        .with("--data", &data)
        .with("--input", "32x32x3")
        .with("--model", "4C3-P2-F-2")
        .with("--batch-size", "8")
        .run();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("bomb") && t.contains("20000x20000 = 400000000 pixels"),
        "{t}"
    );
    assert!(t.contains("Skipped 8 unreadable image(s)"), "{t}");
    let peak = peak_mib(&t);
    assert!(peak < 400, "training with 8 bombs peaked at {peak} MiB");
    // predict: an error naming the bomb, or with skip the others predicted.
    let run = out.join("r");
    let bomb0 = d.join("data/a/bomb0.png");
    let o = convnet(&["predict", run.to_str().unwrap(), bomb0.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("bomb0.png: image size: expected at most"),
        "{}",
        text(&o)
    );
    let folder = d.join("data/a");
    let o = convnet(&[
        "predict",
        run.to_str().unwrap(),
        folder.to_str().unwrap(),
        "--on-bad-image",
        "skip",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().count(),
        20,
        "{t}"
    );
    assert!(t.contains("Skipped 4 unreadable image(s)"), "{t}");
    // A lower limit, set for one command.
    let small = d.join("data/a/00000.jpg");
    let o = convnet(&[
        "predict",
        run.to_str().unwrap(),
        small.to_str().unwrap(),
        "--max-pixels",
        "100",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("32x32 = 1024 pixels"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&d);
}
