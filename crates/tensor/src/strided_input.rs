//! The input gradient of a strided convolution as stride-1 forwards, one
//! per output phase, on the implicit-GEMM kernels (see `implicit`).
//!
//! ```text
//! dx[iy, ix, c] = sum_{ky, kx, f} dy[oy, ox, f] * W[ky, kx, c, f]   over iy = oy*SH + ky - PT
//! ```
//!
//! For a row `iy`, only taps `ky = ry + SH*j` with `ry = (iy + PT) mod SH`
//! reach it, from `oy = qy - j` where `qy = (iy + PT) div SH`. So the rows of
//! one phase `ry` (and columns of one phase `rx`) form a stride-1 correlation
//! of `dy` with the sub-kernel `W[ry + SH*j, rx + SW*i]`, flipped:
//!
//! ```text
//! dx[qy*SH + ry - PT, qx*SW + rx - PL, c]
//!     = sum_{j', i', f} dyp[u + j', v + i', f] * Wp[j', i', f, c]
//! Wp[j', i', f, c] = W[ry + SH*(JY-1-j'), rx + SW*(JX-1-i'), c, f]
//! dyp[p, q, f]     = dy[p + qy0 - (JY-1), q + qx0 - (JX-1), f]  (0 outside dy)
//! ```
//!
//! with `JY = ceil((KH - ry) / SH)` taps, `u = qy - qy0` over the phase's
//! rows. Each phase's output is scattered into its rows and columns of
//! `dx`; a phase with no taps (a kernel smaller than the stride) is zero.
//! The work is the im2col product's, without the `dX_col` matrix and the
//! scatter-add of col2im.

use crate::implicit::{self, Epilogue};
use crate::Conv2dGeometry;

/// One output phase `(ry, rx)` of the input gradient.
#[derive(Debug)]
struct Phase {
    ry: usize,
    rx: usize,
    /// First `qy`/`qx` of the phase and how many there are.
    qy0: usize,
    qx0: usize,
    /// The stride-1 forward over this phase's padded `dy`.
    g: Conv2dGeometry,
    /// `Wp` (module docs), `[JY, JX, F, C]`.
    w: Vec<f32>,
    /// `Wp` packed as bf16 pairs, for a plan in bf16.
    packed: Option<Vec<u32>>,
}

/// The phases of a strided convolution's input gradient, built once per
/// call from the weights.
#[derive(Debug)]
pub(crate) struct Plan {
    phases: Vec<Phase>,
    /// The bf16 kernels' path when the phases run in bf16.
    bf16: Option<crate::bf16::Path>,
}

/// The phase range along one axis: taps `J`, first `q` and count of `q`.
fn axis(r: usize, k: usize, s: usize, pad: usize, n: usize) -> (usize, usize, usize) {
    let taps = k.saturating_sub(r).div_ceil(s);
    // iy = q*s + r - pad must lie in [0, n).
    let q0 = pad.saturating_sub(r).div_ceil(s);
    let q_end = (n + pad).saturating_sub(r).div_ceil(s); // first q with iy >= n
    (taps, q0, q_end.saturating_sub(q0))
}

/// True when this geometry's input gradient can run by phases: a stride
/// above 1, no dilation, and input channels the kernels take.
pub(crate) fn handles(g: &Conv2dGeometry) -> bool {
    implicit::enabled()
        && (g.sh > 1 || g.sw > 1)
        && g.dh == 1
        && g.dw == 1
        && g.n > 0
        && (0..g.sh).all(|ry| {
            (0..g.sw).all(|rx| {
                let (jy, _, ny) = axis(ry, g.kh, g.sh, g.pad_top, g.h);
                let (jx, _, nx) = axis(rx, g.kw, g.sw, g.pad_left, g.w);
                jy == 0
                    || jx == 0
                    || ny == 0
                    || nx == 0
                    || implicit::handles(&phase_geometry(g, jy, jx, ny, nx))
            })
        })
}

fn phase_geometry(
    g: &Conv2dGeometry,
    jy: usize,
    jx: usize,
    ny: usize,
    nx: usize,
) -> Conv2dGeometry {
    Conv2dGeometry {
        n: g.n,
        h: ny + jy - 1,
        w: nx + jx - 1,
        c: g.f,
        f: g.c,
        kh: jy,
        kw: jx,
        sh: 1,
        sw: 1,
        dh: 1,
        dw: 1,
        oh: ny,
        ow: nx,
        pad_top: 0,
        pad_left: 0,
    }
}

impl Plan {
    /// The phases of `g` with their flipped sub-kernels of `w [KH, KW, C, F]`.
    pub(crate) fn new(g: &Conv2dGeometry, w: &[f32]) -> Plan {
        let mut phases = Vec::new();
        for ry in 0..g.sh {
            for rx in 0..g.sw {
                let (jy, qy0, ny) = axis(ry, g.kh, g.sh, g.pad_top, g.h);
                let (jx, qx0, nx) = axis(rx, g.kw, g.sw, g.pad_left, g.w);
                if jy == 0 || jx == 0 || ny == 0 || nx == 0 {
                    continue; // rows/columns no tap reaches: left at zero
                }
                let mut wp = vec![0.0; jy * jx * g.f * g.c];
                for j in 0..jy {
                    for i in 0..jx {
                        let tap = (ry + g.sh * (jy - 1 - j), rx + g.sw * (jx - 1 - i));
                        implicit::transpose_tap(g, w, tap, &mut wp, j * jx + i);
                    }
                }
                phases.push(Phase {
                    ry,
                    rx,
                    qy0,
                    qx0,
                    g: phase_geometry(g, jy, jx, ny, nx),
                    w: wp,
                    packed: None,
                });
            }
        }
        Plan { phases, bf16: None }
    }

    /// [`Plan::new`] whose phases run as bf16 forwards (`bf16_conv`, on
    /// `path`): bf16 operands, fp32 sums. Requires an even filter count
    /// (the phases' channels).
    pub(crate) fn new_bf16(g: &Conv2dGeometry, w: &[f32], path: crate::bf16::Path) -> Plan {
        let mut plan = Plan::new(g, w);
        for ph in &mut plan.phases {
            ph.packed = Some(crate::bf16_conv::pack_weights(&ph.g, &ph.w));
        }
        plan.bf16 = Some(path);
        plan
    }

    /// `dx [imgs, H, W, C]` (overwritten) from `dy [imgs, OH, OW, F]`.
    pub(crate) fn run(&self, g: &Conv2dGeometry, dy: &[f32], imgs: usize, dx: &mut [f32]) {
        if self.phases.len() < g.sh * g.sw {
            dx.fill(0.0); // some rows or columns no phase writes
        }
        let f = g.f;
        // One padded-dy and one output buffer for all phases, kept by this
        // thread across calls: allocated per call, they were page-faulted
        // and zeroed by the kernel every step (93 % of ResNet-20 training's
        // page faults, `perf record -e page-faults`).
        let (mut dyp, mut out) = PHASE_BUFFERS.take();
        for ph in &self.phases {
            let pg = &ph.g;
            let (jy, jx) = (pg.kh, pg.kw);
            // dyp[p, q] = dy[p + qy0 - (JY-1), q + qx0 - (JX-1)], zero outside.
            dyp.clear();
            dyp.resize(imgs * pg.h * pg.w * f, 0.0);
            for b in 0..imgs {
                for p in 0..pg.h {
                    let Some(oy) = (p + ph.qy0).checked_sub(jy - 1).filter(|&oy| oy < g.oh) else {
                        continue;
                    };
                    for q in 0..pg.w {
                        let Some(ox) = (q + ph.qx0).checked_sub(jx - 1).filter(|&ox| ox < g.ow)
                        else {
                            continue;
                        };
                        let src = &dy[((b * g.oh + oy) * g.ow + ox) * f..][..f];
                        dyp[((b * pg.h + p) * pg.w + q) * f..][..f].copy_from_slice(src);
                    }
                }
            }
            out.resize(imgs * pg.oh * pg.ow * g.c, 0.0); // overwritten below
            match (&ph.packed, self.bf16) {
                (Some(packed), Some(path)) => {
                    let chunk = Conv2dGeometry { n: imgs, ..*pg };
                    crate::bf16_conv::conv2d_forward_bf16(
                        path, &chunk, &dyp, packed, None, &mut out,
                    )
                }
                _ => implicit::forward_chunk(
                    pg,
                    &dyp,
                    imgs,
                    &ph.w,
                    Epilogue::default(),
                    &mut out,
                    None,
                ),
            }
            for b in 0..imgs {
                for u in 0..pg.oh {
                    let iy = (ph.qy0 + u) * g.sh + ph.ry - g.pad_top;
                    for v in 0..pg.ow {
                        let ix = (ph.qx0 + v) * g.sw + ph.rx - g.pad_left;
                        let src = &out[((b * pg.oh + u) * pg.ow + v) * g.c..][..g.c];
                        dx[((b * g.h + iy) * g.w + ix) * g.c..][..g.c].copy_from_slice(src);
                    }
                }
            }
        }
        PHASE_BUFFERS.set((dyp, out));
    }
}

thread_local! {
    /// Each thread's padded-dy and phase-output buffers (see `Plan::run`).
    static PHASE_BUFFERS: std::cell::Cell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::Cell::new((Vec::new(), Vec::new())) };
}
