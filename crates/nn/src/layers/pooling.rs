//! MaxPooling2D, AveragePooling2D and their global versions.
//!
//! ```text
//! pooling:        x [N, H, W, C] -> y [N, OH, OW, C]   (no parameters)
//! global pooling: x [N, H, W, C] -> y [N, C]
//! ```
//!
//! The stride defaults to the pool size, as in Keras. Max pooling keeps the
//! argmax of every output for its backward pass.

use crate::error::config_err;
use crate::kind::{settings_error_of, single, LayerKind, Role, TokenContext, Window};
use crate::layer::{batched, Layer, Mode};
use crate::notation::{parse_usize, split_padding, split_stride};
use crate::{LayerSpec, Result, Rng};
use convnet_tensor::pool;
use convnet_tensor::{Padding, Pool2dGeometry, Tensor};
use ref_cast::RefCast;
use serde::{Deserialize, Serialize};

/// Configuration of a 2-D pooling layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolConfig {
    /// Window `[height, width]`.
    pub pool_size: [usize; 2],
    /// Stride; `None` means the pool size.
    #[serde(default)]
    pub strides: Option<[usize; 2]>,
    /// `valid`, `same` or explicit.
    #[serde(default)]
    pub padding: Padding,
    /// Round the output size up (PyTorch's `ceil_mode`; torchvision's
    /// GoogLeNet pools use it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ceil_mode: bool,
}

impl PoolConfig {
    /// A square `size x size` window with stride `size`, `valid`.
    pub fn new(size: usize) -> Self {
        PoolConfig {
            pool_size: [size, size],
            strides: None,
            padding: Padding::Valid,
            ceil_mode: false,
        }
    }
    /// Rounds the output size up (PyTorch's `ceil_mode=True`).
    pub fn with_ceil_mode(mut self, ceil: bool) -> Self {
        self.ceil_mode = ceil;
        self
    }
    /// The same stride on both axes.
    pub fn with_stride(mut self, s: usize) -> Self {
        self.strides = Some([s, s]);
        self
    }
    /// Padding mode.
    pub fn with_padding(mut self, p: Padding) -> Self {
        self.padding = p;
        self
    }

    /// The geometry for an input `[H, W, C]` and batch `n`.
    pub fn geometry(&self, input: &[usize], n: usize) -> Result<Pool2dGeometry> {
        let [h, w, c] = image_shape("pooling", input)?;
        let s = self.strides.unwrap_or(self.pool_size);
        Ok(Pool2dGeometry::new(
            [n, h, w, c],
            (self.pool_size[0], self.pool_size[1]),
            (s[0], s[1]),
            self.padding,
            self.ceil_mode,
        )?)
    }

    /// Output shape `[OH, OW, C]`.
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let g = self.geometry(input, 1)?;
        Ok(vec![g.oh, g.ow, g.c])
    }
}

pub(crate) fn image_shape(what: &str, input: &[usize]) -> Result<[usize; 3]> {
    match input {
        [h, w, c] => Ok([*h, *w, *c]),
        _ => Err(config_err(
            what,
            format!("expects an image input [H, W, C], found {input:?}"),
        )),
    }
}

/// Which reduction a pooling layer applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// Maximum over the window.
    Max,
    /// Mean over the in-range cells of the window.
    Average,
}

/// A built MaxPooling2D or AveragePooling2D layer.
pub struct Pool2d {
    kind: PoolKind,
    config: PoolConfig,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    /// Each output's winning cell within its window (see `pool::max_pool2d_forward`).
    argmax: Vec<u8>,
    batch: usize,
}

impl Pool2d {
    /// Builds a pooling layer for an input `[H, W, C]`.
    pub fn build(kind: PoolKind, config: &PoolConfig, input: &[usize]) -> Result<Pool2d> {
        let output_shape = config.output_shape(input)?;
        let [ph, pw] = config.pool_size;
        if kind == PoolKind::Max && ph.saturating_mul(pw) > pool::MAX_POOL_WINDOW_CELLS {
            return Err(config_err(
                "MaxPooling2D",
                format!(
                    "pool_size {ph}x{pw} has {} cells; at most {} (16x16) are supported \
                     (GlobalMaxPooling2D pools a whole map)",
                    ph.saturating_mul(pw),
                    pool::MAX_POOL_WINDOW_CELLS
                ),
            ));
        }
        Ok(Pool2d {
            kind,
            config: config.clone(),
            input_shape: input.to_vec(),
            output_shape,
            argmax: Vec::new(),
            batch: 0,
        })
    }
}

impl Layer for Pool2d {
    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }
    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn forward(&mut self, x: Tensor, _mode: Mode, _rng: &mut Rng) -> Tensor {
        let n = x.batch();
        let g = self
            .config
            .geometry(&self.input_shape, n)
            .expect("validated");
        let mut y = Tensor::for_overwrite(&batched(n, &self.output_shape));
        match self.kind {
            PoolKind::Max => {
                self.argmax.resize(g.output_len(), 0);
                pool::max_pool2d_forward(&g, x.data(), y.data_mut(), &mut self.argmax);
            }
            PoolKind::Average => pool::avg_pool2d_forward(&g, x.data(), y.data_mut()),
        }
        self.batch = n;
        y
    }

    fn backward(&mut self, dy: Tensor) -> Tensor {
        let n = self.batch;
        let g = self
            .config
            .geometry(&self.input_shape, n)
            .expect("validated");
        let mut dx = Tensor::for_overwrite(&batched(n, &self.input_shape));
        match self.kind {
            PoolKind::Max => pool::max_pool2d_backward(&g, dy.data(), &self.argmax, dx.data_mut()),
            PoolKind::Average => pool::avg_pool2d_backward(&g, dy.data(), dx.data_mut()),
        }
        dx
    }
}

/// A built GlobalAveragePooling2D or GlobalMaxPooling2D layer.
pub struct GlobalPool {
    kind: PoolKind,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    argmax: Vec<u32>,
    batch: usize,
}

impl GlobalPool {
    /// Builds a global pooling layer for an input `[H, W, C]`.
    pub fn build(kind: PoolKind, input: &[usize]) -> Result<GlobalPool> {
        let [_, _, c] = image_shape("global pooling", input)?;
        Ok(GlobalPool {
            kind,
            input_shape: input.to_vec(),
            output_shape: vec![c],
            argmax: Vec::new(),
            batch: 0,
        })
    }
}

impl Layer for GlobalPool {
    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }
    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn forward(&mut self, x: Tensor, _mode: Mode, _rng: &mut Rng) -> Tensor {
        let n = x.batch();
        let hw = self.input_shape[0] * self.input_shape[1];
        let c = self.input_shape[2];
        let mut y = Tensor::zeros(&[n, c]);
        match self.kind {
            PoolKind::Average => pool::global_avg_pool_forward(n, hw, c, x.data(), y.data_mut()),
            PoolKind::Max => {
                self.argmax.resize(n * c, 0);
                pool::global_max_pool_forward(n, hw, c, x.data(), y.data_mut(), &mut self.argmax)
            }
        }
        self.batch = n;
        y
    }

    fn backward(&mut self, dy: Tensor) -> Tensor {
        let n = self.batch;
        let hw = self.input_shape[0] * self.input_shape[1];
        let c = self.input_shape[2];
        let mut dx = Tensor::zeros(&batched(n, &self.input_shape));
        match self.kind {
            PoolKind::Average => pool::global_avg_pool_backward(n, hw, c, dy.data(), dx.data_mut()),
            PoolKind::Max => pool::global_max_pool_backward(dy.data(), &self.argmax, dx.data_mut()),
        }
        dx
    }
}

/// Parses a pool token's `k[Ss][v|s]` (after its letter).
pub(crate) fn parse_pool(rest: &str, default: Padding) -> Option<PoolConfig> {
    let (rest, padding) = split_padding(rest, default);
    let (k, s) = split_stride(rest)?;
    let k = parse_usize(k)?;
    let mut p = PoolConfig::new(k).with_padding(padding);
    // A stride equal to the pool size is the default: store it as such so
    // that equal models compare equal (found by the notation fuzzer).
    if let Some(s) = s.filter(|&s| s != k) {
        p = p.with_stride(s);
    }
    Some(p)
}

impl PoolConfig {
    fn window(&self) -> Window {
        Window {
            kernel: self.pool_size,
            strides: self.strides.unwrap_or(self.pool_size),
            dilation: [1, 1],
            padding: self.padding,
            ceil_mode: self.ceil_mode,
        }
    }

    /// `{letter}k[Ss][s]`; `None` for settings the notation cannot say.
    fn notation(&self, letter: char) -> Option<String> {
        if self.pool_size[0] != self.pool_size[1] || self.ceil_mode {
            return None;
        }
        let mut t = format!("{letter}{}", self.pool_size[0]);
        if let Some(s) = self.strides {
            if s[0] != s[1] {
                return None;
            }
            if s[0] != self.pool_size[0] {
                t.push_str(&format!("S{}", s[0]));
            }
        }
        match self.padding {
            Padding::Valid => {}
            Padding::Same => t.push('s'),
            Padding::Explicit(_) => return None,
        }
        Some(t)
    }
}

/// The kinds of the two window poolings: `$kind` over a [`PoolConfig`],
/// file name `$name`, notation letter `$letter`.
macro_rules! window_pooling {
    ($(#[$m:meta])* $kind:ident, $reduce:expr, $variant:ident, $letter:literal, $what:literal) => {
        $(#[$m])*
        #[derive(RefCast)]
        #[repr(transparent)]
        pub struct $kind(pub PoolConfig);

        impl LayerKind for $kind {
            fn name(&self) -> &'static str {
                stringify!($variant)
            }
            fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
                self.0.output_shape(input)
            }
            fn build(&self, inputs: &[&[usize]], _rng: &mut Rng) -> Result<Box<dyn Layer>> {
                single(self, inputs, |x| Pool2d::build($reduce, &self.0, x))
            }
            fn role(&self) -> Role {
                Role::Pooling
            }
            fn window(&self) -> Option<Window> {
                Some(self.0.window())
            }
            fn notation(&self) -> Option<String> {
                self.0.notation($letter)
            }
            fn parse_token(
                token: &str,
                ctx: &TokenContext,
            ) -> Option<std::result::Result<LayerSpec, String>> {
                let rest = token.strip_prefix($letter)?;
                Some(
                    parse_pool(rest, ctx.pool_padding)
                        .map(LayerSpec::$variant)
                        .ok_or_else(|| {
                            format!(
                                "'{token}': {} is {}k[Ss][v|s], e.g. {}2",
                                $what, $letter, $letter
                            )
                        }),
                )
            }
            fn settings_error(fields: &serde_json::Value) -> Option<String> {
                settings_error_of::<PoolConfig>(fields)
            }
        }
    };
}

window_pooling!(
    /// MaxPooling2D's kind.
    MaxPooling, PoolKind::Max, MaxPooling2D, 'P', "a max-pool"
);
window_pooling!(
    /// AveragePooling2D's kind.
    AveragePooling, PoolKind::Average, AveragePooling2D, 'A', "an avg-pool"
);

/// The kinds of the two global poolings.
macro_rules! global_pooling {
    ($(#[$m:meta])* $kind:ident, $reduce:expr, $variant:ident, $token:literal) => {
        $(#[$m])*
        pub struct $kind;

        impl LayerKind for $kind {
            fn name(&self) -> &'static str {
                stringify!($variant)
            }
            fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
                let [_, _, c] = image_shape(self.name(), input)?;
                Ok(vec![c])
            }
            fn build(&self, inputs: &[&[usize]], _rng: &mut Rng) -> Result<Box<dyn Layer>> {
                single(self, inputs, |x| GlobalPool::build($reduce, x))
            }
            fn role(&self) -> Role {
                Role::GlobalPooling
            }
            fn notation(&self) -> Option<String> {
                Some($token.into())
            }
            fn parse_token(
                token: &str,
                _ctx: &TokenContext,
            ) -> Option<std::result::Result<LayerSpec, String>> {
                (token == $token).then_some(Ok(LayerSpec::$variant))
            }
            fn settings_error(_fields: &serde_json::Value) -> Option<String> {
                None
            }
        }
    };
}

global_pooling!(
    /// GlobalAveragePooling2D's kind.
    GlobalAveragePooling, PoolKind::Average, GlobalAveragePooling2D, "GAP"
);
global_pooling!(
    /// GlobalMaxPooling2D's kind.
    GlobalMaxPooling, PoolKind::Max, GlobalMaxPooling2D, "GMP"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pool_windows_past_256_cells_are_a_clear_error() {
        let input = [40, 40, 3];
        assert!(Pool2d::build(PoolKind::Max, &PoolConfig::new(16), &input).is_ok());
        let err = Pool2d::build(PoolKind::Max, &PoolConfig::new(17), &input)
            .err()
            .expect("17x17 is refused");
        let msg = err.to_string();
        assert!(
            msg.contains("MaxPooling2D") && msg.contains("289 cells"),
            "{msg}"
        );
        // Average pooling keeps no winners: any window.
        assert!(Pool2d::build(PoolKind::Average, &PoolConfig::new(17), &input).is_ok());
    }
}
