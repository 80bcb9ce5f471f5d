//! Model descriptions the package cannot write itself: the compact
//! notation (`32C5-P2-64C5-P2-128-D0.4-10`) and the built-in nets, as JSON
//! `ModelSpec`s that `Engine::build` takes.

use crate::engine::value_err;
use convnet_nn::{zoo, NotationOptions};
use pyo3::prelude::*;

/// The notation's model for inputs `input` (`[H, W, C]`; none: the
/// notation's own or MNIST's), with `padding` and `activation` as the CLI's
/// `--padding` and `--activation`; an error points at the token.
#[pyfunction]
#[pyo3(signature = (notation, input=None, padding="same", activation="relu"))]
pub fn notation_spec(
    notation: &str,
    input: Option<Vec<usize>>,
    padding: &str,
    activation: &str,
) -> PyResult<String> {
    let mut opts = NotationOptions::default()
        .with_padding(convnet_run::settings::parse_padding(padding).map_err(value_err)?)
        .with_activation(convnet_run::settings::parse_activation(activation).map_err(value_err)?);
    opts = opts.with_input(input.as_deref().unwrap_or(&[28, 28, 1]));
    let spec = convnet_nn::parse_notation(notation, &opts).map_err(value_err)?;
    serde_json::to_string(&spec).map_err(value_err)
}

/// The built-in net `name` (`resnet20`, `vgg16`, `mobilenet_v2`, ...) for
/// inputs `[H, W, C]` and `classes` outputs (defaults: what it is made for).
#[pyfunction]
#[pyo3(signature = (name, input=None, classes=None))]
pub fn builtin_spec(
    name: &str,
    input: Option<Vec<usize>>,
    classes: Option<usize>,
) -> PyResult<String> {
    let (default_input, default_classes) = zoo::defaults(name).ok_or_else(|| {
        value_err(format!(
            "no built-in net '{name}': expected one of {}",
            zoo::NAMES.join(", ")
        ))
    })?;
    let input = input.unwrap_or(default_input);
    let spec = zoo::builtin(name, &input, classes.unwrap_or(default_classes))
        .expect("the name was checked")
        .map_err(value_err)?;
    serde_json::to_string(&spec).map_err(value_err)
}
