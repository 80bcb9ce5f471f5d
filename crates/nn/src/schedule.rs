//! Learning-rate schedules, evaluated once per epoch (0-based `epoch`).
//!
//! ```text
//! constant     lr(e) = lr0
//! exponential  lr(e) = lr0 * decay^e            (the MNIST experiment: 1e-3 * 0.95^e)
//! step         lr(e) = lr0 * factor^floor(e / every)
//! cosine       lr(e) = min + (lr0 - min) (1 + cos(pi e / epochs)) / 2
//! one_cycle    linear warm-up from lr0/25 to lr0 over the first 30 % of the
//!              epochs, then cosine annealing down to lr0/1e4 (fast.ai / PyTorch OneCycleLR shape)
//! ```
//!
//! ReduceLROnPlateau, which reacts to the validation loss, is a callback
//! (see `callbacks`); it scales whatever the schedule gives.

use serde::{Deserialize, Serialize};

/// A per-epoch learning-rate schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Schedule {
    /// The optimizer's rate, unchanged.
    #[default]
    Constant,
    /// `lr0 * decay^epoch`.
    Exponential {
        /// Factor per epoch.
        decay: f32,
    },
    /// `lr0 * factor^(epoch / every)`.
    Step {
        /// Epochs between drops.
        every: usize,
        /// Factor at each drop.
        factor: f32,
    },
    /// Cosine annealing from `lr0` to `min_lr` over `epochs`.
    Cosine {
        /// Length of the schedule in epochs.
        epochs: usize,
        /// Final rate.
        min_lr: f32,
    },
    /// One-cycle: warm-up to `lr0`, then anneal, over `epochs`.
    OneCycle {
        /// Length of the cycle in epochs.
        epochs: usize,
    },
}

impl Schedule {
    /// Checks the schedule's settings: a decay or factor finite and > 0 (a
    /// value above 1 raises the rate, allowed), a step of at least one
    /// epoch, a final cosine rate finite and >= 0.
    pub fn validate(&self) -> crate::Result<()> {
        let err = |what: &str, msg: String| Err(crate::error::config_err(what, msg));
        match *self {
            Schedule::Exponential { decay } if !(decay > 0.0 && decay.is_finite()) => err(
                "schedule exp:DECAY",
                format!("expected a finite decay > 0, found {decay}"),
            ),
            Schedule::Step { every: 0, .. } => err(
                "schedule step:EVERY:FACTOR",
                "expected EVERY >= 1 epoch, found 0".into(),
            ),
            Schedule::Step { factor, .. } if !(factor > 0.0 && factor.is_finite()) => err(
                "schedule step:EVERY:FACTOR",
                format!("expected a finite FACTOR > 0, found {factor}"),
            ),
            Schedule::Cosine { min_lr, .. } if !(min_lr >= 0.0 && min_lr.is_finite()) => err(
                "schedule cosine",
                format!("expected a finite final rate >= 0, found {min_lr}"),
            ),
            _ => Ok(()),
        }
    }

    /// The rate for `epoch` given the base rate `lr0`.
    pub fn rate(&self, lr0: f32, epoch: usize) -> f32 {
        let e = epoch as f32;
        match *self {
            Schedule::Constant => lr0,
            Schedule::Exponential { decay } => lr0 * decay.powi(epoch as i32),
            Schedule::Step { every, factor } => lr0 * factor.powi((epoch / every.max(1)) as i32),
            Schedule::Cosine { epochs, min_lr } => {
                let p = (e / epochs.max(1) as f32).min(1.0);
                min_lr + (lr0 - min_lr) * 0.5 * (1.0 + (std::f32::consts::PI * p).cos())
            }
            Schedule::OneCycle { epochs } => {
                let total = epochs.max(1) as f32;
                let warm = (0.3 * total).max(1.0);
                let start = lr0 / 25.0;
                let end = lr0 / 1e4;
                if e < warm {
                    start + (lr0 - start) * e / warm
                } else {
                    let p = ((e - warm) / (total - warm).max(1.0)).min(1.0);
                    end + (lr0 - end) * 0.5 * (1.0 + (std::f32::consts::PI * p).cos())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_out_of_range_are_refused() {
        for bad in [
            Schedule::Exponential { decay: -1.0 },
            Schedule::Exponential { decay: f32::NAN },
            Schedule::Step {
                every: 0,
                factor: 0.5,
            },
            Schedule::Step {
                every: 2,
                factor: 0.0,
            },
            Schedule::Cosine {
                epochs: 5,
                min_lr: -1.0,
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        Schedule::Exponential { decay: 0.95 }.validate().unwrap();
        Schedule::Constant.validate().unwrap();
    }

    #[test]
    fn schedules_follow_their_formulas() {
        let s = Schedule::Exponential { decay: 0.95 };
        assert!((s.rate(1e-3, 2) - 1e-3 * 0.9025).abs() < 1e-9);
        let s = Schedule::Step {
            every: 10,
            factor: 0.5,
        };
        assert_eq!(
            (s.rate(1.0, 9), s.rate(1.0, 10), s.rate(1.0, 25)),
            (1.0, 0.5, 0.25)
        );
        let s = Schedule::Cosine {
            epochs: 10,
            min_lr: 0.0,
        };
        assert!((s.rate(1.0, 0) - 1.0).abs() < 1e-6 && (s.rate(1.0, 5) - 0.5).abs() < 1e-6);
        assert!(s.rate(1.0, 10).abs() < 1e-6);
        let s = Schedule::OneCycle { epochs: 10 };
        assert!((s.rate(1.0, 0) - 0.04).abs() < 1e-6);
        assert!((s.rate(1.0, 3) - 1.0).abs() < 1e-6);
        assert!(s.rate(1.0, 9) < 0.1);
        assert_eq!(Schedule::Constant.rate(0.3, 99), 0.3);
    }
}
