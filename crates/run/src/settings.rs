//! The training settings every front end shares: their defaults (one place:
//! the CLI's flags, the lab's experiments and ensembles and, later, the
//! Python API take them from here) and their parsing from text.

use crate::error::{Result, RunError};
use convnet_nn::{Activation, Loss, OptimizerConfig, Padding, Schedule};

/// Epochs of a new run.
pub const EPOCHS: usize = 3;
/// Samples per gradient step.
pub const BATCH_SIZE: usize = 64;
/// The optimizer, by name (Keras's defaults for its rate and moments).
pub const OPTIMIZER: &str = "adam";
/// The learning-rate schedule: `lr * 0.95^epoch`.
pub const SCHEDULE: &str = "exp:0.95";
/// The loss: sparse categorical cross-entropy, or binary for one output.
pub const LOSS: &str = "auto";
/// The fraction of the training samples held out for validation (the last ones).
pub const VALIDATION_SPLIT: f32 = 0.1;
/// The seed of weights, shuffles, dropout and augmentation.
pub const SEED: u64 = 42;

/// The default optimizer ([`OPTIMIZER`]).
pub fn optimizer() -> OptimizerConfig {
    OptimizerConfig::from_name(OPTIMIZER).expect("the default optimizer exists")
}

/// The default schedule ([`SCHEDULE`]).
pub fn schedule() -> Schedule {
    parse_schedule(SCHEDULE).expect("the default schedule parses")
}

/// `same` or `valid`.
pub fn parse_padding(s: &str) -> Result<Padding> {
    match s {
        "same" => Ok(Padding::Same),
        "valid" => Ok(Padding::Valid),
        _ => Err(RunError::usage(format!(
            "--padding '{s}': expected same or valid"
        ))),
    }
}

/// The notation's activation of convolutions and hidden dense layers, by
/// Keras's name (`relu`, `relu6` for MobileNet, `swish` for EfficientNet, ...).
pub fn parse_activation(s: &str) -> Result<Activation> {
    match Activation::from_name(s) {
        Some(a) if a != Activation::Softmax => Ok(a),
        _ => Err(RunError::usage(format!(
            "--activation '{s}': expected relu, relu6, swish (or silu), tanh, sigmoid, elu, leaky_relu or linear"
        ))),
    }
}

/// An optimizer by name: adam, adamw, sgd or rmsprop.
pub fn parse_optimizer(s: &str) -> Result<OptimizerConfig> {
    OptimizerConfig::from_name(s).ok_or_else(|| {
        RunError::usage(format!(
            "--optimizer '{s}': expected adam, adamw, sgd or rmsprop"
        ))
    })
}

/// constant, exp:DECAY, step:EVERY:FACTOR, cosine or onecycle (the last two
/// sized to the run by [`sized_schedule`]).
pub fn parse_schedule(s: &str) -> Result<Schedule> {
    let bad = || {
        RunError::usage(format!(
            "--schedule '{s}': expected constant, exp:DECAY, step:EVERY:FACTOR, cosine or onecycle"
        ))
    };
    let parts: Vec<&str> = s.split(':').collect();
    let sched = match parts.as_slice() {
        ["constant"] => Schedule::Constant,
        ["exp", d] => Schedule::Exponential {
            decay: d.parse().map_err(|_| bad())?,
        },
        ["step", every, factor] => Schedule::Step {
            every: every.parse().map_err(|_| bad())?,
            factor: factor.parse().map_err(|_| bad())?,
        },
        ["cosine"] => Schedule::Cosine {
            epochs: 0,
            min_lr: 0.0,
        },
        ["onecycle"] => Schedule::OneCycle { epochs: 0 },
        _ => return Err(bad()),
    };
    sched
        .validate()
        .map_err(|e| RunError::usage(format!("--schedule '{s}': {e}")))?;
    Ok(sched)
}

/// Fills in the run length for schedules that need it.
pub fn sized_schedule(s: Schedule, epochs: usize) -> Schedule {
    match s {
        Schedule::Cosine { epochs: 0, min_lr } => Schedule::Cosine { epochs, min_lr },
        Schedule::OneCycle { epochs: 0 } => Schedule::OneCycle { epochs },
        other => other,
    }
}

/// A loss by name; `auto` is sparse categorical cross-entropy, or binary
/// cross-entropy for a model with one output.
pub fn parse_loss(s: &str, outputs: usize) -> Result<Loss> {
    if s == "auto" {
        return Ok(if outputs == 1 {
            Loss::BinaryCrossentropy
        } else {
            Loss::SparseCategoricalCrossentropy
        });
    }
    Loss::from_name(s).ok_or_else(|| {
        RunError::usage(format!(
            "--loss '{s}': expected auto, categorical_crossentropy, sparse_categorical_crossentropy, \
             binary_crossentropy or mse"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_keras_adam_with_a_decaying_rate() {
        assert_eq!(optimizer(), OptimizerConfig::adam());
        assert_eq!(schedule(), Schedule::Exponential { decay: 0.95 });
        assert_eq!(
            parse_loss(LOSS, 10).unwrap(),
            Loss::SparseCategoricalCrossentropy
        );
        assert_eq!(parse_loss(LOSS, 1).unwrap(), Loss::BinaryCrossentropy);
    }

    #[test]
    fn bad_settings_name_the_flag_and_what_was_expected() {
        let e = parse_schedule("exp:x").unwrap_err().to_string();
        assert!(e.contains("--schedule 'exp:x': expected constant"), "{e}");
        let e = parse_optimizer("adagrad").unwrap_err().to_string();
        assert!(e.contains("--optimizer 'adagrad'"), "{e}");
        assert!(parse_padding("full").is_err());
        assert_eq!(parse_activation("silu").unwrap(), Activation::Swish);
        assert_eq!(parse_activation("relu6").unwrap(), Activation::Relu6);
        for bad in ["softmax", "gelu"] {
            let e = parse_activation(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("--activation '{bad}'")), "{e}");
        }
        assert_eq!(
            sized_schedule(parse_schedule("cosine").unwrap(), 7),
            Schedule::Cosine {
                epochs: 7,
                min_lr: 0.0
            }
        );
    }
}
