//! SIGKILL at pseudo-random moments, then the one documented resume command,
//! again and again: `train`, `finetune` (with and without stage two) and
//! `ensemble` must end with the bytes of the uninterrupted run.

mod common;

use common::{convnet, small_idx, text, tmp, TinyRun};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a kill scenario starts, resumes and measures its progress.
struct Scenario<'a> {
    /// The command that starts the run.
    start: Vec<String>,
    /// The command that continues it (the documented resume command).
    resume: Vec<String>,
    /// Whether the run exists, so that `resume` applies (else `start` again).
    started: &'a dyn Fn() -> bool,
    /// Removes whatever a killed `start` left, to start over.
    reset: &'a dyn Fn(),
    /// Epochs saved so far (checkpoints and finished parts), if any.
    progress: &'a dyn Fn() -> usize,
}

/// Kills the scenario's command at pseudo-random moments until at least
/// `wanted` kills have landed, then lets it finish; returns the kill count.
/// Each kill is followed by the resume command (or the start command, when
/// the run did not exist yet). A run that finishes before enough kills starts
/// over. Most kills must find the run further along than the kill before, so
/// that they are spread over the whole run, not bunched before its first save.
fn kill_until_done(s: &Scenario, wanted: usize) -> usize {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut kills, mut attempts) = (0, 0);
    let (mut progressed, mut last, mut patience) = (0, 0, 0);
    loop {
        attempts += 1;
        assert!(attempts < 400, "the run never finished");
        let args = if (s.started)() { &s.resume } else { &s.start };
        let mut child = Command::new(env!("CARGO_BIN_EXE_convnet"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let wait = if kills < wanted + 4 {
            // A kill that found no newer save lengthens the next wait, so a
            // slow machine still gets kills between saves.
            Duration::from_millis(20 + next() % 250 + patience)
        } else {
            Duration::from_secs(120)
        };
        let begin = Instant::now();
        let mut finished = None;
        while begin.elapsed() < wait {
            if let Some(status) = child.try_wait().unwrap() {
                finished = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        match finished {
            Some(status) => {
                let mut err = String::new();
                use std::io::Read;
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                assert!(status.success(), "attempt {attempts} ({args:?}): {err}");
                if kills >= wanted {
                    break;
                }
                // Finished before enough kills: start the scenario over.
                (s.reset)();
                last = 0;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                let now = (s.progress)();
                if now > last {
                    progressed += 1;
                } else {
                    patience += 100;
                }
                last = now;
            }
        }
    }
    assert!(kills >= wanted, "only {kills} kills");
    assert!(
        2 * progressed > kills,
        "only {progressed} of {kills} kills came after a newer save"
    );
    eprintln!("{kills} kills in {attempts} attempts ({progressed} after a newer save)");
    kills
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Epochs of the newest checkpoint under `run/checkpoints`, which must load
/// whenever it exists (no checkpoint is ever half-written), or 0.
fn checkpoint_epochs(run: &Path) -> usize {
    let ck = run.join("checkpoints");
    if !ck.join("LATEST").exists() {
        return 0;
    }
    let (_, state) =
        convnet_nn::Model::load_checkpoint(&ck).unwrap_or_else(|e| panic!("{}: {e}", ck.display()));
    state.epochs_done
}

/// Epochs saved in a run: its history once finished, else its checkpoint's.
fn run_epochs(run: &Path) -> usize {
    checkpoint_epochs(run).max(match std::fs::read_to_string(run.join("history.csv")) {
        Ok(h) => h.lines().count().saturating_sub(1),
        Err(_) => 0,
    })
}

/// The run these tests kill: the shared tiny run on `data`, 60 epochs.
fn train_args(data: &str, out: &str, name: &str) -> TinyRun {
    TinyRun::new(Path::new(out), name)
        .with("--data", data)
        .with("--model", "8C3-P2-D0.2-16-10")
        .with("--epochs", "60")
        .with("--batch-size", "25")
        .with("--validation-split", "0.2")
        .with("--seed", "3")
        .without("--limit")
}

#[test]
fn train_killed_at_random_moments_resumes_to_the_uninterrupted_weights() {
    let d = tmp("kill");
    let data = d.join("idx");
    small_idx(&data, 500, 100);
    let data_arg = format!("idx:{}", data.display());
    let out = d.join("runs");
    let out_s = out.to_str().unwrap().to_string();
    train_args(&data_arg, &out_s, "straight").ok();
    let want = std::fs::read(out.join("straight/weights.safetensors")).unwrap();

    let run = out.join("killed");
    let run_s = run.to_str().unwrap().to_string();
    let s = Scenario {
        start: train_args(&data_arg, &out_s, "killed").args(),
        resume: strings(&["train", "--resume", &run_s, "--quiet"]),
        started: &|| run.join("run.json").exists(),
        reset: &|| {
            let _ = std::fs::remove_dir_all(&run);
        },
        progress: &|| checkpoint_epochs(&run),
    };
    let kills = kill_until_done(&s, 20);
    let got = std::fs::read(run.join("weights.safetensors")).unwrap();
    assert!(
        got == want,
        "weights after {kills} kills differ from the uninterrupted run"
    );
    let history = std::fs::read_to_string(run.join("history.csv")).unwrap();
    assert_eq!(history.lines().count(), 61, "one row per epoch");
    let _ = std::fs::remove_dir_all(&d);
}

/// `convnet finetune` from a small trained base, uninterrupted and killed
/// 20 times, resumed each time by `convnet train --resume RUN`; with
/// `stage_two`, its second stage (`--unfreeze-top 1`) included.
fn finetune_killed(name: &str, stage_two: bool) {
    let d = tmp(name);
    let data = d.join("idx");
    small_idx(&data, 400, 100);
    let data_arg = format!("idx:{}", data.display());
    let out = d.join("runs");
    let out_s = out.to_str().unwrap().to_string();
    train_args(&data_arg, &out_s, "base")
        .with("--model", "8C3-P2-16C3-32-10")
        .with("--epochs", "2")
        .ok();
    let base = out.join("base");
    let base_s = base.to_str().unwrap().to_string();
    let args = |run: &str| -> Vec<String> {
        let t = TinyRun::new(&out, run)
            .command(&["finetune", &base_s])
            .with("--head", "F-D0.3-10")
            .with("--data", &data_arg)
            .with("--epochs", if stage_two { "25" } else { "45" })
            .with("--batch-size", "25")
            .with("--validation-split", "0.2")
            .with("--seed", "9")
            .without("--model")
            .without("--limit");
        match stage_two {
            true => t.withs(&[
                "--unfreeze-top",
                "1",
                "--unfreeze-lr",
                "1e-4",
                "--unfreeze-epochs",
                "20",
            ]),
            false => t,
        }
        .args()
    };
    let a = args("straight");
    let o = convnet(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o));
    let want = std::fs::read(out.join("straight/weights.safetensors")).unwrap();

    let run = out.join("killed");
    let run_s = run.to_str().unwrap().to_string();
    let s = Scenario {
        start: args("killed"),
        resume: strings(&["train", "--resume", &run_s, "--quiet"]),
        started: &|| run.join("run.json").exists(),
        reset: &|| {
            let _ = std::fs::remove_dir_all(&run);
        },
        progress: &|| checkpoint_epochs(&run),
    };
    let kills = kill_until_done(&s, 20);
    let got = std::fs::read(run.join("weights.safetensors")).unwrap();
    assert!(
        got == want,
        "finetune weights after {kills} kills differ from the uninterrupted run"
    );
    let history = std::fs::read_to_string(run.join("history.csv")).unwrap();
    assert_eq!(history.lines().count(), 46, "one row per epoch\n{history}");
    let plan = std::fs::read_to_string(run.join("run.json")).unwrap();
    assert_eq!(
        plan,
        std::fs::read_to_string(out.join("straight/run.json"))
            .unwrap()
            .replace("straight", "killed"),
        "run.json differs from the uninterrupted run's"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn finetune_killed_at_random_moments_resumes_to_the_uninterrupted_weights() {
    finetune_killed("kill-ft", false);
}

#[test]
fn finetune_with_stage_two_killed_at_random_moments_resumes_to_the_uninterrupted_weights() {
    finetune_killed("kill-ft2", true);
}

fn ensemble_args(data: &str, out: &str) -> Vec<String> {
    strings(&[
        "ensemble",
        "--data-dir",
        data,
        "8C3-P2-D0.2-10",
        "--nets",
        "3",
        "--epochs",
        "12",
        "--train-size",
        "600",
        "--test-size",
        "200",
        "--batch-size",
        "25",
        "--seed",
        "5",
        "--quiet",
        "--out",
        out,
    ])
}

#[test]
fn ensemble_killed_at_random_moments_resumes_to_the_uninterrupted_nets() {
    let d = tmp("kill-ens");
    let data = d.join("idx");
    small_idx(&data, 800, 200);
    let data = data.to_str().unwrap();
    let straight = d.join("straight");
    let a = ensemble_args(data, straight.to_str().unwrap());
    let o = convnet(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o));
    let killed = d.join("killed");
    let start = ensemble_args(data, killed.to_str().unwrap());
    let mut resume = start.clone();
    resume.push("--resume".into());
    let net = |i: usize| killed.join(format!("net-{:02}", i + 1));
    let s = Scenario {
        start,
        resume,
        started: &|| killed.exists(),
        reset: &|| {
            let _ = std::fs::remove_dir_all(&killed);
        },
        progress: &|| (0..3).map(|i| run_epochs(&net(i))).sum(),
    };
    kill_until_done(&s, 20);
    for i in 0..3 {
        let (a, b) = (straight.join(format!("net-{:02}", i + 1)), net(i));
        let want = std::fs::read(a.join("weights.safetensors")).unwrap();
        let got = std::fs::read(b.join("weights.safetensors")).unwrap();
        assert!(want == got, "net {}: weights differ", i + 1);
        assert!(!b.join("checkpoints").exists(), "net {}", i + 1);
        assert!(b.join("member.json").exists(), "net {}", i + 1);
        let h = std::fs::read_to_string(b.join("history.csv")).unwrap();
        assert_eq!(
            h.lines().count(),
            13,
            "net {}: one row per epoch\n{h}",
            i + 1
        );
    }
    let json = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p.join("ensemble.json")).unwrap()).unwrap()
    };
    let (a, b) = (json(&straight), json(&killed));
    assert_eq!(a["members"], b["members"]);
    assert_eq!(a["growth"], b["growth"]);
    let _ = std::fs::remove_dir_all(&d);
}

/// The two kill points that a random kill rarely hits, reached on purpose:
/// a finetune stopped right after it wrote `run.json` (no checkpoint, no
/// weights: it used to resume from random weights, silently), and one
/// stopped between its two stages (it used to keep the base frozen).
#[test]
fn finetune_resumes_from_run_json_alone_and_from_between_its_stages() {
    let d = tmp("ft-points");
    let data = d.join("idx");
    small_idx(&data, 400, 100);
    let data_arg = format!("idx:{}", data.display());
    let out = d.join("runs");
    let out_s = out.to_str().unwrap().to_string();
    train_args(&data_arg, &out_s, "base")
        .with("--model", "8C3-P2-16C3-32-10")
        .with("--epochs", "2")
        .ok();
    let base = out.join("base").to_str().unwrap().to_string();
    let args = |run: &str| -> Vec<String> {
        TinyRun::new(&out, run)
            .command(&["finetune", &base])
            .with("--head", "F-D0.3-10")
            .with("--data", &data_arg)
            .with("--epochs", "3")
            .withs(&["--unfreeze-top", "1", "--unfreeze-lr", "1e-4"])
            .with("--unfreeze-epochs", "3")
            .with("--seed", "9")
            .without("--model")
            .without("--limit")
            .without("--batch-size")
            .without("--validation-split")
            .args()
    };
    let run_args = |v: Vec<String>| {
        let o = convnet(&v.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        assert!(o.status.success(), "{}", text(&o));
        text(&o)
    };
    run_args(args("straight"));
    let want = std::fs::read(out.join("straight/weights.safetensors")).unwrap();
    let resume = |run: &Path| run_args(strings(&["train", "--resume", run.to_str().unwrap()]));

    // Starts the finetune into `run` and kills it as soon as `stopped` holds.
    let kill_when = |run: &str, stopped: &dyn Fn() -> bool| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_convnet"))
            .args(args(run))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        while child.try_wait().unwrap().is_none() && !stopped() {
            std::thread::sleep(Duration::from_micros(200));
        }
        child.kill().ok();
        child.wait().unwrap();
    };

    // 1. Only run.json (as the finetune first wrote it): the start is rebuilt
    //    from the source run, the same weights and RNG position as checkpoint 0.
    let a = out.join("a");
    kill_when("a", &|| a.join("run.json").exists());
    for f in [
        "checkpoints",
        "weights.safetensors",
        "model.json",
        "history.csv",
    ] {
        let p = a.join(f);
        let _ = std::fs::remove_dir_all(&p);
        let _ = std::fs::remove_file(&p);
    }
    let t = resume(&a);
    assert!(
        t.contains("after epoch 0 of 3") && t.contains("Unfroze"),
        "{t}"
    );
    assert!(
        std::fs::read(a.join("weights.safetensors")).unwrap() == want,
        "resumed from run.json alone: weights differ from the uninterrupted run"
    );

    // 2. Between the stages: stage two recorded in run.json, the newest
    //    checkpoint still stage one's last.
    let b = out.join("b");
    let b_s = b.to_str().unwrap().to_string();
    let begun = || {
        std::fs::read_to_string(b.join("run.json")).is_ok_and(|t| t.contains("\"from_epoch\": 3"))
    };
    let mut caught = false;
    for _ in 0..8 {
        let _ = std::fs::remove_dir_all(&b);
        kill_when("b", &begun);
        if begun() && checkpoint_epochs(&b) == 3 {
            caught = true;
            break;
        }
    }
    assert!(caught, "never stopped the finetune between its stages");
    let t = run_args(strings(&["train", "--resume", &b_s]));
    assert!(
        t.contains("after epoch 3 of 6") && t.contains("Unfroze"),
        "{t}"
    );
    assert!(
        std::fs::read(b.join("weights.safetensors")).unwrap() == want,
        "resumed between the stages: weights differ from the uninterrupted run"
    );
    let _ = std::fs::remove_dir_all(&d);
}
