//! `convnet export` and `convnet import` end to end.

mod common;

use common::{convnet, text, tmp, TinyRun};

fn line<'a>(t: &'a str, prefix: &str) -> &'a str {
    t.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no '{prefix}' in {t}"))
}

#[test]
fn a_trained_m1_exported_and_imported_keeps_its_test_accuracy() {
    let out = tmp("onnx-m1");
    let o = TinyRun::new(&out, "m1")
        .with("--model", "32C5-P2-64C5-P2-128-D0.4-10")
        .without("--validation-split")
        .without("--seed")
        .run();
    assert!(o.status.success(), "{}", text(&o));
    let run = out.join("m1");
    let before = convnet(&["evaluate", run.to_str().unwrap()]);
    let before = text(&before);
    let file = out.join("m1.onnx");
    let o = convnet(&[
        "export",
        run.to_str().unwrap(),
        "--onnx",
        file.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("input 'input' [N, 1, 28, 28] (NCHW)"), "{t}");
    let back = out.join("back");
    let o = convnet(&[
        "import",
        file.to_str().unwrap(),
        "--out",
        back.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let after = text(&convnet(&["evaluate", back.to_str().unwrap()]));
    // The same accuracy (to the last digit) and loss on the 10,000 test images.
    assert_eq!(
        line(&before, "loss "),
        line(&after, "loss "),
        "{before}\n{after}"
    );
    let o = convnet(&["evaluate", back.to_str().unwrap(), "--tta", "2"]);
    assert!(
        text(&o).contains("on 10000 images, test-time augmentation: 2 views"),
        "{}",
        text(&o)
    );
    // Every command takes the imported run: summary, predict, fine-tuning, export again.
    let o = convnet(&["summary", back.to_str().unwrap()]);
    assert!(text(&o).contains("Total params: 454,922"), "{}", text(&o));
    let digit = out.join("stroke.png");
    image::GrayImage::from_fn(28, 28, |x, y| {
        image::Luma([if x == 14 && y > 5 && y < 23 { 255 } else { 0 }])
    })
    .save(&digit)
    .unwrap();
    let (p1, p2) = [&run, &back]
        .map(|r| {
            let o = convnet(&["predict", r.to_str().unwrap(), digit.to_str().unwrap()]);
            assert!(o.status.success(), "{}", text(&o));
            String::from_utf8_lossy(&o.stdout).to_string()
        })
        .into();
    assert_eq!(p1, p2, "the same prediction");
    let o = convnet(&[
        "train",
        "--resume",
        back.to_str().unwrap(),
        "--epochs",
        "1",
        "--limit",
        "300",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let again = out.join("again.onnx");
    let o = convnet(&[
        "export",
        back.to_str().unwrap(),
        "--onnx",
        again.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn an_unsupported_op_exits_2_with_one_line_naming_the_node() {
    let out = tmp("onnx-bad");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../onnx/tests/fixtures");
    // A valid file whose first conv is turned into ConvTranspose (the op type is a plain string field).
    let mut bytes = std::fs::read(fixtures.join("vgg11-bn.onnx")).unwrap();
    let at = bytes
        .windows(6)
        .position(|w| w == b"\x22\x04Conv")
        .expect("a Conv op_type field");
    bytes.splice(at..at + 6, b"\x22\x04Cosh".iter().copied());
    let file = out.join("bad.onnx");
    std::fs::write(&file, &bytes).unwrap();
    let o = convnet(&[
        "import",
        file.to_str().unwrap(),
        "--out",
        out.join("r").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("(Cosh): operator Cosh is not supported; supported: Conv"),
        "{err}"
    );
    assert!(!out.join("r").exists(), "nothing written");
    // A missing input file is bad input (exit 2), as for every command;
    // so is an empty one, which is no ONNX model.
    let o = convnet(&["import", out.join("absent.onnx").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let empty = out.join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    let o = convnet(&["import", empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("empty.onnx") && text(&o).contains("the file is empty"),
        "{}",
        text(&o)
    );
    let _ = std::fs::remove_dir_all(&out);
}
