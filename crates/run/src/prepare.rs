//! Preparing a run's model before the pipeline trains it: `convnet
//! finetune`'s start (a trained run cut, frozen, with a new head) and
//! `--freeze`. The pipeline itself never branches on where a model came
//! from; it is handed the prepared model (see [`crate::pipeline::Start`]).

use crate::error::{Result, RunError};
use crate::folder::FinetunePlan;
use convnet_nn::{parse_notation, Model, ModelSpec, NotationOptions};

/// `convnet finetune`'s model: the plan's source run cut at `cut` (default:
/// before its classifier), frozen, with the `head` notation on top, the
/// head's weights drawn with `seed`. The same plan and seed give the same
/// model, which is how a finetune stopped before its first checkpoint is
/// rebuilt.
pub fn cut_and_head(plan: &FinetunePlan, seed: u64) -> Result<Model> {
    let base = Model::load(&plan.source)?;
    let cut = match &plan.cut {
        Some(c) => c.clone(),
        None => base.spec().default_cut()?,
    };
    let at = base
        .spec()
        .position(&cut)
        .map_err(|e| RunError::usage(format!("--cut: {e}")))?;
    let shape = base.spec().output_shapes()?[at].clone();
    let opts = NotationOptions::default()
        .with_padding(plan.padding)
        .with_activation(plan.activation)
        .with_input(&shape);
    let head = parse_notation(&plan.head, &opts)?;
    base.with_new_head(&cut, &head, seed)
        .map_err(|e| RunError::usage(format!("--head: {e}")))
}

/// Applies `--freeze`: `N` freezes the first N layers, `until:NAME` every
/// layer up to and including NAME; an error if nothing would be left to train.
pub fn apply_freeze(spec: &mut ModelSpec, arg: &str) -> Result<()> {
    let usage = |msg: String| RunError::usage(format!("--freeze '{arg}': {msg}"));
    if let Some(name) = arg.strip_prefix("until:") {
        spec.freeze_through(name)
            .map_err(|e| usage(e.to_string()))?;
    } else {
        let n: usize = arg
            .parse()
            .map_err(|_| usage("expected a layer count N or until:NAME".into()))?;
        if n > spec.layers.len() {
            return Err(usage(format!("the model has {} layers", spec.layers.len())));
        }
        spec.freeze_first(n);
    }
    if spec.summary()?.trainable == 0 {
        return Err(usage(
            "every layer with weights would be frozen: nothing left to train".into(),
        ));
    }
    Ok(())
}
