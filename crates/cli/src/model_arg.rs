//! `--model`: a built-in architecture (`resnet20`, `vgg16-bn`, ...; see
//! `convnet_nn::zoo`), a notation (`32C5-P2-64C5-P2-128-D0.4-10`) or a model
//! file (`.json` or `.toml`, the `ModelSpec` format documented in README.md).

use crate::error::{CliError, CliResult};
use convnet_nn::{parse_notation, zoo, ModelSpec, NotationOptions};
use std::path::Path;

/// The recommended MNIST net that `convnet train` uses by default.
pub const DEFAULT_MNIST_MODEL: &str = "32C5-P2-64C5-P2-128-D0.4-10";

/// Resolves a model argument for inputs of `input` shape; a notation takes
/// `notation`'s padding and activation; `classes` sets a built-in net's
/// outputs (default: the net's own, 1,000 or 10).
pub fn resolve_model(
    arg: &str,
    input: &[usize],
    notation: NotationOptions,
    classes: Option<usize>,
) -> CliResult<ModelSpec> {
    if let Some((_, default_classes)) = zoo::defaults(arg) {
        let classes = classes.unwrap_or(default_classes);
        if classes == 0 {
            return Err(CliError::usage("--classes must be at least 1"));
        }
        return zoo::builtin(arg, input, classes)
            .expect("a built-in name")
            .map_err(|e| CliError::usage(format!("{arg} for inputs {input:?}: {e}")));
    }
    let path = Path::new(arg);
    let lower = arg.to_ascii_lowercase();
    if lower.ends_with(".json") || lower.ends_with(".toml") {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::usage(format!("{arg}: cannot read model file: {e}")))?;
        // A layer that does not parse is named with its field (serde's own
        // message for the layer list names neither).
        let layer_error = |value: Option<serde_json::Value>| {
            value
                .as_ref()
                .and_then(convnet_nn::explain_layer_error)
                .map(|why| CliError::usage(format!("{arg}: invalid model file: {why}")))
        };
        let seq: ModelSpec = if lower.ends_with(".json") {
            serde_json::from_str(&text).map_err(|e| {
                layer_error(serde_json::from_str(&text).ok())
                    .unwrap_or_else(|| CliError::usage(format!("{arg}: invalid model file: {e}")))
            })?
        } else {
            toml::from_str(&text).map_err(|e| {
                let value = toml::from_str::<toml::Value>(&text)
                    .ok()
                    .and_then(|v| serde_json::to_value(v).ok());
                layer_error(value).unwrap_or_else(|| {
                    let at = e.span().map_or(String::new(), |sp| {
                        let line = text[..sp.start].matches('\n').count() + 1;
                        format!(" at line {line}")
                    });
                    CliError::usage(format!(
                        "{arg}: invalid model file{at}: {}",
                        e.message().trim()
                    ))
                })
            })?
        };
        seq.output_shapes()
            .map_err(|e| CliError::usage(format!("{arg}: {e}")))?;
        return Ok(seq);
    }
    Ok(parse_notation(arg, &notation.with_input(input))?)
}

/// Parses `HxWxC`, `HxW` (one channel) or a square count like `784`.
pub fn parse_input_shape(s: &str) -> CliResult<Vec<usize>> {
    let bad = || {
        CliError::usage(format!(
            "--input '{s}': expected HxWxC (e.g. 28x28x1), HxW or a square like 784"
        ))
    };
    let dims: Vec<usize> = s
        .split('x')
        .map(|d| d.parse::<usize>().ok().filter(|&v| v > 0))
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    match dims.len() {
        3 => Ok(dims),
        2 => Ok(vec![dims[0], dims[1], 1]),
        1 => {
            let r = (dims[0] as f64).sqrt().round() as usize;
            if r * r == dims[0] {
                Ok(vec![r, r, 1])
            } else {
                Err(bad())
            }
        }
        _ => Err(bad()),
    }
}
