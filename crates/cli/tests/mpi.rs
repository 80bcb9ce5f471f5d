//! `convnet` under `mpirun -np 2` (feature `mpi`; `.ci/run` installs
//! OpenMPI and runs `cargo test -p convnet-cli --features mpi --test mpi`).
//!
//! Data-parallel training gives the bits of one process with as many shards
//! (`--shards 2`), for a chain and a graph; it resumes exactly, and with
//! another number of ranks; a distributed ensemble equals the one-process
//! ensemble; a rank that dies ends the job with an error, leaving the
//! newest checkpoint readable; a rank that is stopped (hung) ends the job
//! within `--rank-timeout`, named.
#![cfg(feature = "mpi")]

mod common;

use common::{convnet, text, tmp};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn mpirun(args: &[&str]) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-np", "2"])
        .arg(env!("CARGO_BIN_EXE_convnet"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn run_mpi(args: &[&str]) -> Output {
    let o = mpirun(args)
        .output()
        .expect("mpirun (install OpenMPI: apt-get install openmpi-bin libopenmpi-dev)");
    assert!(o.status.success(), "mpirun {args:?}:\n{}", text(&o));
    o
}

fn run_one(args: &[&str]) -> Output {
    let o = convnet(args);
    assert!(o.status.success(), "convnet {args:?}:\n{}", text(&o));
    o
}

/// `history.csv` without its seconds column.
fn history(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("history.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn train_args<'a>(model: &'a str, out: &'a str, name: &'a str, epochs: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--model",
        model,
        "--limit",
        "500",
        "--epochs",
        epochs,
        "--batch-size",
        "50",
        "--validation-split",
        "0.1",
        "--rotation",
        "10",
        "--quiet",
        "--out",
        out,
        "--name",
        name,
    ]
}

#[test]
fn two_ranks_train_the_bits_of_one_process_with_two_shards_and_resume_exactly() {
    let dir = tmp("mpi-train");
    let out = dir.to_str().unwrap();
    // A chain and a graph, both with batch norm (statistics per shard),
    // dropout (a stream per shard) and augmentation (a seed per shard).
    for (tag, model) in [
        ("chain", "784-8C3-BN-P2-D0.2-10"),
        ("graph", "784-8C3-BN-R[8C3-BN-8C3-BN]-D0.2-GAP-10"),
    ] {
        let (mpi, one) = (format!("{tag}-mpi"), format!("{tag}-one"));
        let o = run_mpi(&train_args(model, out, &mpi, "2"));
        assert!(
            text(&o).contains("Data-parallel over 2 ranks"),
            "{}",
            text(&o)
        );
        let mut args = train_args(model, out, &one, "2");
        args.extend(["--shards", "2"]);
        run_one(&args);
        let (a, b) = (dir.join(&mpi), dir.join(&one));
        assert_eq!(
            bytes(&a.join("weights.safetensors")),
            bytes(&b.join("weights.safetensors")),
            "{tag}: weights of mpirun -np 2 and --shards 2"
        );
        assert_eq!(history(&a), history(&b), "{tag}");
        assert_eq!(
            bytes(&a.join("metrics.json")),
            bytes(&b.join("metrics.json"))
        );
    }
    // Stopped after epoch 1 and resumed by 2 ranks: the bits of the
    // uninterrupted run.
    run_mpi(&train_args("784-8C3-BN-P2-D0.2-10", out, "halves", "1"));
    let halves = dir.join("halves");
    run_mpi(&[
        "train",
        "--resume",
        halves.to_str().unwrap(),
        "--epochs",
        "2",
        "--quiet",
    ]);
    assert_eq!(
        bytes(&halves.join("weights.safetensors")),
        bytes(&dir.join("chain-mpi/weights.safetensors"))
    );
    // Resumed by one process (another N): it continues from the checkpoint.
    let o = run_one(&[
        "train",
        "--resume",
        halves.to_str().unwrap(),
        "--epochs",
        "3",
        "--quiet",
    ]);
    assert!(text(&o).contains("Resuming"), "{}", text(&o));
    assert_eq!(history(&halves).len(), 4, "header + 3 epochs");
}

#[test]
fn a_distributed_ensemble_equals_the_one_process_ensemble() {
    let dir = tmp("mpi-ensemble");
    let (two, one) = (dir.join("two"), dir.join("one"));
    let args = |out: &Path| -> Vec<String> {
        [
            "ensemble",
            "--nets",
            "3",
            "784-8C3-P2-D0.2-10",
            "--epochs",
            "1",
            "--train-size",
            "400",
            "--test-size",
            "300",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    let a2 = args(&two);
    run_mpi(&a2.iter().map(String::as_str).collect::<Vec<_>>());
    let a1 = args(&one);
    run_one(&a1.iter().map(String::as_str).collect::<Vec<_>>());
    for i in 1..=3 {
        let net = format!("net-{i:02}/weights.safetensors");
        assert_eq!(bytes(&two.join(&net)), bytes(&one.join(&net)), "{net}");
    }
    let acc = |d: &Path| -> serde_json::Value {
        serde_json::from_slice::<serde_json::Value>(&bytes(&d.join("ensemble.json"))).unwrap()
            ["ensemble_accuracy"]
            .clone()
    };
    assert_eq!(acc(&two), acc(&one));
}

/// Processes of this user whose environment holds every one of `vars`.
fn pids_with_env(vars: &[&str]) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        let entries: Vec<&[u8]> = env.split(|b| *b == 0).collect();
        if vars.iter().all(|v| entries.contains(&v.as_bytes())) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn a_rank_that_dies_ends_the_job_and_leaves_the_checkpoint_readable() {
    let dir = tmp("mpi-kill");
    let out = dir.to_str().unwrap();
    let tag = format!("CONVNET_TEST_TAG=kill-{}", std::process::id());
    let mut args = train_args("784-8C3-P2-10", out, "victim", "200");
    args[4] = "2000";
    let mut job = mpirun(&args)
        .env("CONVNET_TEST_TAG", &tag["CONVNET_TEST_TAG=".len()..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = dir.join("victim");
    let latest = run.join("checkpoints/LATEST");
    let start = Instant::now();
    while !latest.exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rank1 = pids_with_env(&[&tag, "OMPI_COMM_WORLD_RANK=1"]);
    assert_eq!(rank1.len(), 1, "rank 1's process");
    Command::new("kill")
        .args(["-9", &rank1[0].to_string()])
        .status()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = job.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the job hangs after rank 1 died"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let o = job.wait_with_output().unwrap();
    assert!(!status.success());
    let said = text(&o);
    assert!(
        said.contains("signal 9") || said.contains("Killed"),
        "{said}"
    );
    // The newest checkpoint is whole: one more epoch from it.
    let name = std::fs::read_to_string(&latest).unwrap();
    let done: usize = name.trim().trim_start_matches("epoch-").parse().unwrap();
    let next = (done + 1).to_string();
    let o = run_one(&[
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--epochs",
        &next,
        "--quiet",
    ]);
    assert!(
        text(&o).contains(&format!("after epoch {done}")),
        "{}",
        text(&o)
    );
}

/// A rank stopped with SIGSTOP (hung, never exits): the other ends the job
/// within `--rank-timeout`, naming it, instead of waiting in the gradient
/// sum forever.
#[test]
fn a_stopped_rank_ends_the_job_within_the_rank_timeout_naming_it() {
    let dir = tmp("mpi-stop");
    let out = dir.to_str().unwrap();
    let tag = format!("CONVNET_TEST_TAG=stop-{}", std::process::id());
    let mut args = train_args("784-8C3-P2-10", out, "stopped", "200");
    args[4] = "2000";
    args.extend(["--rank-timeout", "4"]);
    let mut job = mpirun(&args)
        .env("CONVNET_TEST_TAG", &tag["CONVNET_TEST_TAG=".len()..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let latest = dir.join("stopped/checkpoints/LATEST");
    let start = Instant::now();
    while !latest.exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rank1 = pids_with_env(&[&tag, "OMPI_COMM_WORLD_RANK=1"]);
    assert_eq!(rank1.len(), 1, "rank 1's process");
    let signal = |sig: &str| {
        Command::new("kill")
            .args([sig, &rank1[0].to_string()])
            .status()
            .unwrap()
    };
    signal("-STOP");
    let stopped = Instant::now();
    let status = loop {
        if let Some(s) = job.try_wait().unwrap() {
            break s;
        }
        if stopped.elapsed() > Duration::from_secs(60) {
            signal("-KILL");
            let _ = job.kill();
            let o = job.wait_with_output().unwrap();
            panic!(
                "the job still waits for the stopped rank after 60 s; it said:\n{}",
                text(&o)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = stopped.elapsed();
    let o = job.wait_with_output().unwrap();
    assert!(!status.success());
    let said = text(&o);
    assert!(
        said.contains("rank(s) [1] did not reach") && said.contains("--rank-timeout"),
        "{said}"
    );
    // The timeout (4 s) plus the launcher's clean-up.
    assert!(took < Duration::from_secs(30), "ended after {took:?}");
    let _ = signal("-KILL");
}

#[test]
fn synchronized_batch_norm_follows_the_whole_batch() {
    let dir = tmp("mpi-syncbn");
    let out = dir.to_str().unwrap();
    let args = |name: &'static str| {
        vec![
            "train",
            "--model",
            "784-8C3-BN-P2-10",
            "--limit",
            "400",
            "--epochs",
            "2",
            "--batch-size",
            "40",
            "--validation-split",
            "0",
            "--quiet",
            "--out",
            out,
            "--name",
            name,
        ]
    };
    let mut synced = args("synced");
    synced.push("--sync-bn");
    let o = run_mpi(&synced);
    assert!(
        text(&o).contains("statistics over all ranks"),
        "{}",
        text(&o)
    );
    run_one(&args("whole"));
    run_mpi(&args("per-rank"));
    // Training losses per epoch: the synchronized ranks follow the one
    // process with the whole batch to rounding; per-rank statistics do not.
    let losses = |name: &str| -> Vec<f64> {
        history(&dir.join(name))[1..]
            .iter()
            .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
            .collect()
    };
    let (s, w, p) = (losses("synced"), losses("whole"), losses("per-rank"));
    for ((s, w), p) in s.iter().zip(&w).zip(&p) {
        assert!(
            (s - w).abs() < 1e-4 * w,
            "synchronized {s} vs whole batch {w}"
        );
        assert!(
            (p - w).abs() > 10.0 * (s - w).abs(),
            "per rank {p}, whole {w}, synced {s}"
        );
    }
}

#[test]
fn a_distributed_experiment_equals_the_one_process_experiment() {
    let dir = tmp("mpi-experiment");
    // Three variants on two ranks: a round with both busy, one with rank 1 idle.
    let family = "784-8C3-P2-10,784-4C3-P2-10,784-8C3-P2-D0.3-10";
    let args = |out: &Path| -> Vec<String> {
        [
            "experiment",
            family,
            "--epochs",
            "1",
            "--train-size",
            "300",
            "--val-size",
            "100",
            "--test-size",
            "200",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    let (two, one) = (dir.join("two"), dir.join("one"));
    let a2 = args(&two);
    run_mpi(&a2.iter().map(String::as_str).collect::<Vec<_>>());
    let a1 = args(&one);
    run_one(&a1.iter().map(String::as_str).collect::<Vec<_>>());
    // Everything but the timings.
    let results = |d: &Path| -> Vec<(String, String, String)> {
        let sub = std::fs::read_dir(d)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let v: serde_json::Value =
            serde_json::from_slice(&bytes(&sub.join("results.json"))).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let losses: Vec<_> = r["history"]["epochs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| (e["loss"].to_string(), e["val_accuracy"].to_string()))
                    .collect();
                (
                    r["name"].to_string(),
                    r["test_accuracy"].to_string(),
                    format!("{losses:?}"),
                )
            })
            .collect()
    };
    let (r2, r1) = (results(&two), results(&one));
    assert_eq!(r2.len(), 3);
    assert_eq!(r2, r1);
}

#[test]
fn an_error_on_one_rank_ends_the_job_with_its_message() {
    let dir = tmp("mpi-error");
    let out = dir.to_str().unwrap();
    // Two programs in one job (mpirun's MPMD form): rank 1 cannot read its data.
    let bin = env!("CARGO_BIN_EXE_convnet");
    let train = [
        "train", "--limit", "200", "--epochs", "1", "--quiet", "--out", out,
    ];
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-np", "1", bin])
        .args(train)
        .args([":", "-np", "1", bin])
        .args(train)
        .args(["--data-dir", "/nonexistent/mnist"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut job = c.spawn().unwrap();
    let start = Instant::now();
    while job.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "rank 0 waits forever"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = job.wait_with_output().unwrap();
    assert!(!o.status.success());
    let said = text(&o);
    assert!(
        said.contains("error: ") && said.contains("/nonexistent/mnist"),
        "{said}"
    );
}

/// `POST path` to the explorer at `addr`: (status, body).
fn post(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply[9..12].parse().unwrap();
    (
        status,
        reply
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    )
}

#[test]
fn the_explorer_sets_every_ranks_rate_and_does_not_pause_a_distributed_run() {
    use std::io::BufRead;
    let dir = tmp("mpi-serve");
    let out = dir.to_str().unwrap();
    let mut args = train_args("784-8C3-P2-10", out, "served", "3");
    args[4] = "3000";
    args.extend(["--serve", "--serve-port", "0"]);
    let mut job = mpirun(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = job.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(|l| l.ok())
        {
            let _ = tx.send(line);
        }
    });
    let wait_for = |what: &str| -> String {
        let start = Instant::now();
        loop {
            let left = Duration::from_secs(180).saturating_sub(start.elapsed());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line with {what:?} from the job"),
            }
        }
    };
    let line = wait_for("http://");
    let addr = line
        .split("http://")
        .nth(1)
        .unwrap()
        .trim_end_matches(|c: char| c != '/' && !c.is_ascii_digit());
    let addr = addr
        .trim_end_matches('/')
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let (s, body) = post(&addr, "/api/pause?on=1");
    assert_eq!(s, 409, "{body}");
    assert!(body.contains("2 ranks"), "{body}");
    let (s, body) = post(&addr, "/api/lr?value=0.0005");
    assert_eq!(s, 200, "{body}");
    wait_for("Training done");
    let _ = job.kill();
    let _ = job.wait();
    // Epoch 2 ran wholly at the new rate (the schedule, exp:0.95, scaled to it), and the
    // per-step broadcast of rank 0's rate went through MPI to the end. That rank 1 applies the
    // same rate, to the bit, is checked with threads as ranks (nn's data_parallel.rs).
    let lr: Vec<f64> = std::fs::read_to_string(dir.join("served/history.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(5).unwrap().parse().unwrap())
        .collect();
    assert_eq!(lr.len(), 3, "{lr:?}");
    assert!((lr[1] - 0.0005 * 0.95).abs() < 1e-9, "{lr:?}");
}
