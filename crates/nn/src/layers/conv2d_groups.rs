//! Grouped convolution (Conv2D with `groups` G > 1) as G convolutions on
//! the existing kernels: group k's input channels and filters are copied
//! out into contiguous tensors, convolved, and the results copied back.
//!
//! ```text
//! x  [N, H, W, G*c]     group k: channels k*c .. (k+1)*c
//! W  [KH, KW, c, G*f]   group k: filters  k*f .. (k+1)*f  (Keras's layout)
//! y  [N, OH, OW, G*f]   y_k = conv(x_k, W_k) + b_k
//! ```
//! `g` is one group's geometry (`c` channels, `f` filters). The copies
//! cost a pass over each tensor; each group's sums are the plain kernels'
//! (the same bits for any thread count).

use convnet_tensor::activation::Activation;
use convnet_tensor::conv::{conv2d_backward_input, conv2d_backward_weight, conv2d_forward};
use convnet_tensor::Conv2dGeometry;

/// Columns `from .. from + width` of a `[rows, total]` matrix.
fn gather(src: &[f32], total: usize, from: usize, width: usize) -> Vec<f32> {
    src.chunks_exact(total)
        .flat_map(|row| &row[from..from + width])
        .copied()
        .collect()
}

/// Writes `[rows, width]` into columns `from .. from + width` of `dst`.
fn scatter(dst: &mut [f32], total: usize, from: usize, src: &[f32]) {
    let width = src.len() / (dst.len() / total).max(1);
    for (d, s) in dst.chunks_exact_mut(total).zip(src.chunks_exact(width)) {
        d[from..from + width].copy_from_slice(s);
    }
}

/// Adds `[rows, width]` into columns `from .. from + width` of `dst`.
fn add_into(dst: &mut [f32], total: usize, from: usize, src: &[f32]) {
    let width = src.len() / (dst.len() / total).max(1);
    for (d, s) in dst.chunks_exact_mut(total).zip(src.chunks_exact(width)) {
        d[from..from + width]
            .iter_mut()
            .zip(s)
            .for_each(|(d, s)| *d += s);
    }
}

/// `y = conv(x, w) + bias`, group by group (no activation).
pub(super) fn forward(
    g: &Conv2dGeometry,
    groups: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let (c, f) = (g.c, g.f);
    for k in 0..groups {
        let xk = gather(x, c * groups, k * c, c);
        let wk = gather(w, f * groups, k * f, f);
        let bk = bias.map(|b| &b[k * f..(k + 1) * f]);
        let mut yk = vec![0.0; g.output_len()];
        conv2d_forward(g, &xk, &wk, bk, Activation::Linear, &mut yk);
        scatter(y, f * groups, k * f, &yk);
    }
}

/// Adds the kernel (and bias) gradients of `dz`, the pre-activation gradient.
pub(super) fn backward_weight(
    g: &Conv2dGeometry,
    groups: usize,
    x: &[f32],
    dz: &[f32],
    dw: &mut [f32],
    mut db: Option<&mut [f32]>,
) {
    let (c, f) = (g.c, g.f);
    for k in 0..groups {
        let xk = gather(x, c * groups, k * c, c);
        let dzk = gather(dz, f * groups, k * f, f);
        let mut dwk = vec![0.0; g.weight_len()];
        let mut dbk = db.as_ref().map(|_| vec![0.0; f]);
        conv2d_backward_weight(g, &xk, &dzk, &mut dwk, dbk.as_deref_mut());
        add_into(dw, f * groups, k * f, &dwk);
        if let (Some(db), Some(dbk)) = (db.as_deref_mut(), dbk) {
            add_into(db, f * groups, k * f, &dbk);
        }
    }
}

/// Writes the input gradient of `dz` into `dx`.
pub(super) fn backward_input(
    g: &Conv2dGeometry,
    groups: usize,
    dz: &[f32],
    w: &[f32],
    dx: &mut [f32],
) {
    let (c, f) = (g.c, g.f);
    for k in 0..groups {
        let dzk = gather(dz, f * groups, k * f, f);
        let wk = gather(w, f * groups, k * f, f);
        let mut dxk = vec![0.0; g.input_len()];
        conv2d_backward_input(g, &dzk, &wk, &mut dxk);
        scatter(dx, c * groups, k * c, &dxk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_go_out_and_back() {
        let m: Vec<f32> = (0..12).map(|v| v as f32).collect(); // [3, 4]
        let cols = gather(&m, 4, 1, 2);
        assert_eq!(cols, [1.0, 2.0, 5.0, 6.0, 9.0, 10.0]);
        let mut back = vec![0.0; 12];
        scatter(&mut back, 4, 1, &cols);
        add_into(&mut back, 4, 1, &cols);
        assert_eq!(back[..4], [0.0, 2.0, 4.0, 0.0]);
    }
}
