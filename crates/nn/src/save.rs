//! Saving and loading models: `model.json` (the architecture) and
//! `weights.safetensors` (every parameter, named `layer{i}.{name}`).
//!
//! Writes are atomic: each file is written to a temporary name in the same
//! folder, flushed to disk, then renamed over the old one, so a crash
//! leaves either the old file or the new one, never half of one. This
//! module and `callbacks` are the only places in this crate that touch
//! files.

use crate::{Model, NnError, Result, Sequential, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// File name of the architecture.
pub const MODEL_FILE: &str = "model.json";
/// File name of the weights.
pub const WEIGHTS_FILE: &str = "weights.safetensors";

#[derive(Serialize, Deserialize)]
struct ModelFile {
    format: String,
    version: u32,
    model: Sequential,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> NnError {
    NnError::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}

/// What a failed write's message starts with, so that callers can tell it
/// from a file that could not be read (the CLI: exit code 1, not 2).
pub const WRITE_FAILED: &str = "cannot write: ";

fn write_err(path: &Path, e: impl std::fmt::Display) -> NnError {
    NnError::Io {
        path: path.display().to_string(),
        msg: format!("{WRITE_FAILED}{e}"),
    }
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok::<(), std::io::Error>(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(write_err(path, e));
    }
    Ok(())
}

/// Serializes named tensors to safetensors bytes.
pub fn tensors_to_bytes(tensors: &[(String, &Tensor)]) -> Result<Vec<u8>> {
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let bytes: Vec<u8> = t.data().iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), t.shape().to_vec(), bytes)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = raw
        .iter()
        .map(|(name, shape, bytes)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes)
                .expect("shape and length agree by construction");
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize(views, None).map_err(|e| NnError::Io {
        path: "<safetensors>".into(),
        msg: e.to_string(),
    })
}

/// Reads every f32 tensor from safetensors bytes, naming `path` in errors.
pub fn tensors_from_bytes(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, Tensor>> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        io_err(
            path,
            format!("not a valid safetensors file (truncated or corrupt?): {e}"),
        )
    })?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(io_err(
                path,
                format!("tensor '{name}' has dtype {:?}, expected F32", view.dtype()),
            ));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let t = Tensor::from_vec(view.shape(), data).map_err(|e| io_err(path, e))?;
        out.insert(name, t);
    }
    Ok(out)
}

impl Model {
    /// Saves the architecture and the weights into `dir`, atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let file = ModelFile {
            format: "convnet-model".into(),
            version: 1,
            model: self.spec().clone(),
        };
        let json = serde_json::to_vec_pretty(&file).expect("serializable");
        let named: Vec<(String, &Tensor)> = self
            .named_params()
            .into_iter()
            .map(|(n, p)| (n, &p.value))
            .collect();
        let bytes = tensors_to_bytes(&named)?;
        write_atomic(&dir.join(WEIGHTS_FILE), &bytes)?;
        write_atomic(&dir.join(MODEL_FILE), &json)?;
        Ok(())
    }

    /// Loads a model saved by [`Model::save`].
    pub fn load(dir: &Path) -> Result<Model> {
        let mpath = dir.join(MODEL_FILE);
        let text = std::fs::read_to_string(&mpath).map_err(|e| io_err(&mpath, e))?;
        let file: ModelFile = serde_json::from_str(&text).map_err(|e| {
            let why = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("model").and_then(crate::explain_layer_error));
            io_err(
                &mpath,
                format!(
                    "invalid model file: {}",
                    why.unwrap_or_else(|| e.to_string())
                ),
            )
        })?;
        if file.format != "convnet-model" || file.version != 1 {
            return Err(io_err(
                &mpath,
                format!(
                    "format '{}' version {}, expected 'convnet-model' version 1",
                    file.format, file.version
                ),
            ));
        }
        let mut model = file.model.build(0)?;
        let wpath = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&wpath).map_err(|e| io_err(&wpath, e))?;
        let tensors = tensors_from_bytes(&wpath, &bytes)?;
        model.set_weights(&wpath, &tensors)?;
        Ok(model)
    }

    /// Replaces every parameter with the tensor of the same name, checking
    /// that all exist and have the right shapes. `source` names the origin
    /// in errors. Loaded statistics count as converged (batch norm's moving
    /// averages are no longer bias-corrected; see [`crate::layers::batch_norm`]).
    pub fn set_weights(&mut self, source: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
        self.set_update_counts(&[]);
        let names: Vec<String> = self.named_params().into_iter().map(|(n, _)| n).collect();
        for (name, p) in names.iter().zip(self.params_mut()) {
            let t = tensors
                .get(name)
                .ok_or_else(|| io_err(source, format!("missing tensor '{name}'")))?;
            if t.shape() != p.value.shape() {
                return Err(io_err(
                    source,
                    format!(
                        "tensor '{name}' has shape {:?}, the model needs {:?}",
                        t.shape(),
                        p.value.shape()
                    ),
                ));
            }
            p.value = t.clone();
        }
        Ok(())
    }
}
