//! Matrix products, through the `gemm` crate.
//!
//! `gemm` was chosen over `matrixmultiply` after `benches/gemm.rs` compared
//! them on the shapes of our MNIST nets (see BENCHMARKS.md): on AVX-512
//! machines `gemm` has 16-wide micro-kernels and was faster on every shape.
//!
//! All matrices are `f32`, described by [`MatRef`] views with explicit row
//! and column strides, so a transposed operand costs nothing.

/// A read-only strided view of a `rows x cols` matrix inside a slice.
///
/// Element `(i, j)` lives at `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows x cols` matrix at the start of `data`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        let view = MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        };
        view.check();
        view
    }

    /// The transpose of this view (no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride;
            assert!(
                last < self.data.len(),
                "matrix view {}x{} (strides {}, {}) overruns a slice of {}",
                self.rows,
                self.cols,
                self.row_stride,
                self.col_stride,
                self.data.len()
            );
        }
    }
}

/// Whether one product may use several threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// Run on the calling thread (used inside already-parallel loops).
    Single,
    /// Split the product over rayon's pool.
    Pool,
}

/// `C = A * B` (or `C += A * B` when `accumulate`), with `C` row-major `m x n`.
///
/// `A` is `m x k`, `B` is `k x n`. The summation order over `k` does not
/// depend on the thread count, so results are reproducible.
pub fn matmul(c: &mut [f32], a: MatRef<'_>, b: MatRef<'_>, accumulate: bool, threads: Threads) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(
        b.rows, k,
        "matmul: inner dimensions {k} and {} differ",
        b.rows
    );
    assert!(
        c.len() >= m * n,
        "matmul: output holds {} < {m}x{n}",
        c.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    let parallelism = match threads {
        Threads::Single => gemm::Parallelism::None,
        Threads::Pool => gemm::Parallelism::Rayon(rayon::current_num_threads()),
    };
    // SAFETY: the views were bounds-checked when built (`MatRef::check`), the
    // output holds m*n values with row stride n, and `c` does not alias `a`
    // or `b` because it is borrowed mutably.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The obvious triple loop, in `f64`, for tests.
pub fn matmul_reference(a: MatRef<'_>, b: MatRef<'_>) -> Vec<f32> {
    let mut c = vec![0.0; a.rows * b.cols];
    for i in 0..a.rows {
        for j in 0..b.cols {
            let mut acc = 0.0f64;
            for p in 0..a.cols {
                acc += a.data[i * a.row_stride + p * a.col_stride] as f64
                    * b.data[p * b.row_stride + j * b.col_stride] as f64;
            }
            c[i * b.cols + j] = acc as f32;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn matches_the_triple_loop(m in 1usize..40, k in 1usize..40, n in 1usize..40,
                                   ta: bool, tb: bool, acc: bool, seed: u64) {
            let gen = |len: usize, salt: u64| -> Vec<f32> {
                (0..len).map(|i| (((i as u64 * 2654435761 + seed + salt) % 1000) as f32 / 500.0) - 1.0).collect()
            };
            let ad = gen(m * k, 1);
            let bd = gen(k * n, 2);
            let a = if ta { MatRef::row_major(&ad, k, m).t() } else { MatRef::row_major(&ad, m, k) };
            let b = if tb { MatRef::row_major(&bd, n, k).t() } else { MatRef::row_major(&bd, k, n) };
            let mut c = vec![0.5; m * n];
            matmul(&mut c, a, b, acc, Threads::Pool);
            let want = matmul_reference(a, b);
            for (got, w) in c.iter().zip(&want) {
                let w = if acc { w + 0.5 } else { *w };
                prop_assert!((got - w).abs() < 1e-4 * (1.0 + w.abs()), "{got} vs {w}");
            }
        }
    }
}
