//! numpy arrays <-> tensors, and the bundled data sets as numpy arrays.
//!
//! Inputs are read as C-contiguous float32 (`[N, H, W, C]` or `[N, F]`):
//! `fit`, `evaluate` and `predict` read numpy's buffer in place (`rows`:
//! each batch copies its rows out), weights are copied into tensors;
//! outputs are handed to numpy without a copy (the tensor's buffer becomes
//! the array's).

use convnet_data::mnist::Mnist;
use convnet_data::LabeledImages;
use convnet_run::Rows;
use convnet_tensor::Tensor;
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use std::path::PathBuf;

/// `a` (C-contiguous float32) as a tensor; `what` names it in errors.
pub fn tensor(a: &PyReadonlyArrayDyn<'_, f32>, what: &str) -> PyResult<Tensor> {
    let shape = a.shape().to_vec();
    let data = a.as_slice().map_err(|_| {
        PyValueError::new_err(format!(
            "{what}: expected a C-contiguous float32 array (np.ascontiguousarray)"
        ))
    })?;
    if shape.is_empty() {
        return Err(PyValueError::new_err(format!(
            "{what}: expected an array with a batch dimension, found a scalar"
        )));
    }
    Tensor::from_vec(&shape, data.to_vec())
        .map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

/// A numpy float32 array's buffer lent as rows `[N, ...]` for as long as
/// the borrow of the array lives (no copy: batches copy their rows out).
pub fn rows<'a>(a: &'a PyReadonlyArrayDyn<'_, f32>, what: &str) -> PyResult<Rows<'a>> {
    let data = a.as_slice().map_err(|_| {
        PyValueError::new_err(format!(
            "{what}: expected a C-contiguous float32 array (np.ascontiguousarray)"
        ))
    })?;
    if a.shape().is_empty() {
        return Err(PyValueError::new_err(format!(
            "{what}: expected an array with a batch dimension, found a scalar"
        )));
    }
    Rows::lent(data, a.shape()).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

/// Keras's `load_img`: the pixels of one image file `[H, W, channels]` as
/// bytes, resized (bilinearly, as training reads files) to `target`
/// `(height, width)` when given, else at the file's own size.
#[pyfunction]
#[pyo3(signature = (path, channels=3, target=None))]
pub fn load_img(
    py: Python<'_>,
    path: PathBuf,
    channels: usize,
    target: Option<(usize, usize)>,
) -> PyResult<Bound<'_, PyArrayDyn<u8>>> {
    let os = |e: convnet_data::DataError| PyOSError::new_err(e.to_string());
    if channels != 1 && channels != 3 {
        return Err(PyValueError::new_err(format!(
            "load_img: expected 1 or 3 channels, found {channels}"
        )));
    }
    let (h, w) = match target {
        Some(t) => t,
        None => {
            let img = convnet_data::open_image(&path).map_err(os)?;
            (img.height() as usize, img.width() as usize)
        }
    };
    let pixels = convnet_data::stream::decode_image(&path, h, w, channels).map_err(os)?;
    let a = ArrayD::from_shape_vec(IxDyn(&[h, w, channels]), pixels)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(a.into_pyarray(py))
}

/// A tensor as a numpy float32 array (its buffer moved, not copied).
pub fn array<'py>(py: Python<'py>, t: Tensor) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let shape = t.shape().to_vec();
    let a = ArrayD::from_shape_vec(IxDyn(&shape), t.into_vec())
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(a.into_pyarray(py))
}

/// Images and labels as numpy arrays.
type Split<'py> = (Bound<'py, PyArrayDyn<u8>>, Bound<'py, PyArrayDyn<u8>>);

/// Images `[N, H, W]` (one channel, as Keras's MNIST) or `[N, H, W, C]` and
/// their labels, as uint8 arrays.
fn split_arrays<'py>(py: Python<'py>, s: &LabeledImages) -> PyResult<Split<'py>> {
    let [h, w, c] = s.image_shape();
    let mut pixels = Vec::with_capacity(s.len() * h * w * c);
    for i in 0..s.len() {
        let bytes = s
            .image_bytes(i)
            .map_err(|e| PyOSError::new_err(e.to_string()))?;
        pixels.extend_from_slice(&bytes);
    }
    let shape: Vec<usize> = if c == 1 {
        vec![s.len(), h, w]
    } else {
        vec![s.len(), h, w, c]
    };
    let labels: Vec<u8> = (0..s.len()).map(|i| s.label(i) as u8).collect();
    let x = ArrayD::from_shape_vec(IxDyn(&shape), pixels)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let y = ArrayD::from_shape_vec(IxDyn(&[s.len()]), labels)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((x.into_pyarray(py), y.into_pyarray(py)))
}

/// `((x_train, y_train), (x_test, y_test))` from the MNIST-format IDX files
/// in `path` (default: the copy bundled with the source tree this module
/// was built from), as `keras.datasets.mnist.load_data()` returns them.
#[pyfunction]
#[pyo3(signature = (path=None))]
pub fn load_mnist<'py>(
    py: Python<'py>,
    path: Option<PathBuf>,
) -> PyResult<(Split<'py>, Split<'py>)> {
    let dir = path.unwrap_or_else(Mnist::bundled_dir);
    let m = py
        .detach(|| Mnist::load(&dir))
        .map_err(|e| PyOSError::new_err(format!("{}: {e}", dir.display())))?;
    Ok((split_arrays(py, &m.train)?, split_arrays(py, &m.test)?))
}

/// `x [N, H, W, C]` transformed as `ImageDataGenerator` says (`config`:
/// the engine's `AugmentConfig` as JSON), each image from `seed` as
/// training draws it: what iterating a `flow` yields.
#[pyfunction]
pub fn augment<'py>(
    py: Python<'py>,
    x: PyReadonlyArrayDyn<'py, f32>,
    config: &str,
    seed: u64,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    use convnet_nn::DataSource;
    let x = tensor(&x, "x")?;
    if x.shape().len() != 4 {
        return Err(PyValueError::new_err(format!(
            "augment: expected images [N, H, W, C], found {:?}",
            x.shape()
        )));
    }
    let config: convnet_data::AugmentConfig =
        serde_json::from_str(config).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let n = x.batch();
    let data = convnet_nn::TensorData::new(x, Tensor::zeros(&[n]))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let aug = convnet_data::Augmented::new(data, config)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let idx: Vec<usize> = (0..n).collect();
    let (out, _) = py
        .detach(|| aug.batch(&idx, seed))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    array(py, out)
}
