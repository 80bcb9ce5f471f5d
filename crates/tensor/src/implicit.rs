//! Implicit-GEMM convolution: the products of the `conv` module docs
//! without building the im2col matrix, through register-tiled AVX-512
//! micro-kernels.
//!
//! A chunk of images is first copied into a zero-padded buffer
//!
//! ```text
//! xp [imgs, HP, WP, C]   HP = (OH-1)*SH + KH,  WP = (OW-1)*SW + KW
//! xp[b, iy + PT, ix + PL, c] = x[b, iy, ix, c], zero elsewhere
//! ```
//!
//! so that the receptive field of output pixel `m = (b, oy, ox)` is `KH`
//! runs of `KW*C` contiguous values, run `ky` starting at
//! `base_m + ky*WP*C` with `base_m = ((b*HP + oy*SH)*WP + ox*SW)*C`: the
//! im2col row, in place (`k = ky*KW*C + t` indexes both it and the HWIO
//! weights `W[P, F]`). The micro-kernels keep a tile of sums in registers:
//!
//! ```text
//! forward      MR pixels x 16*NV filters, over k:
//!              acc[r][f] += xp[base_r + ky*WP*C + t] * W[k, f]
//! weight grad  MR consecutive k x 16*NV filters, over the pixels m:
//!              acc[r][f] += xp[base_m + ky*WP*C + t0 + r] * dY[m, f]
//! input grad   (stride 1) the forward on dY padded by KH-1-PT, KW-1-PL,
//!              with W'[ky, kx, f, c] = W[KH-1-ky, KW-1-kx, c, f]
//! ```
//!
//! The input gradient as a forward: `dx[iy, ix, c] = sum dy[oy, ox, f] *
//! W[ky, kx, c, f]` over `oy = iy + PT - ky`; with `ky' = KH-1-ky` that is
//! `oy = iy + ky' - (KH-1-PT)`, a stride-1 correlation of `dy` padded by
//! `KH-1-PT` with the flipped kernel, whose output is `H x W`.
//!
//! The kernels need AVX-512F, or AVX2 and FMA (`implicit_avx2.rs`: blocks
//! of 16 filters as two 8-wide registers; checked at run time, the AVX-512
//! ones preferred), and a filter count that is a multiple of 16 (ResNet-20's
//! first stage has 16); everything else takes the im2col path. Each result
//! is a fixed-order sum that depends only on the geometry, so results are
//! the same whatever the thread count, and the same on both instruction sets.

use crate::Conv2dGeometry;
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(true);
static AVX512: AtomicBool = AtomicBool::new(true);

/// Turns the implicit-GEMM kernels on or off (on by default), so that
/// benchmarks and tests can compare them with the im2col path in one
/// process. Affects every convolution started afterwards.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Lets the kernels use AVX-512 where the CPU has it (the default), or
/// makes them take the AVX2 ones, so that tests and benchmarks run the
/// AVX2 path on AVX-512 machines too. Affects every convolution started
/// afterwards (the Winograd kernels, AVX-512 only, stop with it).
pub fn set_avx512(on: bool) {
    AVX512.store(on, Ordering::Relaxed);
}

/// The instruction set the kernels run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F: 16-wide registers, tiles of up to 64 filters.
    Avx512,
    /// AVX2 + FMA: 8-wide registers, tiles of 16 filters.
    Avx2,
}

/// The instruction set the kernels take on this CPU as switched
/// ([`set_enabled`], [`set_avx512`]); `None`: they do not run.
pub fn isa() -> Option<Isa> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let (avx512, avx2) = cpu_supported();
    if avx512 && AVX512.load(Ordering::Relaxed) {
        Some(Isa::Avx512)
    } else if avx2 {
        Some(Isa::Avx2)
    } else {
        None
    }
}

/// True when the kernels are switched on and this CPU runs them.
pub(crate) fn enabled() -> bool {
    isa().is_some()
}

/// True when they run on AVX-512 (the Winograd kernels, which share the
/// switch, need it).
pub(crate) fn avx512() -> bool {
    isa() == Some(Isa::Avx512)
}

/// Whether this CPU has AVX-512F, and AVX2 with FMA, checked once.
fn cpu_supported() -> (bool, bool) {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<(bool, bool)> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            (
                std::arch::is_x86_feature_detected!("avx512f"),
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma"),
            )
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        (false, false)
    }
}

/// True when the forward and weight-gradient kernels handle `g`: no
/// dilation, padding inside the kernel's reach, filters a multiple of 16.
pub(crate) fn handles(g: &Conv2dGeometry) -> bool {
    enabled()
        && g.dh == 1
        && g.dw == 1
        && g.pad_top < g.kh
        && g.pad_left < g.kw
        && g.f.is_multiple_of(16)
        && g.f > 0
        && g.c > 0
}

/// True when the input gradient can run as a forward: stride 1, input
/// channels (the transposed convolution's filters) a multiple of 16, and
/// not much more work than the im2col product. That product costs the
/// forward's `OH*OW*KH*KW*C*F` multiply-adds; the forward over padded `dy`
/// costs `H*W*KH*KW*C*F`, mostly on zeros when a 'valid' output is much
/// smaller than its input (10x10 of 12x12 is 1.44x the work), so it is
/// used up to 1.3x.
pub(crate) fn handles_backward_input(g: &Conv2dGeometry) -> bool {
    g.sh == 1 && g.sw == 1 && 10 * g.h * g.w <= 13 * g.oh * g.ow && handles(&transposed(g))
}

/// The padded extent `(HP, WP)` of one image in the chunk buffer.
fn padded_dims(g: &Conv2dGeometry) -> (usize, usize) {
    ((g.oh - 1) * g.sh + g.kh, (g.ow - 1) * g.sw + g.kw)
}

/// Calls `f(src, hb, wb)` with the buffer the kernels read for a chunk of
/// `imgs` images of `x`, `hb x wb` pixels per image: `x` itself when the
/// convolution reads no padding (a 'valid' one), else a padded copy (see the
/// module docs) in this thread's scratch. A weight-gradient tile of a run
/// shorter than the tile reads up to [`WG_MR_MAX`] values past it: such
/// runs always take the copy, which has that much slack at its end.
fn with_source<R>(
    g: &Conv2dGeometry,
    x: &[f32],
    imgs: usize,
    weight_tiles: bool,
    f: impl FnOnce(&[f32], usize, usize) -> R,
) -> R {
    let (hp, wp) = padded_dims(g);
    let in_place = g.pad_top == 0
        && g.pad_left == 0
        && hp <= g.h
        && wp <= g.w
        && (!weight_tiles || g.kw * g.c >= WG_MR_MAX);
    if in_place {
        return f(x, g.h, g.w);
    }
    crate::conv::with_scratch(imgs * hp * wp * g.c + WG_MR_MAX, |xp| {
        pad_into(g, x, imgs, xp);
        f(xp, hp, wp)
    })
}

/// Copies `x [imgs, H, W, C]` into `xp` (see the module docs) and zeroes
/// the rest of it (the border and the slack); rows and columns past the
/// padded extent are never read, so they are dropped.
fn pad_into(g: &Conv2dGeometry, x: &[f32], imgs: usize, xp: &mut [f32]) {
    let (hp, wp) = padded_dims(g);
    let c = g.c;
    let cols = g.w.min(wp.saturating_sub(g.pad_left));
    let (left, right) = (g.pad_left * c, (wp - g.pad_left - cols) * c);
    for b in 0..imgs {
        for py in 0..hp {
            let row = &mut xp[(b * hp + py) * wp * c..][..wp * c];
            match py.checked_sub(g.pad_top).filter(|&iy| iy < g.h) {
                Some(iy) => {
                    row[..left].fill(0.0);
                    row[left..left + cols * c]
                        .copy_from_slice(&x[((b * g.h + iy) * g.w) * c..][..cols * c]);
                    row[wp * c - right..].fill(0.0);
                }
                None => row.fill(0.0),
            }
        }
    }
    xp[imgs * hp * wp * c..].fill(0.0);
}

thread_local! {
    /// Each worker's pixel-base list, kept across chunks: allocated per
    /// chunk, it was freed and page-faulted back every time once the
    /// allocator returns freed pages at once (large training steps).
    static BASES: std::cell::Cell<Vec<usize>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The start of each output pixel's receptive field in a source buffer of
/// `imgs` images of `hb x wb` pixels (hand it back with [`return_bases`]).
fn pixel_bases(g: &Conv2dGeometry, imgs: usize, hb: usize, wb: usize) -> Vec<usize> {
    let mut bases = BASES.take();
    bases.clear();
    for b in 0..imgs {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                bases.push(((b * hb + oy * g.sh) * wb + ox * g.sw) * g.c);
            }
        }
    }
    bases
}

/// Keeps `bases` for this thread's next [`pixel_bases`].
fn return_bases(bases: Vec<usize>) {
    BASES.set(bases);
}

/// The geometry of the input gradient seen as a stride-1 forward over
/// `dy [N, OH, OW, F]` producing `dx [N, H, W, C]` (module docs).
fn transposed(g: &Conv2dGeometry) -> Conv2dGeometry {
    Conv2dGeometry {
        n: g.n,
        h: g.oh,
        w: g.ow,
        c: g.f,
        f: g.c,
        kh: g.kh,
        kw: g.kw,
        sh: 1,
        sw: 1,
        dh: 1,
        dw: 1,
        oh: g.h,
        ow: g.w,
        pad_top: (g.kh - 1).saturating_sub(g.pad_top),
        pad_left: (g.kw - 1).saturating_sub(g.pad_left),
    }
}

/// The flipped, transposed weights `W'[ky, kx, f, c] = W[KH-1-ky, KW-1-kx, c, f]`
/// of the input gradient, and its geometry.
pub(crate) fn backward_input_plan(g: &Conv2dGeometry, w: &[f32]) -> (Conv2dGeometry, Vec<f32>) {
    let mut wt = vec![0.0; w.len()];
    for ky in 0..g.kh {
        for kx in 0..g.kw {
            transpose_tap(
                g,
                w,
                (g.kh - 1 - ky, g.kw - 1 - kx),
                &mut wt,
                ky * g.kw + kx,
            );
        }
    }
    (transposed(g), wt)
}

/// Writes tap `(ky, kx)` of `w [KH, KW, C, F]` transposed, as `[F, C]`, at
/// tap index `at` of `out` (a kernel of the input gradient, `[.., .., F, C]`).
pub(crate) fn transpose_tap(
    g: &Conv2dGeometry,
    w: &[f32],
    (ky, kx): (usize, usize),
    out: &mut [f32],
    at: usize,
) {
    let src = &w[(ky * g.kw + kx) * g.c * g.f..][..g.c * g.f];
    let dst = &mut out[at * g.f * g.c..][..g.f * g.c];
    for c in 0..g.c {
        for f in 0..g.f {
            dst[f * g.c + c] = src[c * g.f + f];
        }
    }
}

/// What the forward applies to each sum as it stores it:
/// `y = tail(relu?(sum + bias[f]) * scale[f] + shift[f])`, the sum starting
/// from the bias and the affine map done as a multiply then an add (not
/// fused), as `batch_norm::scale_shift_in_place` does.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Epilogue<'a> {
    /// Per-filter bias.
    pub bias: Option<&'a [f32]>,
    /// Whether to apply `max(v, 0)`.
    pub relu: bool,
    /// Per-filter `(scale, shift)` after the activation.
    pub affine: Option<(&'a [f32], &'a [f32])>,
    /// What follows the affine map (its shortcut shaped as the output).
    pub tail: crate::conv::Tail<'a>,
}

/// Forward of a chunk of `imgs` images: `y [imgs, OH, OW, F]` is
/// overwritten with the convolution and its `epilogue`. Requires [`handles`].
pub(crate) fn forward_chunk(
    g: &Conv2dGeometry,
    x: &[f32],
    imgs: usize,
    w: &[f32],
    epilogue: Epilogue<'_>,
    y: &mut [f32],
    relu_mask: Option<&mut [u16]>,
) {
    assert!(
        handles(g),
        "implicit forward called for an unsupported geometry"
    );
    assert!(relu_mask.as_ref().is_none_or(|m| m.len() == y.len() / 16));
    assert_eq!(x.len(), imgs * g.h * g.w * g.c);
    assert_eq!(y.len(), imgs * g.oh * g.ow * g.f);
    assert_eq!(w.len(), g.weight_len());
    assert!(epilogue.bias.is_none_or(|b| b.len() == g.f));
    assert!(epilogue
        .affine
        .is_none_or(|(s, t)| s.len() == g.f && t.len() == g.f));
    assert!(epilogue.tail.shortcut().is_none_or(|s| s.len() == y.len()));
    let isa = isa();
    with_kernel(g, x, imgs, false, |k, bases| {
        // SAFETY: `handles` checked the instruction set; every index the
        // kernels form is in range: bases point at receptive fields inside the
        // source (which holds at least HP x WP pixels per image), runs stay
        // inside them, `w` is [P, F] and `y` is [pixels, F].
        #[cfg(target_arch = "x86_64")]
        {
            let mask = relu_mask.map_or(std::ptr::null_mut(), |m| m.as_mut_ptr());
            match isa {
                Some(Isa::Avx512) => unsafe { avx512::forward(k, bases, w, epilogue, y, mask) },
                _ => unsafe { avx2::forward(k, bases, w, epilogue, y, mask) },
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (k, bases, epilogue, relu_mask, isa);
    });
}

/// Runs `f` with the kernel view of a chunk's source buffer (see
/// [`with_source`]) and its pixel bases.
fn with_kernel(
    g: &Conv2dGeometry,
    x: &[f32],
    imgs: usize,
    weight_tiles: bool,
    f: impl FnOnce(&Kernel<'_>, &[usize]),
) {
    with_source(g, x, imgs, weight_tiles, |src, hb, wb| {
        let bases = pixel_bases(g, imgs, hb, wb);
        let k = Kernel {
            xp: src,
            kh: g.kh,
            run: g.kw * g.c,
            row_stride: wb * g.c,
            f: g.f,
        };
        f(&k, &bases);
        return_bases(bases);
    });
}

/// Weight gradient of a chunk: `dw [P, F] += x_col^T * dy`. Requires
/// [`handles`].
pub(crate) fn backward_weight_chunk(
    g: &Conv2dGeometry,
    x: &[f32],
    imgs: usize,
    dy: &[f32],
    dw: &mut [f32],
) {
    assert!(
        handles(g),
        "implicit weight gradient called for an unsupported geometry"
    );
    assert_eq!(x.len(), imgs * g.h * g.w * g.c);
    assert_eq!(dy.len(), imgs * g.oh * g.ow * g.f);
    assert_eq!(dw.len(), g.weight_len());
    let isa = isa();
    with_kernel(g, x, imgs, true, |k, bases| {
        // SAFETY: as in `forward_chunk`; a tile reads past a run only when
        // the run is shorter than the tile, and then the source is the padded
        // copy with WG_MR_MAX values of slack (`with_source`).
        #[cfg(target_arch = "x86_64")]
        match isa {
            Some(Isa::Avx512) => unsafe { avx512::backward_weight(k, bases, dy, dw) },
            _ => unsafe { avx2::backward_weight(k, bases, dy, dw) },
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (k, bases, isa);
    });
}

/// What the micro-kernels need to know about the padded chunk.
struct Kernel<'a> {
    /// The padded chunk buffer.
    xp: &'a [f32],
    /// Runs per receptive field (KH).
    kh: usize,
    /// Values per run (KW*C).
    run: usize,
    /// Distance between runs (WP*C).
    row_stride: usize,
    /// Filters (columns of W and of the output).
    f: usize,
}

/// The largest weight-gradient tile height (reads past a run's end).
const WG_MR_MAX: usize = 12;

#[cfg(target_arch = "x86_64")]
#[path = "implicit_avx2.rs"]
mod avx2;

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Epilogue, Kernel, WG_MR_MAX};
    use std::arch::x86_64::*;

    /// Pixels per forward tile with 64 filters (6 x 4 accumulators).
    const FWD_MR4: usize = 6;
    /// Pixels per forward tile with 32 filters (8 x 2 accumulators).
    const FWD_MR2: usize = 8;
    /// Pixels per forward tile with 16 filters (14 accumulators).
    const FWD_MR1: usize = 14;
    /// Pixels per weight-gradient block: its dY rows stay in L1.
    const WG_PIXELS: usize = 64;

    /// `y[pixels, F] = x_col * W` by tiles of pixels and 64, 32 or 16 filters.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn forward(
        k: &Kernel<'_>,
        bases: &[usize],
        w: &[f32],
        e: Epilogue<'_>,
        y: &mut [f32],
        mask: *mut u16,
    ) {
        for (f0, nv) in column_blocks(k.f) {
            match nv {
                4 => unsafe { forward_columns::<FWD_MR4, 4>(k, bases, w, e, y, mask, f0) },
                2 => unsafe { forward_columns::<FWD_MR2, 2>(k, bases, w, e, y, mask, f0) },
                _ => unsafe { forward_columns::<FWD_MR1, 1>(k, bases, w, e, y, mask, f0) },
            }
        }
    }

    /// The filter blocks `(f0, NV)` of `16*NV` columns that cover `F` (a
    /// multiple of 16): 64 columns while at least 64 are left, then 32, then 16.
    fn column_blocks(f: usize) -> impl Iterator<Item = (usize, usize)> {
        let wide = f / 64;
        let rest = f - 64 * wide;
        (0..wide)
            .map(|i| (64 * i, 4))
            .chain((rest >= 32).then_some((64 * wide, 2)))
            .chain((rest % 32 == 16).then_some((f - 16, 1)))
    }

    /// The epilogue's vectors for the filters `f0..f0 + 16*NV`.
    struct Block<const NV: usize> {
        bias: Option<[__m512; NV]>,
        relu: bool,
        affine: Option<([__m512; NV], [__m512; NV])>,
        /// A ReLU after the affine map (the tail), with the shortcut added
        /// first when `shortcut` is not null (`y`'s shape).
        tail_relu: bool,
        shortcut: *const f32,
    }

    #[target_feature(enable = "avx512f")]
    fn load<const NV: usize>(v: &[f32], f0: usize) -> [__m512; NV] {
        let v = &v[f0..f0 + 16 * NV];
        // SAFETY: the slice above holds the 16*NV values read.
        std::array::from_fn(|i| unsafe { _mm512_loadu_ps(v.as_ptr().add(16 * i)) })
    }

    impl<const NV: usize> Block<NV> {
        #[target_feature(enable = "avx512f")]
        fn new(e: Epilogue<'_>, f0: usize) -> Self {
            Block {
                bias: e.bias.map(|b| load(b, f0)),
                relu: e.relu,
                affine: e.affine.map(|(s, t)| (load(s, f0), load(t, f0))),
                tail_relu: !matches!(e.tail, crate::conv::Tail::None),
                shortcut: e.tail.shortcut().map_or(std::ptr::null(), |s| s.as_ptr()),
            }
        }
    }

    /// One block of `16*NV` filters from column `f0`, every pixel.
    #[target_feature(enable = "avx512f")]
    unsafe fn forward_columns<const MR: usize, const NV: usize>(
        k: &Kernel<'_>,
        bases: &[usize],
        w: &[f32],
        e: Epilogue<'_>,
        y: &mut [f32],
        mask: *mut u16,
        f0: usize,
    ) {
        let block = Block::<NV>::new(e, f0);
        let m = bases.len();
        let mut m0 = 0;
        while m0 < m {
            let rows = MR.min(m - m0);
            // A short last tile repeats its last pixel; only `rows` are stored.
            let mut tile = [0usize; MR];
            for (r, b) in tile.iter_mut().enumerate() {
                *b = bases[m0 + r.min(rows - 1)];
            }
            unsafe {
                forward_tile::<MR, NV>(
                    k,
                    &tile,
                    &block,
                    w.as_ptr().add(f0),
                    y.as_mut_ptr().add(m0 * k.f + f0),
                    if mask.is_null() {
                        mask
                    } else {
                        mask.add((m0 * k.f + f0) / 16)
                    },
                    rows,
                )
            };
            if block.tail_relu {
                // The tail on the rows just stored (still in L1), apart from
                // the tile's kernel so that its sums stay in registers.
                unsafe {
                    tail_rows::<NV>(
                        &block,
                        y.as_mut_ptr().add(m0 * k.f + f0),
                        k.f,
                        rows,
                        m0 * k.f + f0,
                    )
                };
            }
            m0 += MR;
        }
    }

    /// `out[r, 0..16*NV] = max(out[r, ..] + shortcut?, 0)` for `r < rows`,
    /// the shortcut read at offset `at` of its output-shaped buffer.
    #[target_feature(enable = "avx512f")]
    unsafe fn tail_rows<const NV: usize>(
        block: &Block<NV>,
        out: *mut f32,
        f: usize,
        rows: usize,
        at: usize,
    ) {
        for r in 0..rows {
            for v in 0..NV {
                let o = r * f + 16 * v;
                let mut a = unsafe { _mm512_loadu_ps(out.add(o)) };
                if !block.shortcut.is_null() {
                    a = _mm512_add_ps(a, unsafe { _mm512_loadu_ps(block.shortcut.add(at + o)) });
                }
                unsafe { _mm512_storeu_ps(out.add(o), _mm512_max_ps(_mm512_setzero_ps(), a)) };
            }
        }
    }

    /// `out[r, 0..16*NV] = epilogue(sum_k xp[tile[r] + ky*row_stride + t] * w[k, 0..16*NV])`
    /// for `r < rows`, the sums held in `MR x NV` registers.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn forward_tile<const MR: usize, const NV: usize>(
        k: &Kernel<'_>,
        tile: &[usize; MR],
        block: &Block<NV>,
        w: *const f32,
        out: *mut f32,
        mask: *mut u16,
        rows: usize,
    ) {
        let mut acc = [block.bias.unwrap_or([_mm512_setzero_ps(); NV]); MR];
        let mut wk = w;
        let xp = k.xp.as_ptr();
        for ky in 0..k.kh {
            let mut p = [xp; MR];
            for (pr, &base) in p.iter_mut().zip(tile) {
                *pr = unsafe { xp.add(base + ky * k.row_stride) };
            }
            for t in 0..k.run {
                let mut b = [_mm512_setzero_ps(); NV];
                for (v, bv) in b.iter_mut().enumerate() {
                    *bv = unsafe { _mm512_loadu_ps(wk.add(16 * v)) };
                }
                for (row, pr) in acc.iter_mut().zip(&p) {
                    let a = _mm512_set1_ps(unsafe { *pr.add(t) });
                    for (av, bv) in row.iter_mut().zip(&b) {
                        *av = _mm512_fmadd_ps(a, *bv, *av);
                    }
                }
                wk = unsafe { wk.add(k.f) };
            }
        }
        for (r, row) in acc.iter().enumerate() {
            if r >= rows {
                break;
            }
            for (v, a) in row.iter().enumerate() {
                let mut a = *a;
                if block.relu {
                    // max(0, a) returns `a` unless 0 > a: NaN and -0.0 pass
                    // through, as in `Activation::Relu`'s `if v < 0 { 0 }`.
                    a = _mm512_max_ps(_mm512_setzero_ps(), a);
                }
                if let Some((scale, shift)) = &block.affine {
                    a = _mm512_add_ps(_mm512_mul_ps(a, scale[v]), shift[v]);
                }
                unsafe { _mm512_storeu_ps(out.add(r * k.f + 16 * v), a) };
                if !mask.is_null() {
                    // Bit j set where !(a[j] <= 0), NaN included
                    // (`SavedOutput::ReluMask`).
                    let bits = _mm512_cmp_ps_mask::<_CMP_NLE_UQ>(a, _mm512_setzero_ps());
                    unsafe { *mask.add((r * k.f) / 16 + v) = bits };
                }
            }
        }
    }

    /// `dw[P, F] += x_col^T * dy`, pixels in blocks of [`WG_PIXELS`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn backward_weight(
        k: &Kernel<'_>,
        bases: &[usize],
        dy: &[f32],
        dw: &mut [f32],
    ) {
        // Runs shorter than a tile waste its rows: a first layer's 5x1 run
        // fits a 6-row tile better than a 12-row one.
        let short_runs = waste(k.run, 6) < waste(k.run, WG_MR_MAX);
        for (bi, block) in bases.chunks(WG_PIXELS).enumerate() {
            let dyb = &dy[bi * WG_PIXELS * k.f..];
            for (f0, nv) in column_blocks(k.f) {
                match (nv, short_runs) {
                    (4, _) => unsafe { backward_weight_columns::<6, 4>(k, block, dyb, dw, f0) },
                    (2, true) => unsafe { backward_weight_columns::<6, 2>(k, block, dyb, dw, f0) },
                    (2, false) => unsafe {
                        backward_weight_columns::<WG_MR_MAX, 2>(k, block, dyb, dw, f0)
                    },
                    (_, true) => unsafe { backward_weight_columns::<6, 1>(k, block, dyb, dw, f0) },
                    (_, false) => unsafe {
                        backward_weight_columns::<WG_MR_MAX, 1>(k, block, dyb, dw, f0)
                    },
                }
            }
        }
    }

    /// Rows computed but not stored when runs of `run` values are cut into
    /// tiles of `mr`.
    fn waste(run: usize, mr: usize) -> usize {
        run.div_ceil(mr) * mr - run
    }

    /// One block of `16*NV` filters from column `f0`, every row of `dw`.
    #[target_feature(enable = "avx512f")]
    unsafe fn backward_weight_columns<const MR: usize, const NV: usize>(
        k: &Kernel<'_>,
        block: &[usize],
        dy: &[f32],
        dw: &mut [f32],
        f0: usize,
    ) {
        for ky in 0..k.kh {
            let mut t0 = 0;
            while t0 < k.run {
                let rows = MR.min(k.run - t0);
                // A short last tile moves back to end where the run ends and
                // stores only its own rows, so that it reads inside the run;
                // a run shorter than the tile reads past it (see `with_source`).
                let (start, skip) = if rows < MR && k.run >= MR {
                    (k.run - MR, MR - rows)
                } else {
                    (t0, 0)
                };
                unsafe {
                    backward_weight_tile::<MR, NV>(
                        k,
                        block,
                        ky * k.row_stride + start,
                        dy.as_ptr().add(f0),
                        dw.as_mut_ptr().add((ky * k.run + start) * k.f + f0),
                        skip..skip + rows,
                    )
                };
                t0 += MR;
            }
        }
    }

    /// `dw[r, 0..16*NV] += sum_m xp[base_m + off + r] * dy[m, 0..16*NV]`
    /// for `r` in `store`, over the pixels of `block`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn backward_weight_tile<const MR: usize, const NV: usize>(
        k: &Kernel<'_>,
        block: &[usize],
        off: usize,
        dy: *const f32,
        dw: *mut f32,
        store: std::ops::Range<usize>,
    ) {
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        let xp = unsafe { k.xp.as_ptr().add(off) };
        for (i, &base) in block.iter().enumerate() {
            let mut d = [_mm512_setzero_ps(); NV];
            for (v, dv) in d.iter_mut().enumerate() {
                *dv = unsafe { _mm512_loadu_ps(dy.add(i * k.f + 16 * v)) };
            }
            let px = unsafe { xp.add(base) };
            for (r, row) in acc.iter_mut().enumerate() {
                let a = _mm512_set1_ps(unsafe { *px.add(r) });
                for (av, dv) in row.iter_mut().zip(&d) {
                    *av = _mm512_fmadd_ps(a, *dv, *av);
                }
            }
        }
        // A fixed-bound loop (unrolled, so `acc` stays in registers) that
        // skips the rows outside `store`.
        for (r, row) in acc.iter().enumerate() {
            if !store.contains(&r) {
                continue;
            }
            for (v, a) in row.iter().enumerate() {
                let dst = unsafe { dw.add(r * k.f + 16 * v) };
                unsafe { _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_loadu_ps(dst), *a)) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;
    use crate::conv::conv2d_forward;
    use crate::Padding;

    #[test]
    fn relu_epilogue_passes_nan_through_like_the_activation() {
        // NaN must survive ReLU (PyTorch's semantics, and what lets training
        // notice divergence), negative sums become 0.
        let g =
            Conv2dGeometry::new([1, 4, 4, 32], 32, (3, 3), (1, 1), (1, 1), Padding::Same).unwrap();
        assert_eq!(
            handles(&g),
            isa().is_some(),
            "this geometry is the kernels'"
        );
        let mut x = vec![0.5; g.input_len()];
        x[0] = f32::NAN;
        let w = vec![-0.01; g.weight_len()];
        let mut y = vec![1.0; g.output_len()];
        conv2d_forward(&g, &x, &w, None, Activation::Relu, &mut y);
        // Output pixel (0, 0) sees input (0, 0); pixel (3, 3) does not.
        assert!(y[0].is_nan());
        let last = &y[15 * 32..];
        assert!(last.iter().all(|&v| v == 0.0), "{last:?}");
    }
}
