//! `Engine`: one model, as a Keras `Model` object holds it: built from a
//! description, compiled, trained, evaluated, saved.
//!
//! Errors in what Python passes (a description, a shape, a loss name) raise
//! `ValueError`; files that cannot be read or written raise `OSError`.

use crate::arrays::{array, rows, tensor};
use convnet_nn::{Model, ModelSpec, OptimizerConfig};
use convnet_run::{examples::TensorExamples, outputs_of, settings, RunConfig};
use numpy::{PyArrayDyn, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::path::PathBuf;

/// A `ValueError` carrying `e`'s message.
pub fn value_err(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// One summary row: name, Keras class, per-sample output shape, parameters.
type SummaryRow = (String, String, Vec<usize>, usize, Vec<String>);

/// A model and how many epochs it has trained.
#[pyclass(module = "convnet._core", unsendable)]
pub struct Engine {
    /// `None` only while a pass holds it (a failed pass hands it back).
    pub(crate) model: Option<Model>,
    /// Epochs trained so far (the next `fit` numbers its epochs after them
    /// unless told an `initial_epoch`).
    pub(crate) epochs_done: usize,
    /// The run file `save` writes: a loaded run's, updated by each `fit`.
    pub(crate) run: Option<RunConfig>,
}

impl Engine {
    pub(crate) fn model(&self) -> PyResult<&Model> {
        self.model
            .as_ref()
            .ok_or_else(|| PyRuntimeError::new_err("the model is in use by a running fit"))
    }

    pub(crate) fn model_mut(&mut self) -> PyResult<&mut Model> {
        self.model
            .as_mut()
            .ok_or_else(|| PyRuntimeError::new_err("the model is in use by a running fit"))
    }
}

#[pymethods]
impl Engine {
    /// Builds the model that `spec_json` (a `ModelSpec`: `input_shape` and
    /// `layers`, as in `model.json`) describes, weights drawn from `seed`.
    #[staticmethod]
    fn build(spec_json: &str, seed: u64) -> PyResult<Engine> {
        let spec: ModelSpec = serde_json::from_str(spec_json).map_err(|e| {
            let why = serde_json::from_str::<serde_json::Value>(spec_json)
                .ok()
                .and_then(|v| convnet_nn::explain_layer_error(&v));
            value_err(why.unwrap_or_else(|| e.to_string()))
        })?;
        spec.checked().map_err(value_err)?;
        let model = spec.build(seed).map_err(value_err)?;
        Ok(Engine {
            model: Some(model),
            epochs_done: 0,
            run: None,
        })
    }

    /// Loads a model saved by `save` (or any run folder of the CLI).
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Engine> {
        let model = Model::load(&path).map_err(|e| PyOSError::new_err(e.to_string()))?;
        let run = match path.join(convnet_run::folder::RUN_FILE).exists() {
            true => Some(RunConfig::load(&path).map_err(|e| PyOSError::new_err(e.to_string()))?),
            false => None,
        };
        Ok(Engine {
            model: Some(model),
            epochs_done: run.as_ref().map_or(0, |r| r.epochs),
            run,
        })
    }

    /// Writes a run folder at `path`: `model.json`, `weights.safetensors`
    /// and `run.json` (what the CLI's `predict`, `serve` and `evaluate` open).
    fn save(&self, path: PathBuf) -> PyResult<()> {
        let model = self.model()?;
        let os = |e: &dyn std::fmt::Display| PyOSError::new_err(e.to_string());
        model.save(&path).map_err(|e| os(&e))?;
        let cfg = crate::runfile::run_config(model, self.epochs_done, self.run.as_ref(), None);
        cfg.save(&path).map_err(|e| os(&e))
    }

    /// The model's description as JSON (what `model.json` holds under `model`).
    fn spec_json(&self) -> PyResult<String> {
        serde_json::to_string(self.model()?.spec()).map_err(value_err)
    }

    /// Keras's summary table (layer, output shape, parameters; a graph adds
    /// "Connected to").
    fn summary(&self) -> PyResult<String> {
        let s = self.model()?.spec().summary().map_err(value_err)?;
        Ok(s.to_string())
    }

    /// The summary's rows: `(name, Keras class, per-sample output shape,
    /// parameters, the names of the nodes it reads ("input": the model's input))`.
    fn summary_rows(&self) -> PyResult<Vec<SummaryRow>> {
        let s = self.model()?.spec().summary().map_err(value_err)?;
        Ok(s.rows
            .into_iter()
            .map(|r| {
                let kind = r.kind.to_string();
                (r.name, kind, r.output_shape, r.params, r.connected_to)
            })
            .collect())
    }

    /// `(trainable, non_trainable)` parameter counts.
    fn count_params(&self) -> PyResult<(usize, usize)> {
        Ok(self.model()?.param_counts())
    }

    /// Per-sample input shape.
    #[getter]
    fn input_shape(&self) -> PyResult<Vec<usize>> {
        Ok(self.model()?.input_shape().to_vec())
    }

    /// Per-sample output shape.
    #[getter]
    fn output_shape(&self) -> PyResult<Vec<usize>> {
        Ok(self.model()?.output_shape().to_vec())
    }

    /// Epochs trained so far.
    #[getter]
    fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    /// Sets the optimizer (`optimizer_json`: `{"name": "adam",
    /// "learning_rate": ...}`, every field of its kind; fresh state) and the
    /// loss (a Keras name, or `auto`).
    fn compile(&mut self, optimizer_json: &str, loss: &str) -> PyResult<String> {
        let opt: OptimizerConfig = serde_json::from_str(optimizer_json).map_err(value_err)?;
        opt.validate().map_err(value_err)?;
        let model = self.model_mut()?;
        let loss = settings::parse_loss(loss, outputs_of(model)).map_err(value_err)?;
        model.compile(opt, loss);
        Ok(loss.name().to_string())
    }

    /// Trains on `x` with targets `y` (class indices for sparse losses, one
    /// row per sample otherwise) through the run pipeline, epochs
    /// `initial_epoch..epochs` as Keras numbers them; returns Keras's
    /// `History.history`. A failure or Ctrl-C keeps the model as it got.
    /// `augment`: an `ImageDataGenerator`'s transforms (JSON), or `None`.
    #[pyo3(signature = (x, y, validation_x=None, validation_y=None, validation_split=0.0,
        augment=None, **settings))]
    #[allow(clippy::too_many_arguments)] // Keras's fit arguments, as Python passes them
    fn fit(
        &mut self,
        py: Python<'_>,
        x: PyReadonlyArrayDyn<'_, f32>,
        y: PyReadonlyArrayDyn<'_, f32>,
        validation_x: Option<PyReadonlyArrayDyn<'_, f32>>,
        validation_y: Option<PyReadonlyArrayDyn<'_, f32>>,
        validation_split: f32,
        augment: Option<&str>,
        settings: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> PyResult<(Py<PyAny>, usize, f32)> {
        let settings = crate::fit::Settings::from_kwargs(settings)?;
        let model = self.model()?;
        // numpy's buffers are lent to the pass: no copy of x or y.
        let x = rows(&x, "x")?;
        model
            .check_input_shape(x.shape(), "fit")
            .map_err(value_err)?;
        let train = TensorExamples::new(x, rows(&y, "y")?).map_err(value_err)?;
        let validation = match (&validation_x, &validation_y) {
            (Some(vx), Some(vy)) => {
                let vx = rows(vx, "validation_data x")?;
                model
                    .check_input_shape(vx.shape(), "validation_data")
                    .map_err(value_err)?;
                Some(TensorExamples::new(vx, rows(vy, "validation_data y")?).map_err(value_err)?)
            }
            (None, None) => None,
            _ => return Err(value_err("validation_data: expected (x, y)")),
        };
        // Keras's rule: validation_data, when given, replaces validation_split.
        let split = if validation.is_some() {
            0.0
        } else {
            validation_split
        };
        let mut data =
            crate::fit::train_data(train.into(), validation.map(Into::into), validation_split)?;
        data.augment = crate::fit::augment(augment)?;
        let source = crate::runfile::Source::arrays(split);
        crate::fit::run(self, py, data, settings, source)
    }

    /// Trains on the images in `directory`'s class sub-folders (Keras's
    /// `flow_from_directory`), resized to the model's input, pixels in
    /// [0, 1]; the last `validation_split` of the (seeded, shuffled) file
    /// list is the validation set.
    #[pyo3(signature = (directory, validation_split=0.0, augment=None, cache_mib=256, **settings))]
    fn fit_directory(
        &mut self,
        py: Python<'_>,
        directory: std::path::PathBuf,
        validation_split: f32,
        augment: Option<&str>,
        cache_mib: usize,
        settings: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> PyResult<(Py<PyAny>, usize, f32)> {
        let settings = crate::fit::Settings::from_kwargs(settings)?;
        let (images, source) = crate::fit::folder(
            self.model()?,
            &directory,
            settings.seed,
            cache_mib,
            validation_split,
        )?;
        let mut data = crate::fit::train_data(images.into(), None, validation_split)?;
        data.augment = crate::fit::augment(augment)?;
        crate::fit::run(self, py, data, settings, source)
    }

    /// Mean loss and accuracy on `x` with targets `y` (as `fit` takes them).
    #[pyo3(signature = (x, y, batch_size=32))]
    fn evaluate(
        &mut self,
        py: Python<'_>,
        x: PyReadonlyArrayDyn<'_, f32>,
        y: PyReadonlyArrayDyn<'_, f32>,
        batch_size: usize,
    ) -> PyResult<(f32, f32)> {
        let (x, y) = (rows(&x, "x")?, rows(&y, "y")?);
        let model = self.model_mut()?;
        model
            .check_input_shape(x.shape(), "evaluate")
            .map_err(value_err)?;
        let loss = model
            .loss()
            .ok_or_else(|| PyRuntimeError::new_err("compile the model before evaluate"))?;
        let data = TensorExamples::new(x, y).map_err(value_err)?;
        let source = convnet_run::Examples::from(data)
            .source(loss, outputs_of(model))
            .map_err(value_err)?;
        let e = py
            .detach(|| model.evaluate(&source, batch_size.max(1)))
            .map_err(value_err)?;
        Ok((e.loss, e.accuracy))
    }

    /// Mean loss and accuracy on the images of `directory`'s class
    /// sub-folders (Keras's `evaluate(flow_from_directory(...))`), read as
    /// `fit_directory` reads them; `subset` "training" or "validation"
    /// takes that part of the `validation_split` (the same files as `fit`'s;
    /// without a subset, pass 0 to evaluate on every image).
    #[pyo3(signature = (directory, validation_split=0.0, subset=None, seed=convnet_run::settings::SEED,
        batch_size=32, cache_mib=256))]
    #[allow(clippy::too_many_arguments)] // Keras's arguments, as Python passes them
    fn evaluate_directory(
        &mut self,
        py: Python<'_>,
        directory: PathBuf,
        validation_split: f32,
        subset: Option<&str>,
        seed: u64,
        batch_size: usize,
        cache_mib: usize,
    ) -> PyResult<(f32, f32)> {
        let (images, _) =
            crate::fit::folder(self.model()?, &directory, seed, cache_mib, validation_split)?;
        let data = crate::fit::train_data(images.into(), None, validation_split)?;
        let part = match subset {
            None | Some("training") => data.train,
            Some("validation") => data
                .validation
                .ok_or_else(|| value_err("subset 'validation': the split leaves no image"))?,
            Some(other) => {
                return Err(value_err(format!(
                    "subset '{other}': expected 'training' or 'validation'"
                )))
            }
        };
        let model = self.model_mut()?;
        let loss = model
            .loss()
            .ok_or_else(|| PyRuntimeError::new_err("compile the model before evaluate"))?;
        let source = part.source(loss, outputs_of(model)).map_err(value_err)?;
        let e = py
            .detach(|| model.evaluate(&source, batch_size.max(1)))
            .map_err(value_err)?;
        Ok((e.loss, e.accuracy))
    }

    /// The model's outputs for the image files `paths` (decoded and resized
    /// to the model's input as training reads them, pixels in [0, 1]), in
    /// that order, `batch_size` files decoded at a time.
    #[pyo3(signature = (paths, batch_size=32))]
    fn predict_files<'py>(
        &mut self,
        py: Python<'py>,
        paths: Vec<PathBuf>,
        batch_size: usize,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let model = self.model_mut()?;
        let shape = model.input_shape().to_vec();
        if shape.len() != 3 {
            return Err(value_err(format!(
                "predict: the model takes {shape:?}, expected images [H, W, C]"
            )));
        }
        let per = model.output_shape().iter().product::<usize>();
        let out = py.detach(|| -> PyResult<Vec<f32>> {
            let mut out = Vec::with_capacity(paths.len() * per);
            for chunk in paths.chunks(batch_size.max(1)) {
                let x = convnet_data::load_images(chunk, shape[0], shape[1], shape[2])
                    .map_err(|e| PyOSError::new_err(e.to_string()))?;
                let y = model.predict(&x, batch_size.max(1)).map_err(value_err)?;
                out.extend_from_slice(y.data());
            }
            Ok(out)
        })?;
        let mut dims = vec![paths.len()];
        dims.extend_from_slice(self.model()?.output_shape());
        array(
            py,
            convnet_tensor::Tensor::from_vec(&dims, out).map_err(value_err)?,
        )
    }

    /// The model's outputs (its final softmax or sigmoid applied) for `x`,
    /// read in place: each batch is copied out of numpy's buffer as it runs.
    #[pyo3(signature = (x, batch_size=32))]
    fn predict<'py>(
        &mut self,
        py: Python<'py>,
        x: PyReadonlyArrayDyn<'py, f32>,
        batch_size: usize,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let shape = x.shape().to_vec();
        let data = x.as_slice().map_err(|_| {
            value_err("x: expected a C-contiguous float32 array (np.ascontiguousarray)")
        })?;
        let model = self.model_mut()?;
        model
            .check_input_shape(&shape, "predict")
            .map_err(value_err)?;
        let out = py
            .detach(|| model.predict_rows(data, shape[0], batch_size.max(1)))
            .map_err(value_err)?;
        array(py, out)
    }

    /// Every parameter as `(name, array)`, in the model's order (`layer{i}.kernel`, ...).
    fn get_weights<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Vec<(String, Bound<'py, PyArrayDyn<f32>>)>> {
        self.model()?
            .named_params()
            .into_iter()
            .map(|(name, p)| Ok((name, array(py, p.value.clone())?)))
            .collect()
    }

    /// Replaces the parameters with `weights` (arrays in `get_weights`'s
    /// order and shapes).
    fn set_weights(&mut self, weights: Vec<PyReadonlyArrayDyn<'_, f32>>) -> PyResult<()> {
        let model = self.model_mut()?;
        let params = model.params_mut();
        if weights.len() != params.len() {
            return Err(PyValueError::new_err(format!(
                "set_weights: {} arrays for a model with {} weights",
                weights.len(),
                params.len()
            )));
        }
        let mut new = Vec::with_capacity(weights.len());
        for (i, (w, p)) in weights.iter().zip(&params).enumerate() {
            let t = tensor(w, &format!("weights[{i}]"))?;
            if t.shape() != p.value.shape() {
                return Err(PyValueError::new_err(format!(
                    "set_weights: weights[{i}] ({}) has shape {:?}, expected {:?}",
                    p.name,
                    t.shape(),
                    p.value.shape()
                )));
            }
            new.push(t);
        }
        for (t, p) in new.into_iter().zip(params) {
            p.value = t;
        }
        Ok(())
    }
}

/// The CPU's kernel paths: whether AVX-512 (our implicit-GEMM kernels) and
/// AVX512-BF16 run here.
#[pyfunction]
pub fn cpu_info() -> (bool, bool) {
    #[cfg(target_arch = "x86_64")]
    {
        (
            std::arch::is_x86_feature_detected!("avx512f"),
            convnet_tensor::Precision::Bf16.on_this_cpu().is_some(),
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        (false, false)
    }
}
