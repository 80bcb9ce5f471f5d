//! Tensors and CPU kernels for convnet.
//!
//! Everything here works on concrete `f32` data in the NHWC layout
//! (`[batch, height, width, channels]`), the layout Keras users think in.
//! NHWC is also the fastest layout for our convolution: im2col rows of an
//! NHWC image are contiguous runs of `kw * channels` values, and the GEMM
//! output `[batch * OH * OW, filters]` *is* the NHWC output, so no transpose
//! is ever needed. Convolution weights use Keras's HWIO layout
//! `[KH, KW, C_in, F]`.
//!
//! Kernels come in named pairs (`*_forward`, `*_backward_*`) and take
//! validated geometry structs, so they are free of error handling. Shape
//! arithmetic lives in [`shape`] and nowhere else. Each fast kernel has a
//! slow, obviously correct twin in [`reference`] that the tests compare
//! against.
#![deny(missing_docs)]

pub mod activation;
pub mod batch_norm;
pub mod bf16;
pub mod bf16_conv;
pub mod bf16_grad;
pub mod conv;
pub mod depthwise;
mod error;
pub mod gemm;
pub mod implicit;
pub mod peak;
pub mod pool;
mod precision;
pub mod recycle;
pub mod reference;
pub mod shape;
mod strided_input;
mod tensor;
pub mod winograd;

pub use error::TensorError;
pub use precision::Precision;
pub use shape::{AxisPadding, Conv2dGeometry, Padding, Pool2dGeometry};
pub use tensor::Tensor;
