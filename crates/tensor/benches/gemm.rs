//! `gemm` vs `matrixmultiply` on the matrix shapes of our MNIST nets, and
//! the machine's large-matrix rate (the yardstick for the conv kernels).
//!
//! Throughput is reported in elements/s where one element is one FLOP
//! (2 per multiply-add), so `Gelem/s` reads as GFLOP/s.

use convnet_tensor::gemm::{matmul, MatRef, Threads};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn data(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

fn bench(c: &mut Criterion) {
    // (m, k, n, label): im2col chunk of conv2 of M1 (5 images of 14x14, 5x5x32 patches, 64
    // filters), its weight-gradient product, conv1 of M1, and the dense layer 3136 -> 128.
    let shapes = [
        (980, 800, 64, "conv2-fwd"),
        (800, 980, 64, "conv2-dw"),
        (1024, 25, 32, "conv1-fwd"),
        (128, 3136, 128, "dense"),
    ];
    let mut group = c.benchmark_group("gemm-single-thread");
    for &(m, k, n, label) in &shapes {
        let a = data(m * k);
        let b = data(k * n);
        let mut out = vec![0.0; m * n];
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        group.bench_function(BenchmarkId::new("gemm", label), |bch| {
            bch.iter(|| {
                matmul(
                    &mut out,
                    MatRef::row_major(&a, m, k),
                    MatRef::row_major(&b, k, n),
                    false,
                    Threads::Single,
                )
            })
        });
        group.bench_function(BenchmarkId::new("matrixmultiply", label), |bch| {
            bch.iter(|| unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    k as isize,
                    1,
                    b.as_ptr(),
                    n as isize,
                    1,
                    0.0,
                    out.as_mut_ptr(),
                    n as isize,
                    1,
                )
            })
        });
    }
    group.finish();

    // The machine's rate: a large square product on all threads.
    let mut group = c.benchmark_group("gemm-peak");
    group.sample_size(10);
    let s = 2048;
    let a = data(s * s);
    let b = data(s * s);
    let mut out = vec![0.0; s * s];
    group.throughput(Throughput::Elements((2 * s * s * s) as u64));
    group.bench_function("gemm-2048-all-threads", |bch| {
        bch.iter(|| {
            matmul(
                &mut out,
                MatRef::row_major(&a, s, s),
                MatRef::row_major(&b, s, s),
                false,
                Threads::Pool,
            )
        })
    });
    group.bench_function("matrixmultiply-2048-all-threads", |bch| {
        bch.iter(|| unsafe {
            matrixmultiply::sgemm(
                s,
                s,
                s,
                1.0,
                a.as_ptr(),
                s as isize,
                1,
                b.as_ptr(),
                s as isize,
                1,
                0.0,
                out.as_mut_ptr(),
                s as isize,
                1,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
