//! `convnet insert-bn` and `convnet train --freeze` end to end.

mod common;

use common::{convnet, text, tmp, TinyRun};
use std::path::{Path, PathBuf};

/// A small trained run, `OUT/base`, for the surgery commands to start from.
fn train_base(out: &Path) -> PathBuf {
    let o = TinyRun::new(out, "base")
        .with("--model", "8C3-P2-16C3-P2-32-10")
        .with("--seed", "5")
        .without("--validation-split")
        .run();
    assert!(o.status.success(), "{}", text(&o));
    out.join("base")
}

fn metric(t: &str, prefix: &str) -> String {
    t.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no '{prefix}' in {t}"))
        .to_string()
}

#[test]
fn insert_bn_keeps_the_outputs_and_the_new_run_fine_tunes() {
    let out = tmp("insert-bn");
    let base = train_base(&out);
    let o = convnet(&[
        "insert-bn",
        base.to_str().unwrap(),
        "--after",
        "conv+dense",
        "--calibrate",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--name",
        "bn",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("Inserted 3 BatchNormalization"), "{t}");
    // "max |difference| 6.56e-7 over 10000 images; accuracy 83.77 % before, 83.77 % after"
    let line = metric(&t, "Test outputs: max |difference| ");
    let diff: f32 = line.split_whitespace().next().unwrap().parse().unwrap();
    assert!(diff <= 1e-4, "{line}");
    let acc: Vec<&str> = line
        .split("accuracy ")
        .nth(1)
        .unwrap()
        .split(" % ")
        .collect();
    assert_eq!(acc[0], acc[1].trim_start_matches("before, "), "{line}");
    let bn = out.join("bn");
    let o = convnet(&["summary", bn.to_str().unwrap()]);
    assert_eq!(
        text(&o).matches("(BatchNormalization)").count(),
        3,
        "{}",
        text(&o)
    );
    // The new run trains from the inserted weights (not from scratch).
    let o = convnet(&[
        "train",
        "--resume",
        bn.to_str().unwrap(),
        "--epochs",
        "1",
        "--quiet",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let acc: f32 = metric(&t, "Test accuracy: ")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(acc > 0.5, "{t}");
    // Errors: a layer that does not exist, the output layer; one line, exit 2.
    for (after, needle) in [
        ("conv9", "no layer is called 'conv9'"),
        ("dense_1", "output layer"),
    ] {
        let o = convnet(&[
            "insert-bn",
            base.to_str().unwrap(),
            "--after",
            after,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains(needle), "{}", text(&o));
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn freeze_from_the_command_line() {
    let out = tmp("freeze");
    let o = TinyRun::new(&out, "f")
        .command_defaults()
        .with("--model", "8C3-P2-16-10")
        .with("--freeze", "until:conv2d")
        .with("--limit", "200")
        .run();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    // 3x3x1x8 + 8 = 80 frozen weights.
    assert!(t.contains("Non-trainable params: 80 "), "{t}");
    for (arg, needle) in [
        ("until:nope", "no layer is called 'nope'"),
        ("99", "has 5 layers"),
        ("5", "nothing left to train"),
    ] {
        let o = convnet(&[
            "train",
            "--model",
            "8C3-P2-16-10",
            "--freeze",
            arg,
            "--limit",
            "100",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2), "{arg}: {}", text(&o));
        assert!(text(&o).contains(needle), "{arg}: {}", text(&o));
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn finetune_a_frozen_base_with_a_new_head_then_unfreeze() {
    let out = tmp("finetune");
    let base = train_base(&out);
    let o = convnet(&[
        "finetune",
        base.to_str().unwrap(),
        "--head",
        "F-D0.2-10",
        "--limit",
        "600",
        "--epochs",
        "2",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--name",
        "ft",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    // The base (8C3: 80, 16C3: 1,168) is frozen; the new Dense(10) on 7x7x16 trains.
    assert!(
        t.contains("Trainable params: 7,850 ") && t.contains("Non-trainable params: 1,248 "),
        "{t}"
    );
    let ft = out.join("ft");
    // The frozen base kept its trained weights, byte for byte.
    let read = |run: &std::path::Path| {
        let bytes = std::fs::read(run.join("weights.safetensors")).unwrap();
        let st = convnet_nn::save::tensors_from_bytes(run, &bytes).unwrap();
        st.get("layer2.kernel").unwrap().data().to_vec()
    };
    assert_eq!(read(&base), read(&ft));
    // Stage two: unfreeze the top conv at a lower rate; it now changes.
    let o = convnet(&[
        "train",
        "--resume",
        ft.to_str().unwrap(),
        "--unfreeze",
        "1",
        "--lr",
        "1e-4",
        "--epochs",
        "3",
        "--quiet",
    ]);
    let t = text(&o);
    assert!(o.status.success() && t.contains("Unfroze conv2d_1"), "{t}");
    assert_ne!(read(&base), read(&ft));
    for (args, needle) in [
        (
            vec!["--head", "F-10", "--cut", "nope"],
            "no layer is called 'nope'",
        ),
        (vec!["--head", "32C3-X-10"], "unknown layer 'X'"),
        // A head that does not fit what the cut gives: convs after a flat layer.
        (
            vec!["--head", "8C3-10", "--cut", "dense"],
            "needs an image input",
        ),
        (
            vec!["--head", "F-10", "--freeze", "6"],
            "nothing left to train",
        ),
    ] {
        let mut all = vec![
            "finetune",
            base.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        all.extend(args);
        let o = convnet(&all);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains(needle), "{}", text(&o));
    }
    // Both stages in one command.
    let o = convnet(&[
        "finetune",
        base.to_str().unwrap(),
        "--head",
        "F-10",
        "--limit",
        "300",
        "--epochs",
        "1",
        "--unfreeze-top",
        "1",
        "--unfreeze-lr",
        "1e-4",
        "--unfreeze-epochs",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--name",
        "two",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("Unfroze conv2d_1") && t.contains("Epoch 2/2"),
        "{t}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn unfreezing_the_top_layers_leaves_batch_norms_frozen() {
    let out = tmp("unfreeze-bn");
    let o = TinyRun::new(&out, "base")
        .with("--model", "8C3-BN-P2-16C3-BN-P2-10")
        .with("--seed", "5")
        .without("--validation-split")
        .run();
    assert!(o.status.success(), "{}", text(&o));
    let base = out.join("base");
    let o = convnet(&[
        "finetune",
        base.to_str().unwrap(),
        "--head",
        "F-10",
        "--limit",
        "300",
        "--epochs",
        "1",
        "--unfreeze-top",
        "2",
        "--unfreeze-epochs",
        "1",
        "--unfreeze-lr",
        "1e-3",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--name",
        "ft",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    // The top two layers with weights that are not batch norms: both convs.
    assert!(t.contains("Unfroze conv2d, conv2d_1\n"), "{t}");
    let read = |run: &Path, name: &str| {
        let bytes = std::fs::read(run.join("weights.safetensors")).unwrap();
        let st = convnet_nn::save::tensors_from_bytes(run, &bytes).unwrap();
        st.get(name).unwrap().data().to_vec()
    };
    let ft = out.join("ft");
    // The convs trained in stage two; the batch norms kept the base's
    // statistics and scales (inference mode, no update).
    assert_ne!(read(&base, "layer3.kernel"), read(&ft, "layer3.kernel"));
    for name in [
        "layer1.moving_mean",
        "layer1.gamma",
        "layer4.moving_variance",
    ] {
        assert_eq!(read(&base, name), read(&ft, name), "{name}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
