//! Optimizers with Keras's update rules and defaults.
//!
//! For a parameter `w` with gradient `g` at step `t` (1-based) and learning
//! rate `lr`:
//!
//! ```text
//! SGD          v = momentum v - lr g;   w += v                     (nesterov: w += momentum v - lr g)
//! Adam         m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//!              w -= lr sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)
//! AdamW        Adam, then  w -= lr wd w   (decoupled weight decay, applied first as in Keras)
//! RMSprop      v = rho v + (1-rho) g^2;  w -= lr g / (sqrt(v) + eps)
//! ```
//!
//! Defaults (Keras): SGD lr 0.01; Adam lr 1e-3, b1 0.9, b2 0.999, eps 1e-7;
//! AdamW weight decay 0.004; RMSprop lr 1e-3, rho 0.9, eps 1e-7.
//! With a constant learning rate Keras's SGD momentum equals PyTorch's
//! (`buf = momentum buf + g; w -= lr buf`), and Adam differs from PyTorch's
//! only in where eps enters, which the golden test's tolerance absorbs.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// An optimizer's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// Stochastic gradient descent with optional (Nesterov) momentum.
    Sgd {
        /// Learning rate.
        learning_rate: f32,
        /// Momentum (0 for plain SGD).
        momentum: f32,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// Adam.
    Adam {
        /// Learning rate.
        learning_rate: f32,
        /// Decay of the first moment.
        beta_1: f32,
        /// Decay of the second moment.
        beta_2: f32,
        /// Added to the root of the second moment.
        epsilon: f32,
    },
    /// Adam with decoupled weight decay.
    AdamW {
        /// Learning rate.
        learning_rate: f32,
        /// Decoupled weight decay.
        weight_decay: f32,
        /// Decay of the first moment.
        beta_1: f32,
        /// Decay of the second moment.
        beta_2: f32,
        /// Added to the root of the second moment.
        epsilon: f32,
    },
    /// RMSprop.
    RmsProp {
        /// Learning rate.
        learning_rate: f32,
        /// Decay of the squared-gradient average.
        rho: f32,
        /// Added to the average under the root, as Keras does (PyTorch adds it to the root).
        epsilon: f32,
    },
}

impl OptimizerConfig {
    /// SGD with Keras's default learning rate 0.01 and no momentum.
    pub fn sgd() -> Self {
        OptimizerConfig::Sgd {
            learning_rate: 0.01,
            momentum: 0.0,
            nesterov: false,
        }
    }
    /// Adam with Keras's defaults.
    pub fn adam() -> Self {
        OptimizerConfig::Adam {
            learning_rate: 1e-3,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
        }
    }
    /// AdamW with Keras's defaults.
    pub fn adamw() -> Self {
        OptimizerConfig::AdamW {
            learning_rate: 1e-3,
            weight_decay: 0.004,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
        }
    }
    /// RMSprop with Keras's defaults.
    pub fn rmsprop() -> Self {
        OptimizerConfig::RmsProp {
            learning_rate: 1e-3,
            rho: 0.9,
            epsilon: 1e-7,
        }
    }
    /// Parses `sgd`, `adam`, `adamw` or `rmsprop` with defaults.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "sgd" => Self::sgd(),
            "adam" => Self::adam(),
            "adamw" => Self::adamw(),
            "rmsprop" => Self::rmsprop(),
            _ => return None,
        })
    }
    /// The learning rate.
    pub fn learning_rate(&self) -> f32 {
        match *self {
            OptimizerConfig::Sgd { learning_rate, .. }
            | OptimizerConfig::Adam { learning_rate, .. }
            | OptimizerConfig::AdamW { learning_rate, .. }
            | OptimizerConfig::RmsProp { learning_rate, .. } => learning_rate,
        }
    }
    /// The same optimizer with another learning rate.
    pub fn with_learning_rate(mut self, lr: f32) -> Self {
        match &mut self {
            OptimizerConfig::Sgd { learning_rate, .. }
            | OptimizerConfig::Adam { learning_rate, .. }
            | OptimizerConfig::AdamW { learning_rate, .. }
            | OptimizerConfig::RmsProp { learning_rate, .. } => *learning_rate = lr,
        }
        self
    }
    /// SGD momentum (ignored by the others).
    pub fn with_momentum(mut self, m: f32) -> Self {
        if let OptimizerConfig::Sgd { momentum, .. } = &mut self {
            *momentum = m;
        }
        self
    }
    /// Checks every setting against its range (a learning rate > 0, decays
    /// and momentum in [0, 1), epsilon > 0, weight decay >= 0, all finite);
    /// the error names the setting as Keras does and what was found.
    pub fn validate(&self) -> crate::Result<()> {
        let check = |name: &str, v: f32, ok: bool, expected: &str| {
            if ok && v.is_finite() {
                Ok(())
            } else {
                Err(crate::error::config_err(
                    name,
                    format!("expected {expected}, found {v}"),
                ))
            }
        };
        let lr = self.learning_rate();
        check("learning_rate", lr, lr > 0.0, "a finite value > 0")?;
        let unit =
            |name: &str, v: f32| check(name, v, (0.0..1.0).contains(&v), "a value in [0, 1)");
        let eps = |v: f32| check("epsilon", v, v > 0.0, "a finite value > 0");
        match *self {
            OptimizerConfig::Sgd { momentum, .. } => unit("momentum", momentum),
            OptimizerConfig::Adam {
                beta_1,
                beta_2,
                epsilon,
                ..
            } => unit("beta_1", beta_1)
                .and(unit("beta_2", beta_2))
                .and(eps(epsilon)),
            OptimizerConfig::AdamW {
                weight_decay,
                beta_1,
                beta_2,
                epsilon,
                ..
            } => check(
                "weight_decay",
                weight_decay,
                weight_decay >= 0.0,
                "a finite value >= 0",
            )
            .and(unit("beta_1", beta_1))
            .and(unit("beta_2", beta_2))
            .and(eps(epsilon)),
            OptimizerConfig::RmsProp { rho, epsilon, .. } => unit("rho", rho).and(eps(epsilon)),
        }
    }
    /// Nesterov momentum for SGD (ignored by the others).
    pub fn with_nesterov(mut self, n: bool) -> Self {
        if let OptimizerConfig::Sgd { nesterov, .. } = &mut self {
            *nesterov = n;
        }
        self
    }
}

/// An optimizer with its per-parameter state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Optimizer {
    /// The configuration (its learning rate is the base rate).
    pub config: OptimizerConfig,
    /// Steps taken so far.
    pub iterations: u64,
    /// First slot per parameter (velocity or first moment).
    slots_a: Vec<Vec<f32>>,
    /// Second slot per parameter (second moment), where used.
    slots_b: Vec<Vec<f32>>,
}

impl Optimizer {
    /// A fresh optimizer.
    pub fn new(config: OptimizerConfig) -> Self {
        Optimizer {
            config,
            iterations: 0,
            slots_a: Vec::new(),
            slots_b: Vec::new(),
        }
    }

    /// The state as named flat vectors (for checkpoints).
    pub fn state(&self) -> Vec<(String, &[f32])> {
        let mut out = Vec::new();
        for (i, s) in self.slots_a.iter().enumerate() {
            out.push((format!("a.{i}"), s.as_slice()));
        }
        for (i, s) in self.slots_b.iter().enumerate() {
            out.push((format!("b.{i}"), s.as_slice()));
        }
        out
    }

    /// Restores the slots written by [`Optimizer::state`].
    pub fn set_state(&mut self, iterations: u64, a: Vec<Vec<f32>>, b: Vec<Vec<f32>>) {
        self.iterations = iterations;
        self.slots_a = a;
        self.slots_b = b;
    }

    /// One update of every `(value, grad)` pair at learning rate `lr`.
    /// The pairs must come in the same order at every step.
    pub fn step(&mut self, params: &mut [(&mut [f32], &[f32])], lr: f32) {
        self.iterations += 1;
        let t = self.iterations as i32;
        let two_slots = !matches!(
            self.config,
            OptimizerConfig::Sgd { .. } | OptimizerConfig::RmsProp { .. }
        );
        if self.slots_a.len() != params.len() {
            self.slots_a = params.iter().map(|(w, _)| vec![0.0; w.len()]).collect();
            self.slots_b = if two_slots {
                params.iter().map(|(w, _)| vec![0.0; w.len()]).collect()
            } else {
                Vec::new()
            };
        }
        let (slots_a, slots_b) = (&mut self.slots_a, &mut self.slots_b);
        let config = self.config.clone();
        for (i, (w, g)) in params.iter_mut().enumerate() {
            let g: &[f32] = g;
            match config {
                OptimizerConfig::Sgd {
                    momentum, nesterov, ..
                } => {
                    let v = &mut slots_a[i];
                    par_blocks2(w, v, g, |w, v, g| {
                        for j in 0..w.len() {
                            if momentum == 0.0 {
                                w[j] -= lr * g[j];
                            } else {
                                v[j] = momentum * v[j] - lr * g[j];
                                w[j] += if nesterov {
                                    momentum * v[j] - lr * g[j]
                                } else {
                                    v[j]
                                };
                            }
                        }
                    });
                }
                OptimizerConfig::Adam {
                    beta_1,
                    beta_2,
                    epsilon,
                    ..
                }
                | OptimizerConfig::AdamW {
                    beta_1,
                    beta_2,
                    epsilon,
                    ..
                } => {
                    let decay = match config {
                        OptimizerConfig::AdamW { weight_decay, .. } => weight_decay * lr,
                        _ => 0.0,
                    };
                    let alpha = lr * (1.0 - beta_2.powi(t)).sqrt() / (1.0 - beta_1.powi(t));
                    let (m, v) = (&mut slots_a[i], &mut slots_b[i]);
                    par_blocks3(w, m, v, g, |w, m, v, g| {
                        for j in 0..w.len() {
                            w[j] -= w[j] * decay;
                            m[j] += (g[j] - m[j]) * (1.0 - beta_1);
                            v[j] += (g[j] * g[j] - v[j]) * (1.0 - beta_2);
                            w[j] -= alpha * m[j] / (v[j].sqrt() + epsilon);
                        }
                    });
                }
                OptimizerConfig::RmsProp { rho, epsilon, .. } => {
                    let v = &mut slots_a[i];
                    par_blocks2(w, v, g, |w, v, g| {
                        for j in 0..w.len() {
                            v[j] = rho * v[j] + (1.0 - rho) * g[j] * g[j];
                            // Keras: epsilon inside the root (PyTorch adds it outside).
                            w[j] -= lr * g[j] / (v[j] + epsilon).sqrt();
                        }
                    });
                }
            }
        }
    }
}

/// Values per block of the element-wise updates, run in parallel.
const BLOCK: usize = 1 << 14;

/// Runs `f` over matching blocks of a parameter, one slot and its gradient.
fn par_blocks2<F>(w: &mut [f32], a: &mut [f32], g: &[f32], f: F)
where
    F: Fn(&mut [f32], &mut [f32], &[f32]) + Sync,
{
    w.par_chunks_mut(BLOCK)
        .zip(a.par_chunks_mut(BLOCK))
        .zip(g.par_chunks(BLOCK))
        .for_each(|((w, a), g)| f(w, a, g));
}

/// Runs `f` over matching blocks of a parameter, two slots and its gradient.
fn par_blocks3<F>(w: &mut [f32], a: &mut [f32], b: &mut [f32], g: &[f32], f: F)
where
    F: Fn(&mut [f32], &mut [f32], &mut [f32], &[f32]) + Sync,
{
    w.par_chunks_mut(BLOCK)
        .zip(a.par_chunks_mut(BLOCK))
        .zip(b.par_chunks_mut(BLOCK))
        .zip(g.par_chunks(BLOCK))
        .for_each(|(((w, a), b), g)| f(w, a, b, g));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_range_are_refused_with_their_name() {
        for cfg in [
            OptimizerConfig::sgd(),
            OptimizerConfig::adam(),
            OptimizerConfig::adamw(),
            OptimizerConfig::rmsprop(),
        ] {
            cfg.validate().unwrap();
            for lr in [0.0, -1.0, f32::NAN, f32::INFINITY] {
                let e = cfg.clone().with_learning_rate(lr).validate().unwrap_err();
                assert!(e.to_string().starts_with("learning_rate: "), "{e}");
            }
        }
        let e = OptimizerConfig::sgd().with_momentum(5.0).validate();
        assert!(e.unwrap_err().to_string().contains("momentum"));
        let mut adam = OptimizerConfig::adam();
        if let OptimizerConfig::Adam { beta_2, .. } = &mut adam {
            *beta_2 = 1.0;
        }
        assert!(adam.validate().unwrap_err().to_string().contains("beta_2"));
    }

    fn run(cfg: OptimizerConfig, steps: usize) -> f32 {
        // Minimize f(w) = (w - 3)^2 from w = 0.
        let mut opt = Optimizer::new(cfg.clone());
        let mut w = [0.0f32];
        for _ in 0..steps {
            let g = [2.0 * (w[0] - 3.0)];
            opt.step(&mut [(&mut w[..], &g[..])], cfg.learning_rate());
        }
        w[0]
    }

    #[test]
    fn every_optimizer_minimizes_a_parabola() {
        assert!((run(OptimizerConfig::sgd().with_learning_rate(0.1), 100) - 3.0).abs() < 1e-3);
        assert!(
            (run(
                OptimizerConfig::sgd()
                    .with_learning_rate(0.05)
                    .with_momentum(0.9)
                    .with_nesterov(true),
                300
            ) - 3.0)
                .abs()
                < 1e-3
        );
        assert!((run(OptimizerConfig::adam().with_learning_rate(0.1), 500) - 3.0).abs() < 1e-2);
        assert!(
            (run(OptimizerConfig::rmsprop().with_learning_rate(0.01), 1000) - 3.0).abs() < 2e-2
        );
        // AdamW's decay pulls slightly towards 0.
        let w = run(OptimizerConfig::adamw().with_learning_rate(0.1), 500);
        assert!((w - 3.0).abs() < 0.1 && w < 3.0, "{w}");
    }

    #[test]
    fn first_adam_step_moves_by_the_learning_rate() {
        // Bias correction makes the first step exactly lr * sign(g) (up to eps).
        let mut opt = Optimizer::new(OptimizerConfig::adam());
        let mut w = [1.0f32, 1.0];
        opt.step(&mut [(&mut w[..], &[0.5, -2.0][..])], 1e-3);
        assert!((w[0] - 0.999).abs() < 1e-6 && (w[1] - 1.001).abs() < 1e-6);
    }
}
