//! Reliability: a catalogue of malformed inputs, SIGKILL at random moments
//! with resume, divergence, and determinism across thread counts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
mod common;

use common::{convnet, small_idx, text, tmp, TinyRun};

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn catalogue_of_malformed_inputs() {
    let d = tmp("catalogue");
    let data = d.join("idx");
    small_idx(&data, 200, 50);
    let idx_arg = format!("idx:{}", data.display());
    // A finished run that nothing below may change.
    let run = d.join("runs/good");
    let o = convnet(&[
        "train",
        "--data",
        &idx_arg,
        "--model",
        "4C3-P2-10",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        d.join("runs").to_str().unwrap(),
        "--name",
        "good",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let before = snapshot(&run);

    // Malformed files.
    let bad = d.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = bad.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    let good_labels = std::fs::read(data.join("train-labels-idx1-ubyte")).unwrap();
    let good_images = std::fs::read(data.join("train-images-idx3-ubyte")).unwrap();
    let idx_case = |label: &str, images: &[u8], labels: &[u8]| {
        let dir = bad.join(label);
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
            std::fs::copy(data.join(f), dir.join(f)).unwrap();
        }
        std::fs::write(dir.join("train-images-idx3-ubyte"), images).unwrap();
        std::fs::write(dir.join("train-labels-idx1-ubyte"), labels).unwrap();
        format!("idx:{}", dir.display())
    };
    let mut wrong_magic = good_images.clone();
    wrong_magic[0] = 0x12;
    let mut float_type = good_images.clone();
    float_type[2] = 0x0d;
    let truncated = good_images[..good_images.len() - 100].to_vec();
    let mut more_labels = good_labels.clone();
    more_labels[7] = 201; // the header says 201 labels, 200 follow
    let mut gz = vec![0x1f, 0x8b];
    gz.extend_from_slice(b"not really gzip");
    let header: Vec<String> = std::iter::once("label".into())
        .chain((0..784).map(|i| format!("pixel{i}")))
        .collect();
    let row = (0..784).map(|_| "0").collect::<Vec<_>>().join(",");
    let csv_short = write(
        "short.csv",
        format!("{}\n3,{}\n", header.join(","), &row[..row.len() - 2]).as_bytes(),
    );
    let csv_text = write(
        "text.csv",
        format!("{}\nx,{}\n", header.join(","), row).as_bytes(),
    );
    let csv_range = write(
        "range.csv",
        format!("{}\n3,300,{}\n", header.join(","), &row[2..]).as_bytes(),
    );
    let csv_header = write("header.csv", b"label,a,b,c\n1,2,3,4\n");
    let csv_empty = write("empty.csv", b"");
    let folder_empty = bad.join("folder-empty");
    std::fs::create_dir_all(folder_empty.join("cats")).unwrap();
    std::fs::create_dir_all(folder_empty.join("dogs")).unwrap();
    let folder_broken = bad.join("folder-broken");
    std::fs::create_dir_all(folder_broken.join("cats")).unwrap();
    std::fs::write(folder_broken.join("cats/x.jpg"), b"\xff\xd8 broken").unwrap();
    let folder_none = bad.join("folder-none");
    std::fs::create_dir_all(&folder_none).unwrap();
    let cifar = bad.join("cifar");
    std::fs::create_dir_all(&cifar).unwrap();
    std::fs::write(cifar.join("data_batch_1.bin"), vec![0u8; 3073 + 10]).unwrap();
    let cifar_label = bad.join("cifar-label");
    std::fs::create_dir_all(&cifar_label).unwrap();
    let mut rec = vec![0u8; 3073];
    rec[0] = 12;
    std::fs::write(cifar_label.join("data_batch_1.bin"), &rec).unwrap();
    std::fs::write(cifar_label.join("test_batch.bin"), &rec).unwrap();
    let model_json = write(
        "model.json",
        b"{\"input_shape\": [28, 28, 1], \"layers\": [{\"type\": \"Conv2D\", \"filters\": 4}]}",
    );
    let model_toml = write(
        "model.toml",
        b"input_shape = [28, 28, 1]\n[[layers]]\ntype = \"Dense\"\nunits = \"ten\"\n",
    );
    let model_shape = write("shape.json", b"{\"input_shape\": [4, 4, 1], \"layers\": [{\"type\": \"Conv2D\", \"filters\": 4, \"kernel_size\": [5, 5]}]}");
    // Graph model files: a dangling input, a shape mismatch at an Add.
    let graph_dangling = write(
        "dangling.json",
        b"{\"input_shape\": [8, 8, 1], \"layers\": [{\"type\": \"Conv2D\", \"filters\": 2, \"kernel_size\": [3, 3]}, {\"name\": \"sum\", \"inputs\": [\"conv2d\", \"ghost\"], \"type\": \"Add\"}]}",
    );
    let graph_add = write(
        "add.json",
        b"{\"input_shape\": [8, 8, 1], \"layers\": [{\"type\": \"Conv2D\", \"filters\": 2, \"kernel_size\": [3, 3], \"padding\": \"same\"}, {\"name\": \"sum\", \"inputs\": [\"conv2d\", \"input\"], \"type\": \"Add\"}]}",
    );
    let out = d.join("runs").to_str().unwrap().to_string();
    let run_s = run.to_str().unwrap().to_string();
    let bad_ckpt = d.join("runs/badckpt");
    std::fs::create_dir_all(bad_ckpt.join("checkpoints")).unwrap();
    std::fs::copy(run.join("run.json"), bad_ckpt.join("run.json")).unwrap();
    std::fs::write(bad_ckpt.join("checkpoints/LATEST"), b"../../etc").unwrap();
    let trunc_ckpt = d.join("runs/truncckpt");
    std::fs::create_dir_all(&trunc_ckpt).unwrap();
    for e in std::fs::read_dir(&run).unwrap().flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), trunc_ckpt.join(e.file_name())).unwrap();
        }
    }
    let w = std::fs::read(run.join("weights.safetensors")).unwrap();
    std::fs::write(trunc_ckpt.join("weights.safetensors"), &w[..w.len() - 9]).unwrap();
    let bad_json = d.join("runs/badjson");
    std::fs::create_dir_all(&bad_json).unwrap();
    std::fs::write(bad_json.join("run.json"), b"{ not json").unwrap();

    let mut cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "train".into(),
                "--data".into(),
                idx_case("magic", &wrong_magic, &good_labels),
                "--out".into(),
                out.clone(),
            ],
            "train-images-idx3-ubyte: magic number: expected 0x00000801 (labels) or 0x00000803 (images)",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                idx_case("float", &float_type, &good_labels),
                "--out".into(),
                out.clone(),
            ],
            "magic number: expected 0x00000801 (labels) or 0x00000803 (images): u8 data with 1 to 4 dimensions, found 0x00000d03",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                idx_case("trunc", &truncated, &good_labels),
                "--out".into(),
                out.clone(),
            ],
            "data: expected 156800 bytes for dimensions [200, 28, 28], found 156700 bytes",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                idx_case("count", &good_images, &more_labels),
                "--out".into(),
                out.clone(),
            ],
            "data: expected 201 bytes",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                idx_case("swap", &good_labels, &good_images),
                "--out".into(),
                out.clone(),
            ],
            "dimensions: expected 3 (count, rows, columns) for an image file, found 1",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                idx_case("gz", &gz, &good_labels),
                "--out".into(),
                out.clone(),
            ],
            "gzip stream: expected a complete gzip file",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                idx_case("empty", b"", &good_labels),
                "--out".into(),
                out.clone(),
            ],
            "magic number: expected 4 bytes, found a file of 0 bytes",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                format!("idx:{}", bad.join("nowhere").display()),
                "--out".into(),
                out.clone(),
            ],
            "nowhere/train-images-idx3-ubyte: No such file",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                format!("csv:{csv_short}"),
                "--out".into(),
                out.clone(),
            ],
            "line 2: expected 785",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                format!("csv:{csv_text}"),
                "--out".into(),
                out.clone(),
            ],
            "column 'label': expected an integer",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                format!("csv:{csv_range}"),
                "--out".into(),
                out.clone(),
            ],
            "pixel value 0..255",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                format!("csv:{csv_header}"),
                "--out".into(),
                out.clone(),
            ],
            "header.csv: header: expected label (optional) followed by a square number of pixel columns",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                format!("csv:{csv_empty}"),
                "--out".into(),
                out.clone(),
            ],
            "header: expected label,pixel0,...,pixel783, found an empty file",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                format!("folder:{}", folder_empty.display()),
                "--out".into(),
                out.clone(),
            ],
            "cats: class folder: expected at least one .jpg",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                format!("folder:{}", folder_none.display()),
                "--out".into(),
                out.clone(),
            ],
            "class folders: expected one sub-folder per class (e.g. cats/ and dogs/), found no sub-folders",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                format!("cifar10:{}", cifar.display()),
                "--out".into(),
                out.clone(),
            ],
            "data_batch_1.bin: file size: expected a positive multiple of 3073 bytes",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                format!("cifar10:{}", cifar_label.display()),
                "--out".into(),
                out.clone(),
            ],
            "label of record 0 (byte offset 0): expected a class 0..9, found 12",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                idx_arg.clone(),
                "--model".into(),
                model_json.clone(),
                "--out".into(),
                out.clone(),
            ],
            "model.json: invalid model file: layer 0 (Conv2D): missing field `kernel_size`",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                idx_arg.clone(),
                "--model".into(),
                model_toml.clone(),
                "--out".into(),
                out.clone(),
            ],
            "model.toml: invalid model file: layer 0 (Dense), field 'units': invalid type: string \"ten\", expected usize",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                idx_arg.clone(),
                "--model".into(),
                model_shape.clone(),
                "--out".into(),
                out.clone(),
            ],
            "smaller than the window",
        ),
        (
            vec!["summary".into(), graph_dangling.clone()],
            "Add 'sum'): input 'ghost' is not a layer of this model",
        ),
        (
            vec!["summary".into(), graph_add.clone()],
            "Add 'sum'): inputs [8, 8, 2] from 'conv2d', [8, 8, 1] from 'input'",
        ),
        (
            vec!["summary".into(), "8x8x3-I[4C1 | 4C3v]-10".into()],
            "inputs must agree on every axis but the last",
        ),
        (
            vec![
                "summary".into(),
                "vgg16".into(),
                "--input".into(),
                "16x16x3".into(),
            ],
            "vgg16 for inputs [16, 16, 3]",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                idx_arg.clone(),
                "--model".into(),
                "32C5-P2-Q3-10".into(),
                "--out".into(),
                out.clone(),
            ],
            "unknown layer 'Q3'",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                idx_arg.clone(),
                "--model".into(),
                "16x16x1-8C3-10".into(),
                "--out".into(),
                out.clone(),
            ],
            "the model expects inputs [16, 16, 1] but the data has [28, 28, 1]",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                idx_arg.clone(),
                "--model".into(),
                "8C3-P2-5".into(),
                "--out".into(),
                out.clone(),
            ],
            "the data has label 5 but the model has only 5 outputs",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                idx_arg.clone(),
                "--validation-split".into(),
                "1.5".into(),
                "--out".into(),
                out.clone(),
            ],
            "--validation-split 1.5: expected a fraction in [0, 1)",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                idx_arg.clone(),
                "--out".into(),
                out.clone(),
                "--name".into(),
                "good".into(),
            ],
            "already holds a run",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                idx_arg.clone(),
                "--batch-size".into(),
                "100000000".into(),
                "--model".into(),
                "256C3-256C3-10".into(),
                "--out".into(),
                out.clone(),
            ],
            "memory: training this model with batch size 100000000 needs about",
        ),
        (
            vec![
                "train".into(),
                "--resume".into(),
                bad_ckpt.to_str().unwrap().into(),
            ],
            "expected a checkpoint name",
        ),
        (
            vec![
                "train".into(),
                "--resume".into(),
                bad_json.to_str().unwrap().into(),
            ],
            "run.json: invalid run file: key must be a string",
        ),
        (
            vec!["evaluate".into(), trunc_ckpt.to_str().unwrap().into()],
            "weights.safetensors: not a valid safetensors file (truncated or corrupt?)",
        ),
        (
            vec![
                "evaluate".into(),
                d.join("runs/none").to_str().unwrap().into(),
            ],
            "none/run.json: No such file or directory (os error 2) (is",
        ),
        (
            vec![
                "predict".into(),
                run_s.clone(),
                bad.join("missing.png").to_str().unwrap().into(),
            ],
            "missing.png: no such file or folder",
        ),
        (
            vec![
                "predict".into(),
                run_s.clone(),
                "--csv".into(),
                csv_text.clone(),
            ],
            "text.csv: line 2, column 'label': expected an integer, found 'x'",
        ),
        (
            vec![
                "predict".into(),
                run_s.clone(),
                folder_broken.join("cats/x.jpg").to_str().unwrap().into(),
            ],
            "x.jpg: image data: expected a readable JPEG, PNG, BMP or GIF image",
        ),
        (
            vec![
                "explain".into(),
                run_s.clone(),
                "--index".into(),
                "99999".into(),
            ],
            "--index 99999: the data has 50 images",
        ),
        (
            vec!["summary".into(), "32C5-P2-64C5-P2-128-D2-10".into()],
            "'D2': dropout rate must be in [0, 1)",
        ),
    ];
    // A loop of symbolic links is named as one, not as a missing file.
    let loop_a = bad.join("loop-a");
    std::os::unix::fs::symlink(bad.join("loop-b"), &loop_a).unwrap();
    std::os::unix::fs::symlink(&loop_a, bad.join("loop-b")).unwrap();
    cases.push((
        vec![
            "predict".into(),
            run_s.clone(),
            loop_a.to_str().unwrap().into(),
        ],
        "loop-a: Too many levels of symbolic links",
    ));
    // 30,000 nested brackets (a stack overflow, exit 134, before).
    let deep = format!("{}10{}", "[".repeat(30_000), "]".repeat(30_000));
    cases.push((
        vec!["summary".into(), deep],
        "brackets nested more than 100 deep",
    ));
    // Settings that used to train to nonsense with exit 0 (gradient ascent,
    // a negative rate, NaN losses): refused before anything is read.
    for (flags, needle) in [
        (
            &["--lr=-1"][..],
            "--lr -1: expected a finite learning rate > 0",
        ),
        (
            &["--lr", "NaN"],
            "--lr NaN: expected a finite learning rate > 0",
        ),
        (
            &["--lr", "inf"],
            "--lr inf: expected a finite learning rate > 0",
        ),
        (
            &["--schedule", "exp:-1"],
            "expected a finite decay > 0, found -1",
        ),
        (&["--schedule", "step:0:0.5"], "expected EVERY >= 1 epoch"),
        (
            &["--schedule", "step:2:nan"],
            "expected a finite FACTOR > 0",
        ),
        (
            &["--optimizer", "sgd", "--momentum", "5"],
            "--momentum 5: expected a value in [0, 1)",
        ),
        (&["--l2=-0.1"], "--l2 -0.1: expected a finite value >= 0"),
        (&["--validation-split", "NaN"], "--validation-split NaN"),
        (
            &["--batch-size", "0"],
            "--batch-size 0: expected at least 1",
        ),
    ] {
        let mut a: Vec<String> = vec!["train".into(), "--data".into(), idx_arg.clone()];
        a.extend(flags.iter().map(|f| f.to_string()));
        a.extend(["--out".into(), out.clone()]);
        cases.push((a, needle));
    }
    let mut a: Vec<String> = vec!["finetune".into(), run_s.clone(), "--head".into()];
    a.extend(["10", "--unfreeze-top", "1", "--unfreeze-lr=-1e-5"].map(String::from));
    cases.push((
        a,
        "--unfreeze-lr -0.00001: expected a finite learning rate > 0",
    ));
    // The README states the count: keep the two in step.
    assert_eq!(cases.len(), 52, "{} cases", cases.len());
    for (args, needle) in &cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = convnet(&a);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {t}");
        assert!(t.contains(needle), "{a:?}: expected {needle:?} in {t}");
        assert!(!t.contains("panicked"), "{a:?}: {t}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.trim_end().lines().count() <= 3,
            "{a:?}: not a short message: {err}"
        );
        assert!(o.stdout.is_empty(), "{a:?}: printed before failing: {t}");
    }
    assert_eq!(
        snapshot(&run),
        before,
        "a failed command changed the saved run"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn divergence_stops_with_a_clear_message_and_exit_code_1() {
    let d = tmp("nan");
    let data = d.join("idx");
    small_idx(&data, 200, 50);
    let data_arg = format!("idx:{}", data.display());
    let o = convnet(&[
        "train",
        "--data",
        &data_arg,
        "--model",
        "4C3-P2-10",
        "--optimizer",
        "sgd",
        "--lr",
        "1e30",
        "--epochs",
        "2",
        "--quiet",
        "--out",
        d.join("runs").to_str().unwrap(),
        "--name",
        "nan",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("epoch 1, batch") && t.contains("lower learning rate"),
        "{t}"
    );
    assert!(
        !d.join("runs/nan/checkpoints/LATEST").exists(),
        "no checkpoint of a diverged epoch"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn same_seed_same_weights_whatever_the_thread_count() {
    let d = tmp("threads");
    let data = d.join("idx");
    small_idx(&data, 300, 50);
    let data_arg = format!("idx:{}", data.display());
    let out = d.join("runs");
    let mut weights = Vec::new();
    for (name, threads) in [("t1", "1"), ("t2", "2"), ("t2b", "2")] {
        let o = TinyRun::new(&out, name)
            .command_defaults()
            .with("--data", &data_arg)
            .with("--model", "8C3-BN-P2-D0.2-16-10")
            .with("--epochs", "2")
            .with("--batch-size", "30")
            .with("--threads", threads)
            .run();
        assert!(o.status.success(), "{}", text(&o));
        weights.push(std::fs::read(out.join(name).join("weights.safetensors")).unwrap());
    }
    assert!(weights[1] == weights[2], "same threads, different weights");
    assert!(
        weights[0] == weights[1],
        "1 and 2 threads give different weights"
    );
    let _ = std::fs::remove_dir_all(&d);
}
