//! `convnet ensemble --resume` after a SIGKILL inside a member.

mod common;

use common::{convnet, text, tmp};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn ensemble_args(out: &str) -> Vec<&str> {
    vec![
        "ensemble",
        "8C3-P2-10",
        "--nets",
        "2",
        "--epochs",
        "4",
        "--train-size",
        "4000",
        "--test-size",
        "500",
        "--seed",
        "5",
        "--quiet",
        "--out",
        out,
    ]
}

#[test]
fn an_ensemble_killed_inside_a_member_resumes_from_its_checkpoint_to_the_same_nets() {
    let d = tmp("ens-kill");
    let straight = d.join("straight");
    let o = convnet(&ensemble_args(straight.to_str().unwrap()));
    assert!(o.status.success(), "{}", text(&o));
    let killed = d.join("killed");
    let killed_s = killed.to_str().unwrap().to_string();
    let latest = killed.join("net-01/checkpoints/LATEST");
    // Kill the first member right after its first checkpoint: each epoch
    // takes tens of milliseconds, and we poll every millisecond; a run too
    // fast to catch is tried again.
    let mut caught = false;
    for _ in 0..5 {
        let _ = std::fs::remove_dir_all(&killed);
        let mut child = Command::new(env!("CARGO_BIN_EXE_convnet"))
            .args(ensemble_args(&killed_s))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        while child.try_wait().unwrap().is_none() && !latest.exists() {
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().ok();
        child.wait().unwrap();
        if latest.exists() && !killed.join("net-01/model.json").exists() {
            caught = true;
            break;
        }
    }
    assert!(caught, "never stopped the first member between two epochs");
    let mut args = ensemble_args(&killed_s);
    args.retain(|a| *a != "--quiet");
    args.push("--resume");
    let o = convnet(&args);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("[net 1/2] resuming after epoch"), "{t}");
    for net in ["net-01", "net-02"] {
        let want = std::fs::read(straight.join(net).join("weights.safetensors")).unwrap();
        let got = std::fs::read(killed.join(net).join("weights.safetensors")).unwrap();
        assert!(
            want == got,
            "{net}: weights differ from the uninterrupted run"
        );
        assert!(!killed.join(net).join("checkpoints").exists());
        let h = std::fs::read_to_string(killed.join(net).join("history.csv")).unwrap();
        assert_eq!(h.lines().count(), 5, "{net}: one row per epoch\n{h}");
    }
    let json = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p.join("ensemble.json")).unwrap()).unwrap()
    };
    let (a, b) = (json(&straight), json(&killed));
    assert_eq!(a["members"], b["members"]);
    assert_eq!(a["growth"], b["growth"]);
    let _ = std::fs::remove_dir_all(&d);
}

/// A member killed while its `history.csv` was written (its `model.json`
/// saved, its `member.json` not yet): the resume trains it on from its
/// checkpoint instead of counting it as finished without a history.
#[test]
fn a_member_killed_while_writing_its_history_resumes_from_its_checkpoint() {
    let d = tmp("ens-history");
    let straight = d.join("straight");
    let o = convnet(&ensemble_args(straight.to_str().unwrap()));
    assert!(o.status.success(), "{}", text(&o));
    let killed = d.join("killed");
    let killed_s = killed.to_str().unwrap().to_string();
    let net = killed.join("net-01");
    let mut caught = false;
    for _ in 0..8 {
        let _ = std::fs::remove_dir_all(&killed);
        let mut child = Command::new(env!("CARGO_BIN_EXE_convnet"))
            .args(ensemble_args(&killed_s))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        while child.try_wait().unwrap().is_none() && !net.join("model.json").exists() {
            std::thread::sleep(Duration::from_micros(200));
        }
        child.kill().ok();
        child.wait().unwrap();
        // The kill landed before the checkpoints were removed: what is left,
        // less the history and the record, is what a kill during the
        // history's write leaves.
        if net.join("model.json").exists() && net.join("checkpoints/LATEST").exists() {
            let _ = std::fs::remove_file(net.join("history.csv"));
            let _ = std::fs::remove_file(net.join("member.json"));
            caught = true;
            break;
        }
    }
    assert!(caught, "never stopped the first member before its clean-up");
    let mut args = ensemble_args(&killed_s);
    args.push("--resume");
    let o = convnet(&args);
    assert!(o.status.success(), "{}", text(&o));
    let h = std::fs::read_to_string(net.join("history.csv")).unwrap();
    assert_eq!(h.lines().count(), 5, "one row per epoch\n{h}");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(net.join("member.json")).unwrap()).unwrap();
    assert!(record["seconds"].as_f64().unwrap() > 0.0, "{record}");
    assert!(!net.join("checkpoints").exists());
    let want = std::fs::read(straight.join("net-01/weights.safetensors")).unwrap();
    assert!(want == std::fs::read(net.join("weights.safetensors")).unwrap());
    let _ = std::fs::remove_dir_all(&d);
}
