//! The layers, one per file: config, forward, backward, shape rule.

pub mod activation;
pub mod batch_norm;
pub mod channel_shuffle;
pub mod channel_slice;
pub mod conv2d;
mod conv2d_groups;
pub mod dense;
pub mod depthwise_conv2d;
pub mod dropout;
pub mod flatten;
pub mod merge;
pub mod multiply;
pub mod pooling;
pub mod separable_conv2d;
pub mod stochastic_depth;
pub mod zero_padding;
