//! Optimizer updates against Keras, step by step (fixtures:
//! tools/golden/gen_optimizer_golden.py). Every step's change of every
//! weight is compared with Keras's change, relative to the change itself,
//! so that a plausible wrong implementation (beta_2 = 0.99 for 0.999, or
//! epsilon where PyTorch puts it) fails.

mod common;

use common::cases;
use convnet_nn::{Optimizer, OptimizerConfig};
use serde_json::Value;

fn vec(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn config(c: &Value) -> OptimizerConfig {
    let f = |k: &str| c["config"][k].as_f64().unwrap() as f32;
    match c["optimizer"].as_str().unwrap() {
        "sgd_momentum" => OptimizerConfig::sgd()
            .with_learning_rate(f("learning_rate"))
            .with_momentum(f("momentum")),
        "sgd_nesterov" => OptimizerConfig::sgd()
            .with_learning_rate(f("learning_rate"))
            .with_momentum(f("momentum"))
            .with_nesterov(true),
        "adam" => OptimizerConfig::Adam {
            learning_rate: f("learning_rate"),
            beta_1: f("beta_1"),
            beta_2: f("beta_2"),
            epsilon: f("epsilon"),
        },
        "adamw" => OptimizerConfig::AdamW {
            learning_rate: f("learning_rate"),
            weight_decay: f("weight_decay"),
            beta_1: f("beta_1"),
            beta_2: f("beta_2"),
            epsilon: f("epsilon"),
        },
        "rmsprop" => OptimizerConfig::RmsProp {
            learning_rate: f("learning_rate"),
            rho: f("rho"),
            epsilon: f("epsilon"),
        },
        other => panic!("unknown optimizer {other}"),
    }
}

/// The weights after each step with `cfg`.
fn run(cfg: OptimizerConfig, c: &Value) -> Vec<Vec<f32>> {
    let lr = cfg.learning_rate();
    let mut opt = Optimizer::new(cfg);
    let mut w = vec(&c["w0"]);
    let mut out = Vec::new();
    for g in c["grads"].as_array().unwrap() {
        let g = vec(g);
        opt.step(&mut [(&mut w[..], &g[..])], lr);
        out.push(w.clone());
    }
    out
}

/// The worst disagreement of the per-step changes, relative to the
/// reference's change: max |d_ours - d_ref| / (|d_ref| + floor).
fn worst(ours: &[Vec<f32>], reference: &Value, w0: &[f32]) -> f64 {
    let mut prev_o = w0.to_vec();
    let mut prev_r: Vec<f64> = w0.iter().map(|&v| v as f64).collect();
    let mut worst = 0.0f64;
    for (o, r) in ours.iter().zip(reference.as_array().unwrap()) {
        let r: Vec<f64> = r
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        for j in 0..o.len() {
            let d_o = o[j] as f64 - prev_o[j] as f64;
            let d_r = r[j] - prev_r[j];
            // The floor: a few f32 ulps of the weight, which is what both sides round to.
            let floor = 4.0 * f32::EPSILON as f64 * r[j].abs().max(1e-3);
            worst = worst.max((d_o - d_r).abs() / (d_r.abs() + floor));
        }
        prev_o = o.clone();
        prev_r = r;
    }
    worst
}

#[test]
fn every_step_of_every_optimizer_matches_keras_relative_to_the_update() {
    let all = cases("optimizers.json");
    assert_eq!(all.len(), 10);
    for c in &all {
        let name = format!(
            "{} ({})",
            c["optimizer"].as_str().unwrap(),
            c["regime"].as_str().unwrap()
        );
        let w0 = vec(&c["w0"]);
        let ours = run(config(c), c);
        let err = worst(&ours, &c["keras"], &w0);
        assert!(
            err <= 2e-3,
            "{name}: a step's change is off by {:.3} % of Keras's",
            100.0 * err
        );
    }
}

#[test]
fn the_cases_tell_plausible_mistakes_apart() {
    let all = cases("optimizers.json");
    for c in all.iter().filter(|c| c["optimizer"] == "adam") {
        let regime = c["regime"].as_str().unwrap();
        let w0 = vec(&c["w0"]);
        // beta_2 = 0.99 instead of 0.999 fails in both regimes.
        let mut wrong = config(c);
        if let OptimizerConfig::Adam { beta_2, .. } = &mut wrong {
            *beta_2 = 0.99;
        }
        let err = worst(&run(wrong, c), &c["keras"], &w0);
        assert!(err > 2.0 * 2e-3, "{regime}: beta_2 0.99 passes ({err})");
        // Where epsilon goes (Keras: on sqrt(v) before the bias correction,
        // PyTorch: after it) decides the tiny-gradient case: there PyTorch's
        // rule is far from Keras's, and ours is Keras's.
        let torch_vs_keras = {
            let t: Vec<Vec<f32>> = c["torch"].as_array().unwrap().iter().map(vec).collect();
            worst(&t, &c["keras"], &w0)
        };
        if regime == "tiny" {
            assert!(
                torch_vs_keras > 0.1,
                "PyTorch's epsilon passes the tiny case ({torch_vs_keras})"
            );
        } else {
            assert!(
                torch_vs_keras < 2e-3,
                "the normal case does not depend on epsilon ({torch_vs_keras})"
            );
        }
    }
}
