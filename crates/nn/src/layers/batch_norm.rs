//! BatchNormalization over the channel (last) axis.
//!
//! Works after Conv2D (`[N, H, W, C]`) and after Dense (`[N, C]`): both are
//! rows of `C` channels (see [`convnet_tensor::batch_norm`] for the math).
//!
//! Conventions (Keras's, which differ from PyTorch's):
//! * `momentum` is the weight of the *old* moving value:
//!   `moving = moving * momentum + batch * (1 - momentum)`, default 0.99
//!   (PyTorch's `momentum` weighs the *new* value: its 0.1 is Keras's 0.9).
//! * The moving variance is updated with the biased batch variance
//!   (PyTorch uses the unbiased one).
//! * `epsilon` defaults to 1e-3 (PyTorch: 1e-5).
//!
//! Where convnet departs from Keras by default: the moving statistics are
//! *bias-corrected* averages, as Adam corrects its moments. Keras's plain
//! exponential average starts from mean 0 and variance 1 and, with momentum
//! 0.99, needs some 300 steps to forget them: a net with batch norm trained
//! for a few hundred steps evaluates at chance (ResNet-20, 1 epoch on 2,000
//! MNIST images: 11 %). The corrected average after `t` updates is
//! `sum_k (1 - m) m^(t-k) x_k / (1 - m^t)`, computed as a running update
//! `moving += (x_t - moving) * (1 - m) / (1 - m^t)`: the first batch's
//! statistics exactly, then an average whose weights tend to Keras's. A layer
//! counts its updates from its build; layers whose statistics were loaded
//! (a saved model, a fine-tuning base, inserted batch norm) count as
//! converged and follow Keras's update, as does `keras_moving_average`.
//! Checkpoints keep the counts, so a resumed run continues exactly.
//!
//! Parameters: `gamma` and `beta` (trainable, when `scale` / `center`),
//! `moving_mean` and `moving_variance` (non-trainable): `4C` in all.

use crate::kind::{same_shape, settings_error_of, single, LayerKind, Role, TokenContext};
use crate::layer::{batched, Layer, Mode, Param};
use crate::spec::checked_count;
use crate::{LayerSpec, Result, Rng};
use convnet_tensor::activation::{Activation, SavedOutput};
use convnet_tensor::batch_norm as kernel;
use convnet_tensor::Tensor;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

fn momentum() -> f32 {
    0.99
}
fn epsilon() -> f32 {
    1e-3
}
fn yes() -> bool {
    true
}

/// Configuration of a BatchNormalization layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchNormConfig {
    /// Weight of the old moving statistics in each update (Keras: 0.99).
    #[serde(default = "momentum")]
    pub momentum: f32,
    /// Added to the variance before the square root (Keras: 1e-3).
    #[serde(default = "epsilon")]
    pub epsilon: f32,
    /// Learn an offset `beta`.
    #[serde(default = "yes")]
    pub center: bool,
    /// Learn a scale `gamma`.
    #[serde(default = "yes")]
    pub scale: bool,
    /// Keras's plain exponential moving average instead of the bias-corrected
    /// one (see the module's notes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keras_moving_average: bool,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig {
            momentum: 0.99,
            epsilon: 1e-3,
            center: true,
            scale: true,
            keras_moving_average: false,
        }
    }
}

impl BatchNormConfig {
    /// Keras's defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Momentum of the moving statistics.
    pub fn with_momentum(mut self, m: f32) -> Self {
        self.momentum = m;
        self
    }
    /// Epsilon.
    pub fn with_epsilon(mut self, e: f32) -> Self {
        self.epsilon = e;
        self
    }
    /// Whether to learn `beta`.
    pub fn with_center(mut self, c: bool) -> Self {
        self.center = c;
        self
    }
    /// Whether to learn `gamma`.
    pub fn with_scale(mut self, s: bool) -> Self {
        self.scale = s;
        self
    }
    /// Keras's plain moving average (`true`) or the bias-corrected one.
    pub fn with_keras_moving_average(mut self, k: bool) -> Self {
        self.keras_moving_average = k;
        self
    }

    /// Builds the layer: gamma 1, beta 0, moving mean 0, moving variance 1.
    pub fn build(&self, input: &[usize]) -> Result<BatchNorm> {
        let c = *input.last().ok_or_else(|| {
            crate::error::config_err("BatchNormalization", "needs a non-empty input shape")
        })?;
        Ok(BatchNorm {
            config: self.clone(),
            shape: input.to_vec(),
            gamma: self
                .scale
                .then(|| Param::new("gamma", Tensor::full(&[c], 1.0))),
            beta: self.center.then(|| Param::new("beta", Tensor::zeros(&[c]))),
            moving_mean: Param::state("moving_mean", Tensor::zeros(&[c])),
            moving_var: Param::state("moving_variance", Tensor::full(&[c], 1.0)),
            cache: None,
            eval_scale: None,
            sync: None,
            fused_mask: None,
            updates: (!self.keras_moving_average).then_some(0),
        })
    }
}

/// What the training forward applies in its own pass after normalizing.
enum Epilogue<'a> {
    None,
    Relu,
    /// `relu(bn(x) + shortcut)`.
    AddRelu(&'a Tensor),
}

/// What the training forward keeps for backward.
struct Cache {
    x: Tensor,
    mean: Vec<f32>,
    rstd: Vec<f32>,
    /// A ReLU followed in the same pass ([`Layer::forward_train_relu`]).
    relu: bool,
}

/// A built BatchNormalization layer.
pub struct BatchNorm {
    config: BatchNormConfig,
    shape: Vec<usize>,
    gamma: Option<Param>,
    beta: Option<Param>,
    moving_mean: Param,
    moving_var: Param,
    cache: Option<Cache>,
    /// The inference forward's per-channel scale, for a backward through a
    /// frozen batch norm (which runs in inference mode while the net trains).
    eval_scale: Option<Vec<f32>>,
    /// The ranks whose rows share the statistics (synchronized batch norm).
    sync: Option<std::sync::Arc<dyn crate::Collective>>,
    /// The ReLU mask of the latest forward with a residual addition and a
    /// ReLU in its pass ([`Layer::forward_train_add_relu`]).
    fused_mask: Option<SavedOutput>,
    /// Updates of the moving statistics since the build, while they are
    /// bias-corrected; `None`: Keras's plain average (loaded, converged or
    /// asked for).
    updates: Option<u64>,
}

impl BatchNorm {
    /// The training forward, with what follows it in the same pass
    /// (nothing, a ReLU, or a residual addition and a ReLU).
    fn forward_train(&mut self, x: Tensor, epilogue: Epilogue) -> Tensor {
        let c = self.channels();
        let (gamma, beta) = self.gamma_beta();
        let mut y = Tensor::for_overwrite(&batched(x.batch(), &self.shape));
        let mut mean = vec![0.0; c];
        let mut rstd = vec![0.0; c];
        // With synchronized statistics: every rank's moments, merged in
        // rank order (the whole batch's).
        let sync = self.sync.as_ref().map(|ranks| {
            move |m: &mut kernel::Moments| {
                let local = m.to_vec();
                let k = local.len();
                // An all-gather: each rank fills its slot, the rest stay 0.
                let mut all = vec![0.0f64; k * ranks.size()];
                all[k * ranks.rank()..k * (ranks.rank() + 1)].copy_from_slice(&local);
                ranks.sum_f64(&mut all);
                let mut whole = kernel::Moments::new(c);
                for part in all.chunks(k) {
                    whole.merge(&kernel::Moments::from_slice(part));
                }
                *m = whole;
            }
        });
        // The ReLU's backward is the batch norm's own only without an addition
        // between them; after one, the model applies the kept mask.
        let relu = matches!(epilogue, Epilogue::Relu);
        let mut mask = match self.fused_mask.take() {
            Some(SavedOutput::ReluMask(m)) => m,
            _ => Vec::new(),
        };
        let epilogue = match epilogue {
            Epilogue::AddRelu(shortcut) => {
                mask.resize(x.len().div_ceil(64), 0);
                kernel::Epilogue::AddRelu {
                    shortcut: shortcut.data(),
                    mask: &mut mask,
                }
            }
            Epilogue::Relu => kernel::Epilogue::Relu,
            Epilogue::None => kernel::Epilogue::None,
        };
        let var = kernel::batch_norm_forward_train_with(
            x.data(),
            c,
            &gamma,
            &beta,
            self.config.epsilon,
            y.data_mut(),
            &mut mean,
            &mut rstd,
            epilogue,
            sync.as_ref().map(|f| f as kernel::MomentsSync),
        );
        // Kept for the backward, and its buffer for the next step's forward.
        self.fused_mask = Some(SavedOutput::ReluMask(mask));
        let m = self.config.momentum;
        let mm = self.moving_mean.value.data_mut();
        let mv = self.moving_var.value.data_mut();
        match self.updates.as_mut() {
            None => {
                // Keras: moving = moving * m + batch * (1 - m).
                mm.iter_mut()
                    .zip(&mean)
                    .for_each(|(a, b)| *a = *a * m + b * (1.0 - m));
                mv.iter_mut()
                    .zip(&var)
                    .for_each(|(a, b)| *a = *a * m + b * (1.0 - m));
            }
            Some(t) => {
                // Bias-corrected: the weight of the new value is
                // (1 - m) / (1 - m^t), 1 at the first update.
                *t += 1;
                let w = ((1.0 - m as f64) / (1.0 - (m as f64).powf(*t as f64))) as f32;
                mm.iter_mut()
                    .zip(&mean)
                    .for_each(|(a, b)| *a += (b - *a) * w);
                mv.iter_mut()
                    .zip(&var)
                    .for_each(|(a, b)| *a += (b - *a) * w);
            }
        }
        self.cache = Some(Cache {
            x,
            mean,
            rstd,
            relu,
        });
        y
    }

    fn channels(&self) -> usize {
        *self.shape.last().unwrap()
    }
    fn gamma_beta(&self) -> (Vec<f32>, Vec<f32>) {
        let c = self.channels();
        let g = self
            .gamma
            .as_ref()
            .map_or(vec![1.0; c], |p| p.value.data().to_vec());
        let b = self
            .beta
            .as_ref()
            .map_or(vec![0.0; c], |p| p.value.data().to_vec());
        (g, b)
    }
}

/// Values per parallel block of the inference map.
const EVAL_BLOCK: usize = 1 << 15;

impl Layer for BatchNorm {
    fn eval_affine(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        let (gamma, beta) = self.gamma_beta();
        Some(kernel::eval_scale_shift(
            &gamma,
            &beta,
            self.moving_mean.value.data(),
            self.moving_var.value.data(),
            self.config.epsilon,
        ))
    }

    fn set_sync(&mut self, ranks: Option<std::sync::Arc<dyn crate::Collective>>) {
        self.sync = ranks;
    }

    fn update_count(&self) -> Option<u64> {
        self.updates
    }
    fn set_update_count(&mut self, count: Option<u64>) {
        self.updates = count.filter(|_| !self.config.keras_moving_average);
    }

    fn input_shape(&self) -> &[usize] {
        &self.shape
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }

    fn forward(&mut self, x: Tensor, mode: Mode, _rng: &mut Rng) -> Tensor {
        let c = self.channels();
        if !mode.trains() {
            // The affine map in place: no output buffer.
            let (scale, shift) = self.eval_affine().expect("batch norm is affine");
            let mut y = x;
            y.data_mut()
                .par_chunks_mut(EVAL_BLOCK.div_ceil(c) * c)
                .for_each(|b| kernel::scale_shift_in_place(b, &scale, &shift));
            self.cache = None;
            self.eval_scale = Some(scale);
            return y;
        }
        self.forward_train(x, Epilogue::None)
    }

    fn forward_train_relu(
        &mut self,
        x: Tensor,
        _rng: &mut Rng,
    ) -> std::result::Result<Tensor, Tensor> {
        Ok(self.forward_train(x, Epilogue::Relu))
    }

    fn forward_train_add_relu(
        &mut self,
        x: Tensor,
        shortcut: &Tensor,
        _rng: &mut Rng,
    ) -> std::result::Result<Tensor, Tensor> {
        if shortcut.shape() != x.shape() {
            return Err(x);
        }
        Ok(self.forward_train(x, Epilogue::AddRelu(shortcut)))
    }

    fn mask_fused_relu(&mut self, dy: &mut Tensor) {
        let c = self.channels();
        let saved = self
            .fused_mask
            .as_ref()
            .expect("mask_fused_relu after forward_train_add_relu");
        Activation::Relu.backward_saved(saved, dy.data_mut(), c);
    }

    fn backward(&mut self, dy: Tensor) -> Tensor {
        let c = self.channels();
        let Some(cache) = self.cache.take() else {
            // After an inference forward (a frozen layer): y = x * scale + shift,
            // so dx = dy * scale; the frozen gamma and beta get no gradient.
            let scale = self
                .eval_scale
                .as_ref()
                .expect("BatchNormalization backward before a forward");
            let mut dx = dy;
            dx.data_mut()
                .par_chunks_mut(EVAL_BLOCK.div_ceil(c) * c)
                .for_each(|b| {
                    b.chunks_mut(c)
                        .for_each(|row| row.iter_mut().zip(scale).for_each(|(v, s)| *v *= s))
                });
            return dx;
        };
        let (gamma, beta) = self.gamma_beta();
        // dx is written over dy: no gradient buffer is allocated.
        let mut dx = dy;
        let mut dgamma = vec![0.0; c];
        let mut dbeta = vec![0.0; c];
        let sync = self
            .sync
            .as_ref()
            .map(|ranks| move |sums: &mut [f64]| ranks.sum_f64(sums));
        let sync = sync.as_ref().map(|f| f as kernel::SumsSync);
        kernel::batch_norm_backward_train_with(
            cache.x.data(),
            dx.data_mut(),
            c,
            &gamma,
            cache.relu.then_some(&beta[..]),
            &cache.mean,
            &cache.rstd,
            &mut dgamma,
            &mut dbeta,
            sync,
        );
        if let Some(g) = &mut self.gamma {
            g.grad
                .data_mut()
                .iter_mut()
                .zip(&dgamma)
                .for_each(|(a, b)| *a += b);
        }
        if let Some(b) = &mut self.beta {
            b.grad
                .data_mut()
                .iter_mut()
                .zip(&dbeta)
                .for_each(|(a, b)| *a += b);
        }
        dx
    }

    fn params(&self) -> Vec<&Param> {
        self.gamma
            .iter()
            .chain(&self.beta)
            .chain([&self.moving_mean, &self.moving_var])
            .collect()
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        self.gamma
            .iter_mut()
            .chain(self.beta.iter_mut())
            .chain([&mut self.moving_mean, &mut self.moving_var])
            .collect()
    }
}

impl LayerKind for BatchNormConfig {
    fn name(&self) -> &'static str {
        "BatchNormalization"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        same_shape("BatchNormalization", input)
    }
    /// `gamma` and `beta` (as set) train; the two moving statistics do not.
    fn param_counts(&self, input: &[usize]) -> Result<(usize, usize)> {
        let c = input.last().copied().unwrap_or(0);
        Ok((
            checked_count(&[c, self.center as usize + self.scale as usize])?,
            checked_count(&[c, 2])?,
        ))
    }
    fn build(&self, inputs: &[&[usize]], _rng: &mut Rng) -> Result<Box<dyn Layer>> {
        single(self, inputs, |x| BatchNormConfig::build(self, x))
    }
    fn role(&self) -> Role {
        Role::Normalization
    }
    fn notation(&self) -> Option<String> {
        Some("BN".into())
    }
    fn parse_token(
        token: &str,
        _ctx: &TokenContext,
    ) -> Option<std::result::Result<LayerSpec, String>> {
        (token == "BN").then(|| Ok(LayerSpec::BatchNormalization(BatchNormConfig::new())))
    }
    fn settings_error(fields: &serde_json::Value) -> Option<String> {
        settings_error_of::<Self>(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng as _, SeedableRng};

    /// The moving statistics after one training step, against an f64
    /// reference, from non-default starting values: Keras's update with the
    /// biased batch variance, to 1e-6, and visibly not the unbiased one.
    #[test]
    fn moving_statistics_follow_keras_with_the_biased_variance() {
        // 210 rows: one statistics block, and few enough rows that the
        // unbiased variance differs visibly; 7,000 rows: three blocks for c = 5
        // (16,384 values each), combined by Chan et al.'s update.
        for rows in [210, 7000] {
            check_moving_statistics(rows);
        }
    }

    fn check_moving_statistics(rows: usize) {
        let c = 5;
        let mut rng = crate::Rng::seed_from_u64(7);
        // Channels with different offsets and spreads (offset 100: cancellation-prone).
        let data: Vec<f32> = (0..rows * c)
            .map(|i| {
                let ch = i % c;
                100.0 * (ch == 0) as u8 as f32
                    + ch as f32
                    + rng.gen_range(-1.0..1.0) * (1 + ch) as f32
            })
            .collect();
        let x = Tensor::from_vec(&[rows / 7, 7, 1, c], data.clone()).unwrap();
        let cfg = BatchNormConfig::new()
            .with_momentum(0.9)
            .with_keras_moving_average(true);
        let mut bn = cfg.build(&[7, 1, c]).unwrap();
        let (m0, v0) = (0.25f32, 2.5f32);
        bn.moving_mean.value.data_mut().fill(m0);
        bn.moving_var.value.data_mut().fill(v0);
        bn.forward(x, Mode::Train, &mut crate::Rng::seed_from_u64(0));
        for ch in 0..c {
            let vals: Vec<f64> = data.iter().skip(ch).step_by(c).map(|&v| v as f64).collect();
            let n = vals.len() as f64;
            let mean = vals.iter().sum::<f64>() / n;
            let biased = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            let unbiased = biased * n / (n - 1.0);
            let want_m = 0.9 * m0 as f64 + 0.1 * mean;
            let want_v = 0.9 * v0 as f64 + 0.1 * biased;
            let got_m = bn.moving_mean.value.data()[ch] as f64;
            let got_v = bn.moving_var.value.data()[ch] as f64;
            assert!(
                (got_m - want_m).abs() <= 1e-6 * (1.0 + want_m.abs()),
                "mean {ch}: {got_m} vs {want_m}"
            );
            assert!(
                (got_v - want_v).abs() <= 1e-6 * (1.0 + want_v),
                "var {ch}: {got_v} vs {want_v}"
            );
            if rows < 1000 {
                let with_unbiased = 0.9 * v0 as f64 + 0.1 * unbiased;
                assert!(
                    (got_v - with_unbiased).abs() > 1e-4,
                    "var {ch}: the unbiased update would pass too"
                );
            }
        }
    }

    /// The default moving statistics are bias-corrected averages of the
    /// batches' statistics (an f64 reference: the weighted sum over the
    /// batches seen, divided by the weights' sum); loaded statistics
    /// (a count of `None`) follow Keras's update.
    #[test]
    fn moving_statistics_are_bias_corrected_averages_from_the_first_batch() {
        let c = 3;
        let m = 0.99f64;
        let mut bn = BatchNormConfig::new().build(&[2, 2, c]).unwrap();
        let mut rng = crate::Rng::seed_from_u64(3);
        let (mut means, mut vars) = (vec![], vec![]);
        for t in 1..=40u64 {
            let data: Vec<f32> = (0..8 * 4 * c)
                .map(|i| (i % c) as f32 * 3.0 + rng.gen_range(-1.0..1.0) * (1 + t % 4) as f32)
                .collect();
            let x = Tensor::from_vec(&[8, 2, 2, c], data.clone()).unwrap();
            bn.forward(x, Mode::Train, &mut crate::Rng::seed_from_u64(0));
            let stats: Vec<(f64, f64)> = (0..c)
                .map(|ch| {
                    let v: Vec<f64> = data.iter().skip(ch).step_by(c).map(|&v| v as f64).collect();
                    let mean = v.iter().sum::<f64>() / v.len() as f64;
                    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
                    (mean, var)
                })
                .collect();
            means.push(stats.iter().map(|s| s.0).collect::<Vec<_>>());
            vars.push(stats.iter().map(|s| s.1).collect::<Vec<_>>());
            assert_eq!(bn.update_count(), Some(t));
            for ch in 0..c {
                let weights: Vec<f64> = (1..=t)
                    .map(|k| (1.0 - m) * m.powi((t - k) as i32))
                    .collect();
                let total: f64 = weights.iter().sum();
                let want_m: f64 = weights
                    .iter()
                    .zip(&means)
                    .map(|(w, s)| w * s[ch])
                    .sum::<f64>()
                    / total;
                let want_v: f64 = weights
                    .iter()
                    .zip(&vars)
                    .map(|(w, s)| w * s[ch])
                    .sum::<f64>()
                    / total;
                let got_m = bn.moving_mean.value.data()[ch] as f64;
                let got_v = bn.moving_var.value.data()[ch] as f64;
                assert!(
                    (got_m - want_m).abs() < 1e-4 * (1.0 + want_m.abs()),
                    "t {t} mean {ch}: {got_m} vs {want_m}"
                );
                assert!(
                    (got_v - want_v).abs() < 1e-4 * (1.0 + want_v),
                    "t {t} var {ch}: {got_v} vs {want_v}"
                );
            }
        }
        // Loaded statistics: Keras's update, weight 1 - m on the new batch.
        bn.set_update_count(None);
        let before = bn.moving_mean.value.data()[1] as f64;
        let x = Tensor::from_vec(&[1, 2, 2, c], vec![10.0; 4 * c]).unwrap();
        bn.forward(x, Mode::Train, &mut crate::Rng::seed_from_u64(0));
        let want = m * before + (1.0 - m) * 10.0;
        assert!((bn.moving_mean.value.data()[1] as f64 - want).abs() < 1e-5);
        assert_eq!(bn.update_count(), None);
    }
}
