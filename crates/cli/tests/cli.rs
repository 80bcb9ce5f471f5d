//! Tests that drive the built `convnet` binary.

mod common;

use common::{convnet, text, tmp, TinyRun};
use std::path::Path;
use std::process::Output;

#[test]
fn notation_round_trips_to_keras_parameter_counts() {
    for (notation, extra, total) in [
        ("32C5-P2-64C5-P2-128-10", &[][..], "454,922"),
        ("32C5-P2-64C5-P2-1024-10", &[][..], "3,274,634"),
        ("32C5-P2-64C5-P2-128-D0.4-10", &[][..], "454,922"),
        (
            "784-[32C3-BN-32C3-BN-32C5S2s-BN-D0.4]-[64C3-BN-64C3-BN-64C5S2s-BN-D0.4]-128C4-BN-F-D0.4-10",
            &["--padding", "valid"][..],
            "327,242",
        ),
    ] {
        let mut args = vec!["summary", notation];
        args.extend_from_slice(extra);
        let o = convnet(&args);
        let t = text(&o);
        assert!(o.status.success(), "{notation}: {t}");
        assert!(t.contains(&format!("Total params: {total}")), "{notation}: {t}");
    }
    let o = convnet(&["summary", "784-[32C3v-BN-32C3v-BN-32C5S2-BN-D0.4]-[64C3v-BN-64C3v-BN-64C5S2-BN-D0.4]-128C4v-BN-F-D0.4-10"]);
    assert!(
        text(&o).contains("Non-trainable params: 832"),
        "{}",
        text(&o)
    );
    let o = convnet(&["summary", "32C5S2-10", "--formulas"]);
    assert!(
        text(&o).contains("floor((28 + 3 - 5) / 2) + 1 = 14"),
        "{}",
        text(&o)
    );
}

#[test]
fn every_malformed_notation_gets_a_pointed_error_and_exit_code_2() {
    for (notation, message, caret) in [
        ("32C5-P2-X5-10", "unknown layer 'X5'", "          ^^"),
        ("32C5-Q-10", "unknown layer 'Q'", "       ^"),
        ("32CC5-10", "a conv is NCk", "  ^^^^^"),
        (
            "32C5-D1.5-10",
            "dropout rate must be in [0, 1)",
            "       ^^^^",
        ),
        ("32C5-Dx-10", "dropout needs a rate", "       ^^"),
        ("32C5-P0-10", "a max-pool is Pk", "       ^^"),
        ("32C5-Ak-10", "an avg-pool is Ak", "       ^^"),
        ("32C5--10", "empty token", "      "),
        ("[32C5-P2-10", "unbalanced brackets", "  ^"),
        ("32C5-P2]-10", "without a matching '['", "         ^"),
        (
            "32C5-P2-64C29v-10",
            "smaller than the window",
            "          ^^^^^^",
        ),
        ("32C5-128-P2-10", "needs an image input", "           ^^"),
    ] {
        let o = convnet(&["summary", notation]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{notation}: {t}");
        assert!(
            t.contains(message),
            "{notation}: expected {message:?} in {t}"
        );
        assert!(
            t.contains(&format!("  {notation}\n{caret}")),
            "{notation}: caret {caret:?} in {t}"
        );
        assert!(!t.contains("panicked") && !t.contains("backtrace"), "{t}");
    }
}

#[test]
fn bad_usage_exits_with_2_and_one_line() {
    for (args, message) in [
        (
            &["train", "--optimizer", "adamax"][..],
            "--optimizer 'adamax': expected adam, adamw, sgd or rmsprop",
        ),
        (
            &["train", "--schedule", "exp"][..],
            "--schedule 'exp': expected constant, exp:DECAY",
        ),
        (
            &["train", "--data", "nope"][..],
            "--data 'nope': expected mnist, fashion-mnist",
        ),
        (
            &["evaluate", "/nonexistent/run"][..],
            "/nonexistent/run/run.json: No such file",
        ),
        (
            &["summary", "missing.toml"][..],
            "missing.toml: cannot read model file",
        ),
        (
            &["summary", "resnet20", "--classes", "0"][..],
            "--classes must be at least 1",
        ),
        (&["train", "--unfreeze", "2"][..], "--resume"),
        (
            &["train", "--shards", "0"][..],
            "--shards must be at least 1",
        ),
        (
            &["train", "--shards", "2", "--sync-bn"][..],
            "--sync-bn needs MPI ranks",
        ),
    ] {
        let o = convnet(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(
            o.stdout.is_empty(),
            "{args:?} printed to stdout: {}",
            text(&o)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        // clap's own usage errors add a usage block; ours are one line.
        if args[0] != "train" || args[1] != "--unfreeze" {
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        }
        assert!(
            err.starts_with("error: ") && err.contains(message),
            "{args:?}: {err}"
        );
    }
    // An unknown command: clap's message names it.
    let o = convnet(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("unrecognized subcommand 'frobnicate'"),
        "{}",
        text(&o)
    );
    let o = convnet(&["train", "--help"]);
    assert!(o.status.success() && text(&o).contains("--validation-split"));
}

#[test]
fn readme_model_files_parse() {
    let dir = tmp("files");
    let toml = r#"
input_shape = [28, 28, 1]

[[layers]]
type = "Conv2D"
filters = 32
kernel_size = [5, 5]
padding = "same"
strides = [1, 1]
activation = { name = "relu" }

[[layers]]
type = "MaxPooling2D"
pool_size = [2, 2]

[[layers]]
type = "Flatten"

[[layers]]
type = "Dense"
units = 10
activation = { name = "softmax" }
"#;
    let p = dir.join("m.toml");
    std::fs::write(&p, toml).unwrap();
    let o = convnet(&["summary", p.to_str().unwrap()]);
    // 5*5*32+32 + 14*14*32*10+10
    assert!(text(&o).contains("Total params: 63,562"), "{}", text(&o));
    let json = r#"{"input_shape":[8,8,3],"layers":[{"type":"Conv2D","filters":4,"kernel_size":[3,3]},{"type":"GlobalAveragePooling2D"},{"type":"Dense","units":1,"activation":{"name":"sigmoid"}}]}"#;
    let p = dir.join("m.json");
    std::fs::write(&p, json).unwrap();
    let o = convnet(&["summary", p.to_str().unwrap()]);
    assert!(text(&o).contains("Total params: 117"), "{}", text(&o));
    std::fs::write(
        &p,
        r#"{"input_shape":[8,8,3],"layers":[{"type":"Conv3D"}]}"#,
    )
    .unwrap();
    let o = convnet(&["summary", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("m.json") && text(&o).contains("Conv3D"),
        "{}",
        text(&o)
    );
}

/// The tiny run of these tests: the shared one, no `--epochs` of its own.
fn train(out: &Path, name: &str, extra: &[&str]) -> Output {
    TinyRun::new(out, name)
        .without("--epochs")
        .withs(extra)
        .run()
}

#[test]
fn train_save_evaluate_and_resume() {
    let out = tmp("train");
    let o = train(&out, "a", &["--epochs", "2"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("Total params") && t.contains("Test accuracy"),
        "{t}"
    );
    let run = out.join("a");
    for f in [
        "run.json",
        "model.json",
        "weights.safetensors",
        "history.csv",
        "metrics.json",
        "checkpoints/LATEST",
    ] {
        assert!(run.join(f).exists(), "missing {f}");
    }
    assert_eq!(
        std::fs::read_to_string(run.join("history.csv"))
            .unwrap()
            .lines()
            .count(),
        3
    );

    // Save -> load -> identical predictions: evaluate reproduces the test accuracy printed by train.
    let acc = |s: &str| {
        s.lines()
            .find(|l| l.contains("Test accuracy"))
            .map(|l| l.split_whitespace().nth(2).unwrap().to_string())
    };
    let o2 = convnet(&["evaluate", run.to_str().unwrap()]);
    let t2 = text(&o2);
    assert!(o2.status.success(), "{t2}");
    let train_acc = acc(&t).unwrap();
    assert!(
        t2.contains(&format!("accuracy {train_acc}")),
        "train said {train_acc}, evaluate said {t2}"
    );

    // Train 1 epoch, resume to 2: the same weights as the uninterrupted run.
    let o = train(&out, "b", &["--epochs", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = convnet(&[
        "train",
        "--resume",
        out.join("b").to_str().unwrap(),
        "--epochs",
        "2",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let wa = std::fs::read(run.join("weights.safetensors")).unwrap();
    let wb = std::fs::read(out.join("b").join("weights.safetensors")).unwrap();
    assert!(
        wa == wb,
        "resumed weights differ from the uninterrupted run"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("b/history.csv"))
            .unwrap()
            .lines()
            .count(),
        3
    );
    // A second run into the same name is refused without touching the first.
    let o = train(&out, "a", &["--epochs", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read(run.join("weights.safetensors")).unwrap(), wa);
    let _ = std::fs::remove_dir_all(&out);
}

/// `convnet predict ARGS --output DST`, which must succeed; DST's text.
fn predicted_rows(dst: &Path, args: &[&str]) -> String {
    let mut all = vec!["predict"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--output", dst.to_str().unwrap()]);
    let o = convnet(&all);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::read_to_string(dst).unwrap()
}

#[test]
fn predict_images_folders_and_kaggle_csv() {
    let out = tmp("predict");
    // A tiny binary cats-vs-dogs net on the bundled photos, with augmentation.
    let o = TinyRun::new(&out, "cd")
        .with("--data", "folder:../../data/cats-vs-dogs")
        .with("--input", "24x24x3")
        .with("--model", "4C3-P2-8-1")
        .with("--batch-size", "16")
        .withs(&["--rotation", "10", "--zoom", "0.1", "--horizontal-flip"])
        .with("--brightness", "0.8,1.2")
        .with("--validation-split", "0.25")
        .without("--limit")
        .without("--seed")
        .run();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("Validation accuracy") && t.contains("on 20 held-out"),
        "{t}"
    );
    let run = out.join("cd");
    let csv_out = out.join("pred.csv");
    let o = convnet(&[
        "predict",
        run.to_str().unwrap(),
        "../../data/cats-vs-dogs",
        "--output",
        csv_out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let rows = std::fs::read_to_string(&csv_out).unwrap();
    assert_eq!(rows.lines().count(), 81, "header + 80 images");
    assert!(rows.lines().nth(1).unwrap().contains("cat.0.jpg"));
    assert!(rows
        .lines()
        .skip(1)
        .all(|l| l.contains(",cats,") || l.contains(",dogs,")));
    // Read and predicted a chunk at a time (memory for 7 images), with
    // TTA: the same rows, bit for bit, as all 80 at once.
    let chunked = |chunk: &str, name: &str| {
        let args = [run.to_str().unwrap(), "../../data/cats-vs-dogs"];
        let opts = ["--batch-size", "7", "--tta", "3", "--chunk", chunk];
        predicted_rows(&out.join(name), &[&args[..], &opts[..]].concat())
    };
    let whole = chunked("80", "whole.csv");
    assert_eq!(whole.lines().count(), 81);
    assert_eq!(chunked("7", "chunked.csv"), whole);
    let o = convnet(&[
        "predict",
        run.to_str().unwrap(),
        "../../data/cats-vs-dogs/dogs/dog.0.jpg",
    ]);
    assert!(
        o.status.success() && text(&o).contains("dog.0.jpg\t"),
        "{}",
        text(&o)
    );

    // A digit net on MNIST, then a Kaggle test CSV -> submission.
    let o = train(&out, "digits", &["--epochs", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let header: Vec<String> = (0..784).map(|i| format!("pixel{i}")).collect();
    let row = |v: usize| {
        (0..784)
            .map(|i| ((i * v) % 256).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let test_csv = out.join("test.csv");
    std::fs::write(
        &test_csv,
        format!("{}\n{}\n{}\n{}\n", header.join(","), row(1), row(2), row(3)),
    )
    .unwrap();
    let sub = out.join("submission.csv");
    let o = convnet(&[
        "predict",
        out.join("digits").to_str().unwrap(),
        "--csv",
        test_csv.to_str().unwrap(),
        "--submission",
        sub.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let s = std::fs::read_to_string(&sub).unwrap();
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines[0], "ImageId,Label");
    assert_eq!(lines.len(), 4);
    assert!(lines[3].starts_with("3,"));
    // The CSV streamed two rows at a time gives the same probabilities.
    let probs = |chunk: &str| {
        let digits = out.join("digits");
        let args = [
            digits.to_str().unwrap(),
            "--csv",
            test_csv.to_str().unwrap(),
        ];
        let opts = ["--batch-size", "2", "--chunk", chunk];
        predicted_rows(
            &out.join(format!("csv-{chunk}.csv")),
            &[&args[..], &opts[..]].concat(),
        )
    };
    let once = probs("4");
    assert!(once.lines().nth(3).unwrap().starts_with("3,"), "{once}");
    assert_eq!(probs("2"), once);
    // Bad inputs exit with 2.
    let o = convnet(&["predict", run.to_str().unwrap(), "missing.png"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = convnet(&["train", "--zoom", "1.5", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("zoom_range"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn train_writes_pictures_and_report_and_explain_draws_the_net() {
    let out = tmp("pictures");
    let o = train(&out, "p", &["--epochs", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let run = out.join("p");
    for (f, min_w) in [
        ("loss.png", 700),
        ("accuracy.png", 700),
        ("confusion_matrix.png", 500),
        ("mistakes.png", 600),
    ] {
        let img = image::open(run.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(
            img.width() >= min_w,
            "{f}: {}x{}",
            img.width(),
            img.height()
        );
    }
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    for needle in [
        "<img src=\"loss.png\"",
        "confusion_matrix.png",
        "mistakes.png",
        "floor((28 + 4 - 5) / 1) + 1 = 28",
        "Test accuracy",
    ] {
        assert!(html.contains(needle), "report.html lacks {needle}");
    }
    let o = convnet(&["explain", run.to_str().unwrap(), "--index", "0"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("true class: 7"), "{t}");
    for f in [
        "input.png",
        "layer00_conv_maps.png",
        "filters.png",
        "layer01_pooling.png",
        "probabilities.png",
    ] {
        assert!(
            run.join("explain/index-0").join(f).exists(),
            "missing {f}: {t}"
        );
    }
    let o = convnet(&["explain", run.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn experiment_and_ensemble_commands_on_a_tiny_budget() {
    let out = tmp("experiment");
    let o = convnet(&[
        "experiment",
        "conv-pool-pairs",
        "--epochs",
        "1",
        "--train-size",
        "200",
        "--val-size",
        "100",
        "--test-size",
        "100",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("| 2 pairs | `[24C5-P2]-[48C5-P2]-256-10` |"),
        "{t}"
    );
    let dir = out.join("conv-pool-pairs");
    assert_eq!(
        std::fs::read_to_string(dir.join("results.csv"))
            .unwrap()
            .lines()
            .count(),
        4
    );
    assert!(image::open(dir.join("val_accuracy.png")).unwrap().width() == 900);
    let o = convnet(&[
        "experiment",
        "8C3-P2-10,4C3-P2-10",
        "--epochs",
        "1",
        "--train-size",
        "100",
        "--val-size",
        "50",
        "--test-size",
        "50",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // Stopped after its first variant: --resume keeps it and trains the second
    // to the same numbers as the uninterrupted run.
    let custom = out.join("custom");
    let full = std::fs::read_to_string(custom.join("results.json")).unwrap();
    let mut progress: serde_json::Value =
        serde_json::from_slice(&std::fs::read(custom.join("progress.json")).unwrap()).unwrap();
    progress["results"].as_array_mut().unwrap().truncate(1);
    std::fs::write(custom.join("progress.json"), progress.to_string()).unwrap();
    let again = |extra: &[&str]| {
        let mut args = vec![
            "experiment",
            "8C3-P2-10,4C3-P2-10",
            "--epochs",
            "1",
            "--train-size",
            "100",
            "--val-size",
            "50",
            "--test-size",
            "50",
            "--out",
            out.to_str().unwrap(),
            "--resume",
        ];
        args.extend_from_slice(extra);
        convnet(&args)
    };
    let o = again(&[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("[1/2] 8C3-P2-10: done in an earlier run"), "{t}");
    // Equal but for the second variant's wall time; the first is the saved one, seconds included.
    let strip = |t: &str| -> serde_json::Value {
        let mut v: serde_json::Value = serde_json::from_str(t).unwrap();
        v[1]["seconds_per_epoch"] = 0.into();
        v[1]["history"]["epochs"][0]["seconds"] = 0.into();
        v
    };
    assert_eq!(
        strip(&std::fs::read_to_string(custom.join("results.json")).unwrap()),
        strip(&full)
    );
    // Another budget is refused rather than mixed in.
    let o = again(&["--seed", "7"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("the finished variants used another budget"),
        "{}",
        text(&o)
    );
    let o = convnet(&[
        "experiment",
        "no-such-family",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let ens = out.join("ens");
    let o = convnet(&[
        "ensemble",
        "8C3-P2-10",
        "--nets",
        "2",
        "--epochs",
        "1",
        "--train-size",
        "300",
        "--test-size",
        "100",
        "--quiet",
        "--out",
        ens.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("| net 2 |") && t.contains("**ensemble**"), "{t}");
    assert!(
        ens.join("net-01/weights.safetensors").exists() && ens.join("net-02/model.json").exists()
    );
    assert!(ens.join("ensemble.json").exists());
    // The saved ensemble re-evaluated: the same members and ensemble accuracy.
    let o = convnet(&[
        "ensemble",
        "--evaluate",
        ens.to_str().unwrap(),
        "--test-size",
        "100",
    ]);
    let e = text(&o);
    assert!(o.status.success(), "{e}");
    let ens_line = |t: &str| {
        t.lines()
            .find(|l| l.contains("**ensemble**"))
            .unwrap()
            .split('|')
            .nth(2)
            .unwrap()
            .to_string()
    };
    assert_eq!(ens_line(&t), ens_line(&e), "{t}\n{e}");
    assert!(e.contains("| net 2 |") && e.contains("| 2 |"), "{e}");
    // With test-time augmentation (3 views) it runs and says so.
    let o = convnet(&[
        "ensemble",
        "--evaluate",
        ens.to_str().unwrap(),
        "--test-size",
        "100",
        "--tta",
        "3",
    ]);
    assert!(
        text(&o).contains("test-time augmentation: 3 views"),
        "{}",
        text(&o)
    );
    // predict takes the ensemble's folder: the members' mean probability.
    let digit = out.join("one.png");
    image::GrayImage::from_fn(28, 28, |x, y| {
        image::Luma([if x == 14 && y > 5 && y < 23 { 255 } else { 0 }])
    })
    .save(&digit)
    .unwrap();
    let o = convnet(&[
        "predict",
        ens.to_str().unwrap(),
        digit.to_str().unwrap(),
        "--tta",
        "2",
    ]);
    let p = text(&o);
    assert!(o.status.success(), "{p}");
    assert!(p.contains("one.png\t"), "{p}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bn_momentum_sets_every_batch_norm_and_refuses_bad_values() {
    let out = tmp("bn-momentum");
    let run = |extra: &[&str], model: &str, name: &str| {
        TinyRun::new(&out, name)
            .command_defaults()
            .with("--model", model)
            .with("--limit", "200")
            .withs(extra)
            .run()
    };
    let o = run(&["--bn-momentum", "0.9"], "8C3-BN-P2-16-BN-10", "bn");
    assert!(o.status.success(), "{}", text(&o));
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("bn/run.json")).unwrap()).unwrap();
    let momenta: Vec<f64> = cfg["model"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["type"] == "BatchNormalization")
        .map(|l| l["momentum"].as_f64().unwrap())
        .collect();
    assert_eq!(momenta.len(), 2);
    assert!(
        momenta.iter().all(|m| (m - 0.9).abs() < 1e-6),
        "{momenta:?}"
    );
    for (extra, model, msg) in [
        (
            &["--bn-momentum", "1.5"][..],
            "8C3-BN-10",
            "--bn-momentum 1.5: expected a value in [0, 1)",
        ),
        (
            &["--bn-momentum", "0.9"][..],
            "8C3-10",
            "the model has no BatchNormalization layer",
        ),
    ] {
        let o = run(extra, model, "bad");
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains(msg), "{}", text(&o));
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// A short run of a residual net with batch norm (#34): ResNet-20, 1 epoch
/// on 2,000 MNIST images (28 steps). With Keras's moving statistics
/// (momentum 0.99 from mean 0 and variance 1) it evaluates near chance (12 %
/// when written); with the default bias-corrected averages, within a few
/// points of its training accuracy (57 % test, 61 % training).
#[test]
fn a_short_batch_norm_run_evaluates_near_its_training_accuracy() {
    let out = tmp("bn-short");
    let run = |extra: &[&str], name: &str| -> (f64, f64) {
        TinyRun::new(&out, name)
            .command_defaults()
            .with("--model", "resnet20")
            .with("--limit", "2000")
            .withs(extra)
            .ok();
        let dir = out.join(name);
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
        let h = std::fs::read_to_string(dir.join("history.csv")).unwrap();
        let header: Vec<&str> = h.lines().next().unwrap().split(',').collect();
        let row: Vec<&str> = h.lines().nth(1).unwrap().split(',').collect();
        let col = header.iter().position(|c| *c == "accuracy").unwrap();
        let train: f64 = row[col].parse().unwrap();
        (train, m["test_accuracy"].as_f64().unwrap())
    };
    let (train, test) = run(&[], "debiased");
    assert!(train > 0.45, "training accuracy {train}");
    assert!(
        test > train - 0.08,
        "test accuracy {test} vs training accuracy {train}"
    );
    // Keras's exact update, kept behind the flag: the statistics have not
    // left their initial values.
    let (train_k, test_k) = run(&["--bn-keras-moving-average"], "keras");
    assert!(
        test_k < 0.3 && test_k < train_k - 0.2,
        "with Keras's moving average: test {test_k} vs training {train_k}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// A model that ends without softmax predicts raw outputs: the printout and
/// the CSV say so instead of calling them probabilities (#34).
#[test]
fn raw_outputs_are_not_called_probabilities() {
    let out = tmp("raw-outputs");
    let file = out.join("linear.json");
    std::fs::write(
        &file,
        r#"{"input_shape": [28, 28, 1], "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 10}]}"#,
    )
    .unwrap();
    TinyRun::new(&out, "r")
        .command_defaults()
        .with("--model", file.to_str().unwrap())
        .with("--loss", "mse")
        .with("--limit", "200")
        .ok();
    let img = out.join("digit.png");
    image::GrayImage::from_fn(28, 28, |x, y| image::Luma([((x * y) % 256) as u8]))
        .save(&img)
        .unwrap();
    let run = out.join("r");
    let o = convnet(&["predict", run.to_str().unwrap(), img.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("(raw output, not a probability)"),
        "{}",
        text(&o)
    );
    let csv = out.join("p.csv");
    let o = convnet(&[
        "predict",
        run.to_str().unwrap(),
        img.to_str().unwrap(),
        "--output",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let header = std::fs::read_to_string(&csv).unwrap();
    assert!(
        header.starts_with("input,label,class,out0,out1"),
        "{header}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
