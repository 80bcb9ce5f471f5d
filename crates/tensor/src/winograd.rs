//! Winograd F(2x2, 3x3): a 3x3, stride-1 convolution for inference in 16
//! products per 2x2 output tile instead of 36 (Lavin & Gray, "Fast
//! Algorithms for Convolutional Neural Networks", 2015; oneDNN and NNPACK
//! ship the same transform).
//!
//! The output tile at `(2ty, 2tx)` reads the 4x4 input patch `d` at
//! `(2ty - PT, 2tx - PL)` (zeros outside the image); per channel `c` and
//! filter `f` with the 3x3 kernel `k`:
//!
//! ```text
//! Y = A^T [ (G k G^T) . (B^T d B) ] A      (. pointwise, 4x4)
//!
//! B^T = | 1  0 -1  0 |   G = | 1    0    0   |   A^T = | 1  1  1  0 |
//!       | 0  1  1  0 |       | 1/2  1/2  1/2 |         | 0  1 -1 -1 |
//!       | 0 -1  1  0 |       | 1/2 -1/2  1/2 |
//!       | 0  1  0 -1 |       | 0    0    1   |
//! ```
//!
//! Summed over the channels, entry `xi` of the 4x4 grid is a matrix product
//! `M_xi [T, F] = V_xi [T, C] * U_xi [C, F]` over the `T` tiles, with
//! `V = B^T d B` and `U = G k G^T`: a 1x1 convolution, run on the
//! implicit-GEMM kernels. 16 C*F products per 4 outputs instead of 36:
//! 2.25x fewer multiply-adds, for the transforms' additions and one more
//! pass over `V` and `M`.
//!
//! Work is split in units of whole images (small images) or bands of tile
//! rows (large ones) whose `V [16, T, C]` and `M [16, T, F]` fit in L2, in
//! the worker's scratch. Every output depends only on its tile, so the
//! result is the same for any thread count and split; it is not the direct
//! sum's bits (tested against the reference to a relative 1e-4), which is
//! why only inference takes it: training keeps the direct kernels.
//! Needs AVX-512F, channels (at least 32) and filters multiples of 16, and a ReLU or no
//! activation (the epilogue of `implicit::Epilogue`: bias, ReLU, affine).

use crate::activation::Activation;
use crate::implicit::{self, Epilogue};
use crate::Conv2dGeometry;
use rayon::prelude::*;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns Winograd inference on or off (on by default), so that benchmarks
/// and tests can compare it with the direct kernels. Affects every
/// inference convolution started afterwards.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Values of `V` (and of `M`) one unit of work may hold.
const UNIT_FLOATS: usize = 32 * 1024;

/// The fewest input channels Winograd takes: with 16, each product's
/// inner dimension is too short for the kernels to beat the direct
/// convolution (ResNet-20's 16-filter stage, 2 cores of an EPYC Zen 4: 7.1 ms
/// Winograd vs 6.2 ms direct per convolution at batch 256; 32 channels:
/// 4.3 vs 5.5, 64: 3.5 vs 5.4).
const MIN_CHANNELS: usize = 32;

/// True when [`forward`] takes `g` with activation `act`.
pub(crate) fn handles(g: &Conv2dGeometry, act: Activation) -> bool {
    ENABLED.load(Ordering::Relaxed)
        && implicit::avx512()
        && (g.kh, g.kw, g.sh, g.sw, g.dh, g.dw) == (3, 3, 1, 1, 1, 1)
        && g.pad_top <= 2
        && g.pad_left <= 2
        && g.c >= MIN_CHANNELS
        && g.c.is_multiple_of(16)
        && g.f > 0
        && g.f.is_multiple_of(16)
        && matches!(act, Activation::Linear | Activation::Relu)
}

/// `U [16, C, F]` from the HWIO kernel `w [3, 3, C, F]`: `U_xi = (G k G^T)[xi]`.
fn transform_weights(g: &Conv2dGeometry, w: &[f32]) -> Vec<f32> {
    let cf = g.c * g.f;
    let mut u = vec![0.0; 16 * cf];
    for i in 0..cf {
        let k = |ky: usize, kx: usize| w[(ky * 3 + kx) * cf + i];
        // G k: 4 rows of 3.
        let gk: [[f32; 3]; 4] = [
            [k(0, 0), k(0, 1), k(0, 2)],
            std::array::from_fn(|kx| 0.5 * (k(0, kx) + k(1, kx) + k(2, kx))),
            std::array::from_fn(|kx| 0.5 * (k(0, kx) - k(1, kx) + k(2, kx))),
            [k(2, 0), k(2, 1), k(2, 2)],
        ];
        for (r, [a, b, c]) in gk.into_iter().enumerate() {
            let row = [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
            for (s, v) in row.into_iter().enumerate() {
                u[(r * 4 + s) * cf + i] = v;
            }
        }
    }
    u
}

/// A unit of work: images `first..first + imgs`, tile rows `ty0..ty1` of
/// each (all of them when `imgs > 1`).
#[derive(Clone, Copy)]
struct Unit {
    first: usize,
    imgs: usize,
    ty0: usize,
    ty1: usize,
}

/// The 3x3 convolution of `x [N, H, W, C]` with `w`, then
/// `relu?(. + bias) * scale + shift` (the epilogue of
/// `conv2d_forward_affine`), into `y [N, OH, OW, F]`. Requires [`handles`].
pub(crate) fn forward(
    g: &Conv2dGeometry,
    x: &[f32],
    w: &[f32],
    epilogue: Epilogue<'_>,
    y: &mut [f32],
) {
    assert!(
        handles(g, Activation::Linear),
        "Winograd forward called for an unsupported geometry"
    );
    assert_eq!(x.len(), g.input_len(), "winograd: input length");
    assert_eq!(w.len(), g.weight_len(), "winograd: weight length");
    assert_eq!(y.len(), g.output_len(), "winograd: output length");
    if g.n == 0 {
        return;
    }
    let u = transform_weights(g, w);
    let tiles_y = g.oh.div_ceil(2);
    let row_floats = g.ow.div_ceil(2) * 16 * g.c.max(g.f);
    let per_img_out = g.oh * g.ow * g.f;
    // Each unit's part of the output (and of the tail's shortcut) starts at `at`.
    let run = |unit: Unit, at: usize, y: &mut [f32]| {
        let e = Epilogue {
            tail: epilogue.tail.part(at, y.len()),
            ..epilogue
        };
        run_unit(g, x, &u, e, unit, y)
    };
    if tiles_y * row_floats <= UNIT_FLOATS {
        // Whole images per unit, at least four units per thread.
        let fit = UNIT_FLOATS / (tiles_y * row_floats);
        let spread = g.n.div_ceil(4 * rayon::current_num_threads());
        let imgs = fit.min(spread).max(1);
        y.par_chunks_mut(imgs * per_img_out)
            .enumerate()
            .for_each(|(ci, yc)| {
                let unit = Unit {
                    first: ci * imgs,
                    imgs: yc.len() / per_img_out,
                    ty0: 0,
                    ty1: tiles_y,
                };
                run(unit, ci * imgs * per_img_out, yc)
            });
    } else {
        // Bands of tile rows of one image.
        let rows = (UNIT_FLOATS / row_floats).max(1);
        y.par_chunks_mut(per_img_out)
            .enumerate()
            .for_each(|(b, yi)| {
                let band = 2 * rows * g.ow * g.f;
                yi.par_chunks_mut(band).enumerate().for_each(|(k, yb)| {
                    let ty0 = k * rows;
                    let unit = Unit {
                        first: b,
                        imgs: 1,
                        ty0,
                        ty1: (ty0 + rows).min(tiles_y),
                    };
                    run(unit, b * per_img_out + k * band, yb)
                })
            });
    }
}

thread_local! {
    /// Each worker's `V` and `M`, kept across units.
    static BUFFERS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// One unit: transform its input, 16 products, transform back into `y`
/// (the unit's output rows).
fn run_unit(
    g: &Conv2dGeometry,
    x: &[f32],
    u: &[f32],
    epilogue: Epilogue<'_>,
    unit: Unit,
    y: &mut [f32],
) {
    let tiles = unit.imgs * (unit.ty1 - unit.ty0) * g.ow.div_ceil(2);
    let (c, f) = (g.c, g.f);
    // The products: a 1x1 convolution over `tiles` pixels.
    let pointwise = Conv2dGeometry {
        n: 1,
        h: tiles,
        w: 1,
        c,
        f,
        kh: 1,
        kw: 1,
        sh: 1,
        sw: 1,
        dh: 1,
        dw: 1,
        oh: tiles,
        ow: 1,
        pad_top: 0,
        pad_left: 0,
    };
    BUFFERS.with(|cell| {
        let (v, m) = &mut *cell.borrow_mut();
        v.resize(16 * tiles * c, 0.0);
        m.resize(16 * tiles * f, 0.0);
        // SAFETY: `handles` checked AVX-512F; the transforms index inside
        // `x`, `v`, `m` and `y` (asserted lengths, in-bounds patch pixels).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx512::input_transform(g, x, unit, v)
        };
        for xi in 0..16 {
            implicit::forward_chunk(
                &pointwise,
                &v[xi * tiles * c..][..tiles * c],
                1,
                &u[xi * c * f..][..c * f],
                Epilogue::default(),
                &mut m[xi * tiles * f..][..tiles * f],
                None,
            );
        }
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx512::output_transform(g, unit, m, epilogue, y)
        };
    });
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Epilogue, Unit};
    use crate::conv::Tail;
    use crate::Conv2dGeometry;
    use std::arch::x86_64::*;

    /// `v [16, T, C]`: `B^T d B` of every tile's patch, 16 channels at a time.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn input_transform(g: &Conv2dGeometry, x: &[f32], unit: Unit, v: &mut [f32]) {
        let c = g.c;
        let tiles = v.len() / (16 * c);
        let plane = tiles * c;
        let img_len = g.h * g.w * c;
        assert!(x.len() >= (unit.first + unit.imgs) * img_len);
        let mut t = 0;
        for b in unit.first..unit.first + unit.imgs {
            let img = x[b * img_len..][..img_len].as_ptr();
            for ty in unit.ty0..unit.ty1 {
                for tx in 0..g.ow.div_ceil(2) {
                    let (iy0, ix0) = (
                        2 * ty as isize - g.pad_top as isize,
                        2 * tx as isize - g.pad_left as isize,
                    );
                    let inside =
                        iy0 >= 0 && ix0 >= 0 && iy0 as usize + 4 <= g.h && ix0 as usize + 4 <= g.w;
                    // The patch's pixel offsets, usize::MAX outside the image.
                    let at: [[usize; 4]; 4] = std::array::from_fn(|i| {
                        std::array::from_fn(|j| {
                            let (iy, ix) = (iy0 + i as isize, ix0 + j as isize);
                            let ok =
                                (0..g.h as isize).contains(&iy) && (0..g.w as isize).contains(&ix);
                            if ok {
                                (iy as usize * g.w + ix as usize) * c
                            } else {
                                usize::MAX
                            }
                        })
                    });
                    for c0 in (0..c).step_by(16) {
                        let d: [[__m512; 4]; 4] = if inside {
                            // SAFETY: every pixel of the patch is in the image.
                            std::array::from_fn(|i| {
                                std::array::from_fn(|j| unsafe {
                                    _mm512_loadu_ps(img.add(at[i][j] + c0))
                                })
                            })
                        } else {
                            std::array::from_fn(|i| {
                                std::array::from_fn(|j| match at[i][j] {
                                    usize::MAX => _mm512_setzero_ps(),
                                    // SAFETY: an in-bounds pixel's 16 channels.
                                    o => unsafe { _mm512_loadu_ps(img.add(o + c0)) },
                                })
                            })
                        };
                        // B^T d (row r, column j), then each row times B.
                        let btd: [[__m512; 4]; 4] = std::array::from_fn(|r| {
                            std::array::from_fn(|j| match r {
                                0 => _mm512_sub_ps(d[0][j], d[2][j]),
                                1 => _mm512_add_ps(d[1][j], d[2][j]),
                                2 => _mm512_sub_ps(d[2][j], d[1][j]),
                                _ => _mm512_sub_ps(d[1][j], d[3][j]),
                            })
                        });
                        for (r, e) in btd.iter().enumerate() {
                            let out = [
                                _mm512_sub_ps(e[0], e[2]),
                                _mm512_add_ps(e[1], e[2]),
                                _mm512_sub_ps(e[2], e[1]),
                                _mm512_sub_ps(e[1], e[3]),
                            ];
                            for (s, val) in out.into_iter().enumerate() {
                                let at = (r * 4 + s) * plane + t * c + c0;
                                // SAFETY: `at + 16 <= 16 * plane = v.len()`.
                                unsafe { _mm512_storeu_ps(v.as_mut_ptr().add(at), val) };
                            }
                        }
                    }
                    t += 1;
                }
            }
        }
        assert_eq!(t, tiles);
    }

    /// `y` (the unit's output rows) from `m [16, T, F]`: `A^T M A` of every
    /// tile, then the epilogue; outputs past the image's edge are dropped.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn output_transform(
        g: &Conv2dGeometry,
        unit: Unit,
        m: &[f32],
        e: Epilogue<'_>,
        y: &mut [f32],
    ) {
        let f = g.f;
        let tiles = m.len() / (16 * f);
        let plane = tiles * f;
        let load = |v: &[f32], f0: usize| -> __m512 {
            // SAFETY: the callers pass f0 + 16 <= f = v.len().
            unsafe { _mm512_loadu_ps(v.as_ptr().add(f0)) }
        };
        assert_eq!(m.len(), 16 * plane);
        let mp = m.as_ptr();
        let mut t = 0;
        for bi in 0..unit.imgs {
            for ty in unit.ty0..unit.ty1 {
                for tx in 0..g.ow.div_ceil(2) {
                    for f0 in (0..f).step_by(16) {
                        // SAFETY: entry xi of tile t, filters f0..f0 + 16, inside `m`.
                        let mm: [[__m512; 4]; 4] = std::array::from_fn(|r| {
                            std::array::from_fn(|s| unsafe {
                                _mm512_loadu_ps(mp.add((r * 4 + s) * plane + t * f + f0))
                            })
                        });
                        // A^T M: two rows of 4; then each row times A.
                        let s0: [__m512; 4] = std::array::from_fn(|s| {
                            _mm512_add_ps(_mm512_add_ps(mm[0][s], mm[1][s]), mm[2][s])
                        });
                        let s1: [__m512; 4] = std::array::from_fn(|s| {
                            _mm512_sub_ps(_mm512_sub_ps(mm[1][s], mm[2][s]), mm[3][s])
                        });
                        let out = [s0, s1].map(|r| {
                            [
                                _mm512_add_ps(_mm512_add_ps(r[0], r[1]), r[2]),
                                _mm512_sub_ps(_mm512_sub_ps(r[1], r[2]), r[3]),
                            ]
                        });
                        for (i, row) in out.iter().enumerate() {
                            let oy = 2 * ty + i;
                            if oy >= g.oh {
                                break;
                            }
                            for (j, &val) in row.iter().enumerate() {
                                let ox = 2 * tx + j;
                                if ox >= g.ow {
                                    break;
                                }
                                let mut a = val;
                                if let Some(b) = e.bias {
                                    a = _mm512_add_ps(a, load(b, f0));
                                }
                                if e.relu {
                                    // As the implicit kernels: NaN and -0.0 pass.
                                    a = _mm512_max_ps(_mm512_setzero_ps(), a);
                                }
                                if let Some((scale, shift)) = e.affine {
                                    a = _mm512_add_ps(
                                        _mm512_mul_ps(a, load(scale, f0)),
                                        load(shift, f0),
                                    );
                                }
                                let row_in_y = bi * g.oh + oy - 2 * unit.ty0;
                                let at = (row_in_y * g.ow + ox) * f + f0;
                                assert!(at + 16 <= y.len());
                                if !matches!(e.tail, Tail::None) {
                                    if let Some(s) = e.tail.shortcut() {
                                        a = _mm512_add_ps(a, load(s, at));
                                    }
                                    a = _mm512_max_ps(_mm512_setzero_ps(), a);
                                }
                                // SAFETY: checked just above.
                                unsafe { _mm512_storeu_ps(y.as_mut_ptr().add(at), a) };
                            }
                        }
                    }
                    t += 1;
                }
            }
        }
        assert_eq!(t, tiles);
    }
}
