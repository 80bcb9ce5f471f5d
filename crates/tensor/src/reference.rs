//! Slow, obviously correct reference kernels, used by tests to check the
//! fast ones. Every value is computed straight from its defining formula,
//! one output element at a time, accumulating in `f64`.

use crate::depthwise::DepthwiseGeometry;
use crate::{Conv2dGeometry, Pool2dGeometry};

/// Input pixel `(n, iy, ix, c)` or `None` when it falls in the padding.
fn pixel(g: &Conv2dGeometry, x: &[f32], n: usize, iy: isize, ix: isize, c: usize) -> Option<f32> {
    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
        return None;
    }
    Some(x[((n * g.h + iy as usize) * g.w + ix as usize) * g.c + c])
}

fn input_pos(g: &Conv2dGeometry, oy: usize, ox: usize, ky: usize, kx: usize) -> (isize, isize) {
    (
        (oy * g.sh + ky * g.dh) as isize - g.pad_top as isize,
        (ox * g.sw + kx * g.dw) as isize - g.pad_left as isize,
    )
}

fn widx(g: &Conv2dGeometry, ky: usize, kx: usize, c: usize, f: usize) -> usize {
    ((ky * g.kw + kx) * g.c + c) * g.f + f
}

/// `y[n,oy,ox,f] = b[f] + sum x[n, oy*SH+ky*DH-PT, ox*SW+kx*DW-PL, c] * w[ky,kx,c,f]`.
pub fn conv2d_forward(g: &Conv2dGeometry, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
    let mut y = vec![0.0; g.output_len()];
    for n in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                for f in 0..g.f {
                    let mut acc = b.map_or(0.0, |b| b[f] as f64);
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            let (iy, ix) = input_pos(g, oy, ox, ky, kx);
                            for c in 0..g.c {
                                if let Some(v) = pixel(g, x, n, iy, ix, c) {
                                    acc += v as f64 * w[widx(g, ky, kx, c, f)] as f64;
                                }
                            }
                        }
                    }
                    y[((n * g.oh + oy) * g.ow + ox) * g.f + f] = acc as f32;
                }
            }
        }
    }
    y
}

/// `dx[n,iy,ix,c] = sum over (oy,ox,ky,kx,f) that read it of dy[n,oy,ox,f] * w[ky,kx,c,f]`.
pub fn conv2d_backward_input(g: &Conv2dGeometry, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0f64; g.input_len()];
    for n in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let (iy, ix) = input_pos(g, oy, ox, ky, kx);
                        if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                            continue;
                        }
                        for c in 0..g.c {
                            let xi = ((n * g.h + iy as usize) * g.w + ix as usize) * g.c + c;
                            for f in 0..g.f {
                                let yi = ((n * g.oh + oy) * g.ow + ox) * g.f + f;
                                dx[xi] += dy[yi] as f64 * w[widx(g, ky, kx, c, f)] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    dx.into_iter().map(|v| v as f32).collect()
}

/// `dw[ky,kx,c,f] = sum_{n,oy,ox} x[n, iy, ix, c] * dy[n,oy,ox,f]`; `db[f] = sum dy[..., f]`.
pub fn conv2d_backward_weight(g: &Conv2dGeometry, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut dw = vec![0.0f64; g.weight_len()];
    let mut db = vec![0.0f64; g.f];
    for n in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                for f in 0..g.f {
                    let d = dy[((n * g.oh + oy) * g.ow + ox) * g.f + f] as f64;
                    db[f] += d;
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            let (iy, ix) = input_pos(g, oy, ox, ky, kx);
                            for c in 0..g.c {
                                if let Some(v) = pixel(g, x, n, iy, ix, c) {
                                    dw[widx(g, ky, kx, c, f)] += v as f64 * d;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (
        dw.into_iter().map(|v| v as f32).collect(),
        db.into_iter().map(|v| v as f32).collect(),
    )
}

/// Depthwise forward: `y[n,oy,ox,c*M+m] = b[c*M+m] + sum_{ky,kx} x[n, iy, ix, c] * w[ky,kx,c,m]`.
pub fn depthwise_forward(
    g: &DepthwiseGeometry,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
) -> Vec<f32> {
    let (cg, m) = (&g.conv, g.m);
    let mut y = vec![0.0; g.output_len()];
    for n in 0..cg.n {
        for oy in 0..cg.oh {
            for ox in 0..cg.ow {
                for f in 0..cg.f {
                    let mut acc = b.map_or(0.0, |b| b[f] as f64);
                    for ky in 0..cg.kh {
                        for kx in 0..cg.kw {
                            let (iy, ix) = input_pos(cg, oy, ox, ky, kx);
                            if let Some(v) = pixel(cg, x, n, iy, ix, f / m) {
                                acc += v as f64 * w[(ky * cg.kw + kx) * cg.f + f] as f64;
                            }
                        }
                    }
                    y[((n * cg.oh + oy) * cg.ow + ox) * cg.f + f] = acc as f32;
                }
            }
        }
    }
    y
}

/// Depthwise input gradient: `dx[n,iy,ix,c] = sum over the taps that read
/// it and m of dy[n,oy,ox,c*M+m] * w[ky,kx,c,m]`.
pub fn depthwise_backward_input(g: &DepthwiseGeometry, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let (cg, m) = (&g.conv, g.m);
    let mut dx = vec![0.0f64; g.input_len()];
    for n in 0..cg.n {
        for oy in 0..cg.oh {
            for ox in 0..cg.ow {
                for ky in 0..cg.kh {
                    for kx in 0..cg.kw {
                        let (iy, ix) = input_pos(cg, oy, ox, ky, kx);
                        if iy < 0 || ix < 0 || iy >= cg.h as isize || ix >= cg.w as isize {
                            continue;
                        }
                        for f in 0..cg.f {
                            let d = dy[((n * cg.oh + oy) * cg.ow + ox) * cg.f + f] as f64;
                            let at = ((n * cg.h + iy as usize) * cg.w + ix as usize) * cg.c + f / m;
                            dx[at] += d * w[(ky * cg.kw + kx) * cg.f + f] as f64;
                        }
                    }
                }
            }
        }
    }
    dx.into_iter().map(|v| v as f32).collect()
}

/// Depthwise weight and bias gradients: `dw[ky,kx,c,m] = sum_{n,oy,ox}
/// x[n, iy, ix, c] * dy[n,oy,ox,c*M+m]`; `db[f] = sum dy[..., f]`.
pub fn depthwise_backward_weight(
    g: &DepthwiseGeometry,
    x: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let (cg, m) = (&g.conv, g.m);
    let mut dw = vec![0.0f64; g.weight_len()];
    let mut db = vec![0.0f64; cg.f];
    for n in 0..cg.n {
        for oy in 0..cg.oh {
            for ox in 0..cg.ow {
                for f in 0..cg.f {
                    let d = dy[((n * cg.oh + oy) * cg.ow + ox) * cg.f + f] as f64;
                    db[f] += d;
                    for ky in 0..cg.kh {
                        for kx in 0..cg.kw {
                            let (iy, ix) = input_pos(cg, oy, ox, ky, kx);
                            if let Some(v) = pixel(cg, x, n, iy, ix, f / m) {
                                dw[(ky * cg.kw + kx) * cg.f + f] += v as f64 * d;
                            }
                        }
                    }
                }
            }
        }
    }
    (
        dw.into_iter().map(|v| v as f32).collect(),
        db.into_iter().map(|v| v as f32).collect(),
    )
}

/// The in-range input cells of pooling window `(oy, ox)`.
fn pool_cells(g: &Pool2dGeometry, oy: usize, ox: usize) -> Vec<(usize, usize)> {
    let mut cells = Vec::new();
    for py in 0..g.ph {
        for px in 0..g.pw {
            let iy = (oy * g.sh + py) as isize - g.pad_top as isize;
            let ix = (ox * g.sw + px) as isize - g.pad_left as isize;
            if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                cells.push((iy as usize, ix as usize));
            }
        }
    }
    cells
}

/// Max pooling: `(y, dx)` for the given `x` and upstream gradient `dy`.
pub fn max_pool2d(g: &Pool2dGeometry, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut y = vec![0.0; g.output_len()];
    let mut dx = vec![0.0; x.len()];
    for n in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                for c in 0..g.c {
                    let idx = |(iy, ix): (usize, usize)| ((n * g.h + iy) * g.w + ix) * g.c + c;
                    let cells = pool_cells(g, oy, ox);
                    let mut best = idx(cells[0]);
                    for &cell in &cells[1..] {
                        if x[idx(cell)] > x[best] {
                            best = idx(cell);
                        }
                    }
                    let o = ((n * g.oh + oy) * g.ow + ox) * g.c + c;
                    y[o] = x[best];
                    dx[best] += dy[o];
                }
            }
        }
    }
    (y, dx)
}

/// Average pooling (padding excluded): `(y, dx)` for `x` and `dy`.
pub fn avg_pool2d(g: &Pool2dGeometry, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut y = vec![0.0; g.output_len()];
    let mut dx = vec![0.0f64; x.len()];
    for n in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                for c in 0..g.c {
                    let idx = |(iy, ix): (usize, usize)| ((n * g.h + iy) * g.w + ix) * g.c + c;
                    let cells = pool_cells(g, oy, ox);
                    let o = ((n * g.oh + oy) * g.ow + ox) * g.c + c;
                    let sum: f64 = cells.iter().map(|&cell| x[idx(cell)] as f64).sum();
                    y[o] = (sum / cells.len() as f64) as f32;
                    for &cell in &cells {
                        dx[idx(cell)] += dy[o] as f64 / cells.len() as f64;
                    }
                }
            }
        }
    }
    (y, dx.into_iter().map(|v| v as f32).collect())
}
