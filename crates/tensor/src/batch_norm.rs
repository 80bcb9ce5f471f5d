//! Batch normalization over the last (channel) axis.
//!
//! An NHWC batch `[N, H, W, C]` and a dense batch `[N, C]` are both seen as
//! `R` rows of `C` channels, so one kernel serves BatchNormalization after
//! Conv2D and after Dense.
//!
//! ```text
//! training:  mean_c = (1/R) sum_r x[r,c]      var_c = (1/R) sum_r (x[r,c] - mean_c)^2   (biased)
//!            rstd_c = 1 / sqrt(var_c + eps)   xhat = (x - mean) * rstd
//!            y = gamma * xhat + beta
//! backward:  dbeta_c = sum_r dy          dgamma_c = sum_r dy * xhat
//!            dx = gamma * rstd / R * (R dy - dbeta - xhat * dgamma)
//! inference: y = gamma * (x - moving_mean) / sqrt(moving_var + eps) + beta
//! ```
//!
//! Column sums are taken over fixed row blocks in parallel and combined in
//! block order in `f64`, so results do not depend on the thread count.

use multiversion::multiversion;
use rayon::prelude::*;

/// Rows per parallel block of the column reductions.
const BLOCK_ROWS: usize = 1024;
// The AddRelu epilogue packs each block's ReLU mask into whole 64-bit words.
const _: () = assert!(BLOCK_ROWS.is_multiple_of(64));

/// `acc[c] += sum_r (x[r, c] - shift[c])` over the rows of `x [R, C]`, in row order.
#[multiversion(targets = "simd")]
fn add_deviations(x: &[f32], shift: &[f32], acc: &mut [f32]) {
    for row in x.chunks_exact(acc.len()) {
        for ((a, v), s) in acc.iter_mut().zip(row).zip(shift) {
            *a += v - s;
        }
    }
}

/// `acc[c] += sum_r (x[r, c] - mean[c])^2`, in row order.
#[multiversion(targets = "simd")]
fn add_squared_deviations(x: &[f32], mean: &[f32], acc: &mut [f32]) {
    for row in x.chunks_exact(acc.len()) {
        for ((a, v), m) in acc.iter_mut().zip(row).zip(mean) {
            let d = v - m;
            *a += d * d;
        }
    }
}

/// `y[r, c] = x[r, c] * scale[c] + shift[c]`.
#[multiversion(targets = "simd")]
fn scale_shift(x: &[f32], scale: &[f32], shift: &[f32], y: &mut [f32]) {
    for (yr, xr) in y
        .chunks_exact_mut(scale.len())
        .zip(x.chunks_exact(scale.len()))
    {
        for (((y, x), a), b) in yr.iter_mut().zip(xr).zip(scale).zip(shift) {
            *y = x * a + b;
        }
    }
}

/// Backward column sums of one block: `sb += sum dy`, `sg += sum dy * xhat`.
/// `y = relu(x * scale + shift)`, ReLU as `Activation::Relu` has it
/// (`if v < 0 { 0 } else { v }`: -0.0 and NaN pass through).
#[multiversion(targets = "simd")]
fn scale_shift_relu(x: &[f32], scale: &[f32], shift: &[f32], y: &mut [f32]) {
    for (yr, xr) in y
        .chunks_exact_mut(scale.len())
        .zip(x.chunks_exact(scale.len()))
    {
        for (((y, x), a), b) in yr.iter_mut().zip(xr).zip(scale).zip(shift) {
            let v = x * a + b;
            *y = if v < 0.0 { 0.0 } else { v };
        }
    }
}

/// The gradient that reaches the batch norm's output through a ReLU:
/// `dy` where the ReLU passed its input (`!(pre <= 0)`, NaN included, as
/// `SavedOutput::ReluMask`), else 0; `pre = x * scale + shift` recomputed
/// with the forward's exact arithmetic.
#[inline(always)]
fn through_relu(d: f32, x: f32, a: f32, b: f32) -> f32 {
    let pre = x * a + b;
    if pre <= 0.0 {
        0.0
    } else {
        d
    }
}

/// [`backward_sums`] for a batch norm followed by a ReLU.
#[multiversion(targets = "simd")]
fn backward_sums_relu(dy: &[f32], x: &[f32], t: &ReluTerms, sb: &mut [f32], sg: &mut [f32]) {
    let c = t.mean.len();
    let (mean, rstd, scale, shift) = (&t.mean[..c], &t.rstd[..c], &t.scale[..c], &t.shift[..c]);
    for (dr, xr) in dy.chunks_exact(c).zip(x.chunks_exact(c)) {
        for i in 0..c {
            let d = through_relu(dr[i], xr[i], scale[i], shift[i]);
            sb[i] += d;
            sg[i] += d * (xr[i] - mean[i]) * rstd[i];
        }
    }
}

/// The forward's per-channel numbers a fused backward recomputes the ReLU with.
struct ReluTerms<'a> {
    mean: &'a [f32],
    rstd: &'a [f32],
    scale: &'a [f32],
    shift: &'a [f32],
}

#[multiversion(targets = "simd")]
fn backward_sums(
    dy: &[f32],
    x: &[f32],
    mean: &[f32],
    rstd: &[f32],
    sb: &mut [f32],
    sg: &mut [f32],
) {
    let c = mean.len();
    for (dr, xr) in dy.chunks_exact(c).zip(x.chunks_exact(c)) {
        for (((((b, g), &d), &x), &m), &rs) in sb
            .iter_mut()
            .zip(sg.iter_mut())
            .zip(dr)
            .zip(xr)
            .zip(mean)
            .zip(rstd)
        {
            *b += d;
            *g += d * (x - m) * rs;
        }
    }
}

/// Per-channel constants of the input gradient.
struct BackwardTerms<'a> {
    gamma: &'a [f32],
    mean: &'a [f32],
    rstd: &'a [f32],
    mean_dy: &'a [f32],
    mean_dy_xhat: &'a [f32],
}

/// `dx = gamma * rstd * (dy - mean(dy) - xhat * mean(dy * xhat))` for one
/// block, written over `dy`.
#[multiversion(targets = "simd")]
fn backward_dx(t: &BackwardTerms, x: &[f32], dy: &mut [f32]) {
    let c = t.mean.len();
    // Slices of exactly `c` let the compiler drop the bounds checks.
    let (gamma, mean, rstd) = (&t.gamma[..c], &t.mean[..c], &t.rstd[..c]);
    let (mean_dy, mean_dy_xhat) = (&t.mean_dy[..c], &t.mean_dy_xhat[..c]);
    for (dr, xr) in dy.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        for i in 0..c {
            let xhat = (xr[i] - mean[i]) * rstd[i];
            dr[i] = gamma[i] * rstd[i] * (dr[i] - mean_dy[i] - xhat * mean_dy_xhat[i]);
        }
    }
}

/// [`backward_dx`] for a batch norm followed by a ReLU.
#[multiversion(targets = "simd")]
fn backward_dx_relu(t: &BackwardTerms, r: &ReluTerms, x: &[f32], dy: &mut [f32]) {
    let c = t.mean.len();
    let (gamma, mean, rstd) = (&t.gamma[..c], &t.mean[..c], &t.rstd[..c]);
    let (mean_dy, mean_dy_xhat) = (&t.mean_dy[..c], &t.mean_dy_xhat[..c]);
    let (scale, shift) = (&r.scale[..c], &r.shift[..c]);
    for (dr, xr) in dy.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        for i in 0..c {
            let d = through_relu(dr[i], xr[i], scale[i], shift[i]);
            let xhat = (xr[i] - mean[i]) * rstd[i];
            dr[i] = gamma[i] * rstd[i] * (d - mean_dy[i] - xhat * mean_dy_xhat[i]);
        }
    }
}

/// Values per block of the statistics pass: a block is read twice (its
/// mean, then its squared deviations) while it sits in the core's cache, so
/// the batch is read from memory once.
const STATS_BLOCK: usize = 1 << 14;

/// Per-channel count, mean and sum of squared deviations (`M2`) of rows
/// seen so far, in f64. [`Moments::add`] reads a batch `x [R, C]` in one pass
/// over memory: each block of whole rows gives its count, mean (summed as
/// deviations from the block's first row, so that a large common offset does
/// not eat the f32 digits) and sum of squared deviations (f32, rows in
/// order); blocks are merged in block order by Chan et al.'s pairwise update,
/// `M2 = M2_a + M2_b + d^2 n_a n_b / (n_a + n_b)` with `d = mean_b - mean_a`.
/// Blocks depend only on the shape, so results do not depend on the thread count.
#[derive(Clone, Debug)]
pub struct Moments {
    count: f64,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl Moments {
    /// No rows yet, `c` channels.
    pub fn new(c: usize) -> Self {
        Moments {
            count: 0.0,
            mean: vec![0.0; c],
            m2: vec![0.0; c],
        }
    }

    /// Adds the rows of `x [R, C]`.
    pub fn add(&mut self, x: &[f32]) {
        let c = self.mean.len();
        let rows = (STATS_BLOCK / c).max(1);
        let partials: Vec<(usize, Vec<f32>, Vec<f32>)> = x
            .par_chunks(rows * c)
            .map(|block| {
                let n = block.len() / c;
                let shift = &block[..c];
                let mut s = vec![0.0f32; c];
                add_deviations(block, shift, &mut s);
                let m: Vec<f32> = s
                    .iter()
                    .zip(shift)
                    .map(|(v, x0)| x0 + v / n as f32)
                    .collect();
                let mut q = vec![0.0f32; c];
                add_squared_deviations(block, &m, &mut q);
                (n, m, q)
            })
            .collect();
        for (n, m, q) in partials {
            let nb = n as f64;
            let nn = self.count + nb;
            for j in 0..c {
                let d = m[j] as f64 - self.mean[j];
                self.mean[j] += d * nb / nn;
                self.m2[j] += q[j] as f64 + d * d * self.count * nb / nn;
            }
            self.count = nn;
        }
    }

    /// Merges `other`'s rows after this one's (Chan et al.'s update, as
    /// between blocks; merging into empty moments copies them exactly).
    pub fn merge(&mut self, other: &Moments) {
        let nb = other.count;
        let nn = self.count + nb;
        if nb == 0.0 {
            return;
        }
        for j in 0..self.mean.len() {
            let d = other.mean[j] - self.mean[j];
            self.mean[j] += d * nb / nn;
            self.m2[j] += other.m2[j] + d * d * self.count * nb / nn;
        }
        self.count = nn;
    }

    /// `[count, mean[0..c], m2[0..c]]`, to send to another process.
    pub fn to_vec(&self) -> Vec<f64> {
        let mut v = vec![self.count];
        v.extend_from_slice(&self.mean);
        v.extend_from_slice(&self.m2);
        v
    }

    /// The moments that [`Moments::to_vec`] wrote (`1 + 2c` values).
    pub fn from_slice(v: &[f64]) -> Self {
        let c = (v.len() - 1) / 2;
        Moments {
            count: v[0],
            mean: v[1..1 + c].to_vec(),
            m2: v[1 + c..1 + 2 * c].to_vec(),
        }
    }

    /// The per-channel means.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The per-channel biased variances, `M2 / count`.
    pub fn variance(&self) -> Vec<f64> {
        let n = self.count.max(1.0);
        self.m2.iter().map(|v| v / n).collect()
    }
}

/// Per-channel mean and biased variance of `x [R, C]` (see [`Moments`]),
/// after `sync` (which may replace the moments by those of every process's rows).
fn mean_and_variance(x: &[f32], c: usize, sync: Option<MomentsSync>) -> (Vec<f64>, Vec<f64>) {
    let mut m = Moments::new(c);
    m.add(x);
    if let Some(f) = sync {
        f(&mut m);
    }
    let var = m.variance();
    (m.mean, var)
}

/// Replaces a process's batch moments by the whole batch's (synchronized batch norm).
pub type MomentsSync<'a> = &'a dyn Fn(&mut Moments);

/// Replaces `[rows, sum dy[0..c], sum dy*xhat[0..c]]` of a process by the
/// sums over every process (synchronized batch norm's backward).
pub type SumsSync<'a> = &'a dyn Fn(&mut [f64]);

/// What the batch norm's training forward applies in its own output pass,
/// bit for bit as the layers after it would one after the other.
pub enum Epilogue<'a> {
    /// Nothing: `y = gamma * (x - mean) * rstd + beta`.
    None,
    /// `y = relu(bn(x))`, ReLU as `Activation::Relu` has it.
    Relu,
    /// `y = relu(bn(x) + shortcut)` (a residual `Add`, then a ReLU), with
    /// the ReLU's mask written as `SavedOutput::ReluMask` keeps it (bit
    /// `i % 64` of word `i / 64` set where `!(y[i] <= 0)`).
    AddRelu {
        /// The other input of the addition, shaped as `x`.
        shortcut: &'a [f32],
        /// `x.len().div_ceil(64)` words.
        mask: &'a mut [u64],
    },
}

/// `y = relu(x * scale + shift + s)` and its ReLU mask, for one block whose
/// length is a multiple of 64 (or the last block).
#[multiversion(targets = "simd")]
fn scale_shift_add_relu(
    x: &[f32],
    scale: &[f32],
    shift: &[f32],
    s: &[f32],
    y: &mut [f32],
    mask: &mut [u64],
) {
    let c = scale.len();
    for ((yr, xr), sr) in y
        .chunks_exact_mut(c)
        .zip(x.chunks_exact(c))
        .zip(s.chunks_exact(c))
    {
        for ((((y, x), a), b), s) in yr.iter_mut().zip(xr).zip(scale).zip(shift).zip(sr) {
            // As the layers compute it: the batch norm's value, the sum, the ReLU.
            let v = x * a + b;
            let v = v + s;
            *y = if v < 0.0 { 0.0 } else { v };
        }
    }
    crate::activation::pack_positive(y, mask);
}

#[allow(clippy::too_many_arguments)]
/// Training forward. Writes `y` and the batch `mean` and `rstd` (which the
/// backward pass needs) and returns the biased batch variance per channel.
/// With an [`Epilogue`], what the layers after it compute is applied in the
/// same pass: bit for bit the same, memory passes fewer.
/// With `sync` (a batch split over processes: synchronized batch norm), the
/// hook turns this process's moments into the whole batch's, which
/// normalize these rows.
pub fn batch_norm_forward_train_with(
    x: &[f32],
    c: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    epilogue: Epilogue,
    sync: Option<MomentsSync>,
) -> Vec<f32> {
    let (m, var) = mean_and_variance(x, c, sync);
    for (dst, v) in mean.iter_mut().zip(&m) {
        *dst = *v as f32;
    }
    let var: Vec<f32> = var.iter().map(|&v| v as f32).collect();
    for (rs, v) in rstd.iter_mut().zip(&var) {
        *rs = 1.0 / (v + eps).sqrt();
    }
    match epilogue {
        Epilogue::None => apply(x, c, mean, rstd, gamma, beta, y),
        Epilogue::Relu => {
            let (scale, shift) = scale_and_shift(mean, rstd, gamma, beta);
            y.par_chunks_mut(BLOCK_ROWS * c)
                .zip(x.par_chunks(BLOCK_ROWS * c))
                .for_each(|(yb, xb)| scale_shift_relu(xb, &scale, &shift, yb));
        }
        Epilogue::AddRelu { shortcut, mask } => {
            assert_eq!(shortcut.len(), x.len(), "batch norm + add: shortcut length");
            assert!(mask.len() * 64 >= x.len(), "batch norm + add: mask length");
            let (scale, shift) = scale_and_shift(mean, rstd, gamma, beta);
            // BLOCK_ROWS is a multiple of 64, so each block's mask is whole words.
            let block = BLOCK_ROWS * c;
            y.par_chunks_mut(block)
                .zip(x.par_chunks(block))
                .zip(shortcut.par_chunks(block))
                .zip(mask.par_chunks_mut(block / 64))
                .for_each(|(((yb, xb), sb), mb)| {
                    scale_shift_add_relu(xb, &scale, &shift, sb, yb, mb)
                });
        }
    }
    var
}

#[allow(clippy::too_many_arguments)]
/// Inference forward with the moving statistics.
pub fn batch_norm_forward_eval(
    x: &[f32],
    c: usize,
    gamma: &[f32],
    beta: &[f32],
    moving_mean: &[f32],
    moving_var: &[f32],
    eps: f32,
    y: &mut [f32],
) {
    let rstd: Vec<f32> = moving_var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    apply(x, c, moving_mean, &rstd, gamma, beta, y);
}

/// Inference batch norm as the per-channel affine map it is:
/// `y = x * scale + shift` with `scale = gamma / sqrt(var + eps)` and
/// `shift = beta - mean * scale` (the exact values [`batch_norm_forward_eval`]
/// uses, so a layer that applies them itself gives identical results).
pub fn eval_scale_shift(
    gamma: &[f32],
    beta: &[f32],
    moving_mean: &[f32],
    moving_var: &[f32],
    eps: f32,
) -> (Vec<f32>, Vec<f32>) {
    let rstd: Vec<f32> = moving_var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    scale_and_shift(moving_mean, &rstd, gamma, beta)
}

/// `(gamma * rstd, beta - mean * gamma * rstd)` per channel.
fn scale_and_shift(
    mean: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    beta: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f32> = gamma.iter().zip(rstd).map(|(g, r)| g * r).collect();
    let shift: Vec<f32> = (0..scale.len())
        .map(|i| beta[i] - mean[i] * scale[i])
        .collect();
    (scale, shift)
}

/// `y[r, c] = y[r, c] * scale[c] + shift[c]` in place, on the calling thread.
#[multiversion(targets = "simd")]
pub fn scale_shift_in_place(y: &mut [f32], scale: &[f32], shift: &[f32]) {
    for row in y.chunks_exact_mut(scale.len()) {
        for ((v, a), b) in row.iter_mut().zip(scale).zip(shift) {
            *v = *v * a + b;
        }
    }
}

/// `y = gamma * (x - mean) * rstd + beta`, row by row.
fn apply(
    x: &[f32],
    c: usize,
    mean: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
) {
    let (scale, shift) = scale_and_shift(mean, rstd, gamma, beta);
    y.par_chunks_mut(BLOCK_ROWS * c)
        .zip(x.par_chunks(BLOCK_ROWS * c))
        .for_each(|(yb, xb)| scale_shift(xb, &scale, &shift, yb));
}

/// Training backward. Writes `dx` and accumulates `dgamma += sum dy*xhat`
/// and `dbeta += sum dy`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward_train(
    x: &[f32],
    dy: &[f32],
    c: usize,
    gamma: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    dx.copy_from_slice(dy);
    batch_norm_backward_train_in_place(x, dx, c, gamma, mean, rstd, dgamma, dbeta);
}

/// [`batch_norm_backward_train`] with `dx` written over `dy` (each `dx[i]`
/// needs only `dy[i]`, `x[i]` and per-channel sums), so a training step
/// allocates no separate gradient buffer.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward_train_in_place(
    x: &[f32],
    dy: &mut [f32],
    c: usize,
    gamma: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    batch_norm_backward_train_with(x, dy, c, gamma, None, mean, rstd, dgamma, dbeta, None);
}

/// The training backward in place (as [`batch_norm_backward_train_in_place`]).
/// With `relu_beta`, for a forward with `relu`: `dy` is the gradient w.r.t.
/// the ReLU's output, whose mask is recomputed from `x` (with `beta`) in the
/// two passes the batch norm makes anyway. With `sync` (a batch split
/// over processes), `dgamma` and `dbeta` get this process's sums (the
/// gradient all-reduce adds the others') and `dx` uses the sums over every
/// process that the hook returns.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward_train_with(
    x: &[f32],
    dy: &mut [f32],
    c: usize,
    gamma: &[f32],
    relu_beta: Option<&[f32]>,
    mean: &[f32],
    rstd: &[f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    sync: Option<SumsSync>,
) {
    let (scale, shift) = match relu_beta {
        Some(beta) => scale_and_shift(mean, rstd, gamma, beta),
        None => (Vec::new(), Vec::new()),
    };
    let relu = relu_beta.map(|_| ReluTerms {
        mean,
        rstd,
        scale: &scale,
        shift: &shift,
    });
    let mut r = (x.len() / c).max(1);
    // Row sums of dy and dy * xhat, block by block.
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dy
        .par_chunks(BLOCK_ROWS * c)
        .zip(x.par_chunks(BLOCK_ROWS * c))
        .map(|(dyb, xb)| {
            let mut sb = vec![0.0f32; c];
            let mut sg = vec![0.0f32; c];
            match &relu {
                Some(t) => backward_sums_relu(dyb, xb, t, &mut sb, &mut sg),
                None => backward_sums(dyb, xb, mean, rstd, &mut sb, &mut sg),
            }
            (sb, sg)
        })
        .collect();
    let mut sum_dy = vec![0.0f64; c];
    let mut sum_dy_xhat = vec![0.0f64; c];
    for (sb, sg) in partials {
        for i in 0..c {
            sum_dy[i] += sb[i] as f64;
            sum_dy_xhat[i] += sg[i] as f64;
        }
    }
    for i in 0..c {
        dbeta[i] += sum_dy[i] as f32;
        dgamma[i] += sum_dy_xhat[i] as f32;
    }
    if let Some(f) = sync {
        let mut all = vec![r as f64];
        all.extend_from_slice(&sum_dy);
        all.extend_from_slice(&sum_dy_xhat);
        f(&mut all);
        r = (all[0] as usize).max(1);
        sum_dy.copy_from_slice(&all[1..1 + c]);
        sum_dy_xhat.copy_from_slice(&all[1 + c..]);
    }
    let mean_dy: Vec<f32> = sum_dy.iter().map(|s| (s / r as f64) as f32).collect();
    let mean_dy_xhat: Vec<f32> = sum_dy_xhat.iter().map(|s| (s / r as f64) as f32).collect();
    let terms = BackwardTerms {
        gamma,
        mean,
        rstd,
        mean_dy: &mean_dy,
        mean_dy_xhat: &mean_dy_xhat,
    };
    dy.par_chunks_mut(BLOCK_ROWS * c)
        .zip(x.par_chunks(BLOCK_ROWS * c))
        .for_each(|(d, xb)| match &relu {
            Some(t) => backward_dx_relu(&terms, t, xb, d),
            None => backward_dx(&terms, xb, d),
        });
}
