//! ONNX interchange for convnet models.
//!
//! * [`export`]: any [`convnet_nn::Model`] (chain or graph) to an ONNX
//!   model (opset 13), input `NCHW` as every ONNX runtime and PyTorch expect;
//!   weights converted from our `HWIO` / `[in, out]` layouts.
//! * [`import`]: an ONNX file (PyTorch's `torch.onnx.export`, tf2onnx, our
//!   own export) to a model: NCHW weights converted to our NHWC layouts,
//!   including the rows of the first Dense after a channel-first Flatten.
//!
//! The wire format is ONNX's protobuf schema ([`proto`], a subset of
//! `onnx.proto` decoded with `prost`).

pub mod error;
pub mod export;
pub mod fuzzing;
pub mod import;
pub mod proto;

pub use error::{OnnxError, Result};
pub use export::{export, to_onnx, OPSET};
pub use import::{from_onnx, import};
