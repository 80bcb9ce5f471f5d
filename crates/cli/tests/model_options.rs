//! Options that change how a model is built or run: the notation's
//! `--activation`, and `--precision bf16` on train and the inference commands.

mod common;

use common::{convnet, text, tmp, TinyRun};

#[test]
fn activation_sets_the_notations_convs_and_hidden_dense_layers() {
    let out = tmp("activation");
    TinyRun::new(&out, "r")
        .with("--model", "8C5-P2-DW3-16-10")
        .with("--activation", "relu6")
        .with("--limit", "200")
        .ok();
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("r/model.json")).unwrap()).unwrap();
    let acts: Vec<String> = model["model"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| Some(l.get("activation")?["name"].as_str()?.to_string()))
        .collect();
    assert_eq!(acts, ["relu6", "relu6", "relu6", "softmax"], "{model}");
    let o = TinyRun::new(&out, "bad").with("--activation", "gelu").run();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--activation 'gelu'"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn evaluate_and_predict_in_bf16_stay_near_fp32() {
    let out = tmp("bf16");
    // The second conv reads 8 channels: it runs in bf16 where the CPU can.
    TinyRun::new(&out, "r")
        .with("--model", "8C5-P2-16C3-P2-16-10")
        .ok();
    let run = out.join("r");
    let eval = |precision: &str| {
        let o = convnet(&["evaluate", run.to_str().unwrap(), "--precision", precision]);
        assert!(o.status.success(), "{}", text(&o));
        let t = text(&o);
        let loss: f32 = t.split_whitespace().nth(1).unwrap().parse().unwrap();
        let acc: f32 = t.split_whitespace().nth(4).unwrap().parse().unwrap();
        (loss, acc)
    };
    let (l32, a32) = eval("fp32");
    let (l16, a16) = eval("mixed_bfloat16");
    assert!((l32 - l16).abs() < 0.01, "loss {l32} vs {l16}");
    assert!((a32 - a16).abs() <= 0.005, "accuracy {a32} vs {a16}");
    let img = out.join("digit.png");
    image::GrayImage::from_fn(28, 28, |x, y| image::Luma([((x * 9 + y * 3) % 256) as u8]))
        .save(&img)
        .unwrap();
    let o = convnet(&[
        "predict",
        run.to_str().unwrap(),
        img.to_str().unwrap(),
        "--precision",
        "bf16",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = convnet(&["evaluate", run.to_str().unwrap(), "--precision", "fp16"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--precision 'fp16'"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&out);
}

/// `train --precision bf16` trains in bf16 (on a CPU with AVX512-BF16;
/// elsewhere it says it runs fp32), records it in run.json, and
/// `--resume` keeps it unless told otherwise; the same seed gives the
/// same bits.
#[test]
fn train_in_bf16_is_recorded_resumed_and_reproducible() {
    let out = tmp("bf16-train");
    let train = |name: &str, precision: &str| {
        let o = TinyRun::new(&out, name)
            .with("--model", "8C5-P2-16C3-P2-16-10")
            .with("--precision", precision)
            .run();
        assert!(o.status.success(), "{}", text(&o));
        text(&o)
    };
    let history = |name: &str| std::fs::read_to_string(out.join(name).join("history.csv")).unwrap();
    let recorded = |name: &str| {
        let cfg: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(name).join("run.json")).unwrap(),
        )
        .unwrap();
        cfg["precision"].as_str().unwrap().to_string()
    };
    let said = train("a", "mixed_bfloat16");
    train("b", "bf16");
    train("c", "fp32");
    assert_eq!(recorded("a"), "bf16");
    assert_eq!(recorded("c"), "fp32");
    // Losses only: the seconds column differs from run to run.
    let losses = |name: &str| -> Vec<String> {
        history(name)
            .lines()
            .skip(1)
            .map(|l| l.split(',').take(5).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(losses("a"), losses("b"), "same seed, same bits");
    let hardware = !said.contains("no AVX512-BF16");
    assert_eq!(losses("a") != losses("c"), hardware, "bf16 trains in bf16");
    let run = out.join("a");
    let o = convnet(&[
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--epochs",
        "2",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(recorded("a"), "bf16", "resumed in its precision");
    let o = convnet(&[
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--epochs",
        "3",
        "--precision",
        "fp32",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("Precision set to fp32"), "{}", text(&o));
    assert_eq!(recorded("a"), "fp32");
    let o = TinyRun::new(&out, "bad").with("--precision", "fp16").run();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&out);
}

/// Every command that takes `--precision` refuses a name it does not know,
/// before it trains, serves or writes anything.
#[test]
fn every_precision_flag_refuses_unknown_names() {
    let out = tmp("bf16-flags");
    TinyRun::new(&out, "r").ok();
    let run = out.join("r");
    let run = run.to_str().unwrap();
    let commands: [&[&str]; 5] = [
        &["serve", run, "--port", "0"],
        &["experiment", "dropout", "--epochs", "1"],
        &["ensemble", "--nets", "1", "--epochs", "1"],
        &["bench", "--config", "m1:infer:1", "--seconds", "0.1"],
        &["finetune", run, "--head", "GAP-10", "--epochs", "1"],
    ];
    for words in commands {
        let mut args = words.to_vec();
        args.extend(["--precision", "half"]);
        let o = convnet(&args);
        assert_eq!(o.status.code(), Some(2), "{words:?}: {}", text(&o));
        let said = text(&o);
        assert!(said.contains("--precision 'half'"), "{words:?}: {said}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
