//! Quick A/B of the convolution paths on the reference nets' layer shapes:
//! implicit-GEMM kernels vs im2col + GEMM, best of several repetitions,
//! GFLOP/s per pass. `cargo run --release -p convnet-tensor --example conv_ab [THREADS]`.
//! (The criterion benchmark `benches/conv.rs` gives the careful numbers.)

use convnet_tensor::activation::Activation;
use convnet_tensor::conv::{conv2d_backward_input, conv2d_backward_weight, conv2d_forward};
use convnet_tensor::{implicit, Conv2dGeometry, Padding};

mod common;

use common::{best, data};

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("THREADS"))
        .unwrap_or(1);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let layers = [
        (
            "M3 conv1 128x128x3->32C3 b32",
            [32, 128, 128, 3],
            32,
            3,
            1,
            Padding::Valid,
        ),
        (
            "M1 conv1 28x28x1->32C5 b128",
            [128, 28, 28, 1],
            32,
            5,
            1,
            Padding::Same,
        ),
        (
            "M1 conv2 14x14x32->64C5 b128",
            [128, 14, 14, 32],
            64,
            5,
            1,
            Padding::Same,
        ),
        (
            "M2 26x26x32->32C3 b128",
            [128, 26, 26, 32],
            32,
            3,
            1,
            Padding::Valid,
        ),
        (
            "M2 24x24x32->32C5S2 b128",
            [128, 24, 24, 32],
            32,
            5,
            2,
            Padding::Same,
        ),
        (
            "M2 12x12x32->64C3 b128",
            [128, 12, 12, 32],
            64,
            3,
            1,
            Padding::Valid,
        ),
        (
            "M3 126x126x32->32C3 b32",
            [32, 126, 126, 32],
            32,
            3,
            1,
            Padding::Valid,
        ),
        (
            "M3 61x61x32->64C3 b32",
            [32, 61, 61, 32],
            64,
            3,
            1,
            Padding::Valid,
        ),
        (
            "ResNet 32x32x16->16C3 b128",
            [128, 32, 32, 16],
            16,
            3,
            1,
            Padding::Same,
        ),
        (
            "ResNet 16x16x32->32C3 b128",
            [128, 16, 16, 32],
            32,
            3,
            1,
            Padding::Same,
        ),
        (
            "ResNet 32x32x16->32C3S2 b128",
            [128, 32, 32, 16],
            32,
            3,
            2,
            Padding::Same,
        ),
        (
            "ResNet 8x8x64->64C3 b128",
            [128, 8, 8, 64],
            64,
            3,
            1,
            Padding::Same,
        ),
    ];
    println!("{threads} thread(s); GFLOP/s, implicit / im2col");
    for (label, input, f, k, s, p) in layers {
        let g = Conv2dGeometry::new(input, f, (k, k), (s, s), (1, 1), p).unwrap();
        let x = data(g.input_len());
        let w = data(g.weight_len());
        let dy = data(g.output_len());
        let mut y = vec![0.0; g.output_len()];
        let mut dx = vec![0.0; g.input_len()];
        let mut dw = vec![0.0; g.weight_len()];
        let gflop = 2.0 * g.forward_macs() as f64 / 1e9;
        let mut row = Vec::new();
        for on in [true, false] {
            implicit::set_enabled(on);
            let reps = 10;
            let tf = best(reps, || {
                conv2d_forward(&g, &x, &w, None, Activation::Linear, &mut y)
            });
            let ti = best(reps, || conv2d_backward_input(&g, &dy, &w, &mut dx));
            let tw = best(reps, || conv2d_backward_weight(&g, &x, &dy, &mut dw, None));
            row.push((gflop / tf, gflop / ti, gflop / tw));
        }
        println!(
            "{label:<30} fwd {:6.1} / {:6.1}   bwd-in {:6.1} / {:6.1}   bwd-w {:6.1} / {:6.1}",
            row[0].0, row[1].0, row[0].1, row[1].1, row[0].2, row[1].2
        );
    }
}
