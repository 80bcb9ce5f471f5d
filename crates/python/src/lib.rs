//! `convnet._core`: the engine under the Python package `convnet`.
//!
//! The package's Python modules (`python/convnet/keras/...`) give Keras's
//! names and argument forms and describe a model as the model file does
//! (`model.json`'s `ModelSpec`, Keras's class names as `type`); this module
//! builds it and runs it on the same code as the CLI:
//!
//! ```text
//! Sequential / Model (Python) --spec JSON--> Engine::build -> convnet_nn::Model
//! fit(x, y, ...)   numpy f32, lent (no copy) --> TensorExamples -> convnet_run::train_keeping
//!                  (the run pipeline: validation split, callbacks, checkpoints)
//! evaluate/predict numpy f32, lent -> Model::evaluate / Model::predict_rows -> numpy f32
//! ```
//! Long calls release the GIL, so other Python threads run meanwhile.

mod alloc;
mod arrays;
mod callbacks;
mod describe;
mod engine;
mod fit;
mod runfile;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    alloc::configure();
    m.add_class::<engine::Engine>()?;
    m.add_function(wrap_pyfunction!(arrays::load_mnist, m)?)?;
    m.add_function(wrap_pyfunction!(arrays::augment, m)?)?;
    m.add_function(wrap_pyfunction!(arrays::load_img, m)?)?;
    m.add_function(wrap_pyfunction!(engine::cpu_info, m)?)?;
    m.add_function(wrap_pyfunction!(describe::notation_spec, m)?)?;
    m.add_function(wrap_pyfunction!(describe::builtin_spec, m)?)?;
    Ok(())
}
