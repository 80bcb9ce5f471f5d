//! Conv2D forward and backward on the layer shapes of the MNIST nets.
//!
//! Throughput is in elements/s where one element is one FLOP (2 per
//! multiply-add), so `Gelem/s` reads as GFLOP/s. Compare with the
//! `gemm-peak` group of `benches/gemm.rs` on the same machine.

use convnet_tensor::activation::Activation;
use convnet_tensor::conv::{conv2d_backward_input, conv2d_backward_weight, conv2d_forward};
use convnet_tensor::{Conv2dGeometry, Padding};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn data(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

fn bench(c: &mut Criterion) {
    // (label, [n, h, w, c], filters, kernel, stride, padding)
    let layers = [
        (
            "M1-conv1 28x28x1->32C5",
            [128, 28, 28, 1],
            32,
            5,
            1,
            Padding::Same,
        ),
        (
            "M1-conv2 14x14x32->64C5",
            [128, 14, 14, 32],
            64,
            5,
            1,
            Padding::Same,
        ),
        (
            "M2-conv2 26x26x32->32C3",
            [128, 26, 26, 32],
            32,
            3,
            1,
            Padding::Valid,
        ),
        (
            "M2-conv3 24x24x32->32C5S2",
            [128, 24, 24, 32],
            32,
            5,
            2,
            Padding::Same,
        ),
    ];
    let mut group = c.benchmark_group("conv2d");
    group.sample_size(20);
    for (label, input, f, k, s, p) in layers {
        let g = Conv2dGeometry::new(input, f, (k, k), (s, s), (1, 1), p).unwrap();
        let x = data(g.input_len());
        let w = data(g.weight_len());
        let b = data(g.f);
        let dy = data(g.output_len());
        let mut y = vec![0.0; g.output_len()];
        let mut dx = vec![0.0; g.input_len()];
        let mut dw = vec![0.0; g.weight_len()];
        let mut db = vec![0.0; g.f];
        let flops = 2 * g.forward_macs() as u64;
        group.throughput(Throughput::Elements(flops));
        group.bench_function(BenchmarkId::new("forward", label), |bch| {
            bch.iter(|| conv2d_forward(&g, &x, &w, Some(&b), Activation::Linear, &mut y))
        });
        group.bench_function(BenchmarkId::new("backward-input", label), |bch| {
            bch.iter(|| conv2d_backward_input(&g, &dy, &w, &mut dx))
        });
        group.bench_function(BenchmarkId::new("backward-weight", label), |bch| {
            bch.iter(|| conv2d_backward_weight(&g, &x, &dy, &mut dw, Some(&mut db)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
