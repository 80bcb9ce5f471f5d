//! Graph models through the `convnet` binary: built-in nets by name, the
//! block notation, graph model files, and the commands on a graph run.

mod common;

use common::{convnet, text, tmp, TinyRun};

#[test]
fn built_in_nets_by_name_with_torchvision_counts() {
    for (args, needles) in [
        (
            &["summary", "resnet18"][..],
            &[
                "Trainable params: 11,689,512",
                "Non-trainable params: 9,600",
                "Connected to",
                "(None, 224, 224, 3)",
            ][..],
        ),
        (
            &["summary", "googlenet"][..],
            &["Trainable params: 6,624,904"][..],
        ),
        (
            &["summary", "resnet20", "--classes", "100"][..],
            &[
                "(None, 32, 32, 3)",
                "(None, 100)",
                "Trainable params: 278,324",
            ][..],
        ),
        (
            &[
                "summary",
                "vgg11-bn",
                "--input",
                "64x64x3",
                "--classes",
                "2",
            ][..],
            &["(None, 2, 2, 512)", "(None, 2)"][..],
        ),
    ] {
        let o = convnet(args);
        let t = text(&o);
        assert!(o.status.success(), "{args:?}: {t}");
        for n in needles {
            assert!(t.contains(n), "{args:?} lacks {n}: {t}");
        }
    }
    // Too small an input for VGG's five pools: one line, exit 2.
    let o = convnet(&["summary", "vgg16", "--input", "16x16x3"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).lines().count(),
        1,
        "{}",
        text(&o)
    );
}

#[test]
fn a_graph_model_file_with_a_cycle_is_refused_naming_the_layer() {
    let dir = tmp("graph-file");
    let file = dir.join("cycle.json");
    std::fs::write(
        &file,
        r#"{"input_shape": [8, 8, 1], "layers": [
            {"name": "a", "inputs": ["b"], "type": "Conv2D", "filters": 2, "kernel_size": [3, 3], "padding": "same"},
            {"name": "b", "inputs": ["a"], "type": "Conv2D", "filters": 2, "kernel_size": [3, 3], "padding": "same"},
            {"type": "GlobalAveragePooling2D"}, {"type": "Dense", "units": 2}]}"#,
    )
    .unwrap();
    let o = convnet(&["summary", file.to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("Conv2D 'a'") && t.contains("cycle"), "{t}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn train_evaluate_predict_and_explain_a_graph_model() {
    let out = tmp("graph-train");
    let model = "16C3-R[16C3-BN-16C3-BN]-I[8C1 | 8C1-8C3 | P3S1-8C1]-R[32C3S2-BN-32C3-BN]-GAP-10";
    let o = TinyRun::new(&out, "g")
        .with("--model", model)
        .with("--epochs", "2")
        .with("--seed", "3")
        .without("--validation-split")
        .run();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("Test accuracy"), "{t}");
    let run = out.join("g");
    let spec = std::fs::read_to_string(run.join("model.json")).unwrap();
    assert!(
        spec.contains("\"type\": \"Add\"") && spec.contains("\"type\": \"Concatenate\""),
        "{spec}"
    );
    let o = convnet(&["evaluate", run.to_str().unwrap()]);
    assert!(
        o.status.success() && text(&o).contains("on 10000 images"),
        "{}",
        text(&o)
    );
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        html.contains("Connected to"),
        "report.html lacks the graph summary"
    );
    let o = convnet(&["explain", run.to_str().unwrap(), "--index", "0"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let shown = std::fs::read_dir(run.join("explain/index-0"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect::<Vec<_>>();
    for kind in [
        "_add_maps.png",
        "_concat_maps.png",
        "_pooling.png",
        "filters.png",
    ] {
        assert!(
            shown.iter().any(|f| f.ends_with(kind)),
            "no {kind} in {shown:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
