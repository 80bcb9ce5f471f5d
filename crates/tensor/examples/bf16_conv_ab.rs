//! bf16 convolution forward (`bf16_conv`, AVX512-BF16) against the fp32
//! forward (`conv::conv2d_forward`: implicit GEMM, with and without
//! Winograd), on the nets' shapes, alternating, best of `reps`:
//!
//!     cargo run --release -p convnet-tensor --example bf16_conv_ab [THREADS] [ROUNDS]

use convnet_tensor::activation::Activation;
use convnet_tensor::bf16::{self, Path};
use convnet_tensor::{bf16_conv, conv, peak, winograd, Conv2dGeometry, Padding};

mod common;

use common::{best, data};

const SHAPES: [(&str, [usize; 4], usize, usize); 6] = [
    ("ResNet-20 32x32x16->16 b128", [128, 32, 32, 16], 16, 3),
    ("ResNet-20 16x16x32->32 b128", [128, 16, 16, 32], 32, 3),
    ("ResNet-20 8x8x64->64 b128", [128, 8, 8, 64], 64, 3),
    ("VGG-64 32x32x64->64 b64", [64, 32, 32, 64], 64, 3),
    ("VGG-64 8x8x256->256 b64", [64, 8, 8, 256], 256, 3),
    ("M1 14x14x32->64 5x5 b256", [256, 14, 14, 32], 64, 5),
];

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().map_or(2, |s| s.parse().expect("THREADS"));
    let rounds: usize = args.next().map_or(2, |s| s.parse().expect("ROUNDS"));
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    println!(
        "{threads} thread(s); FMA peak {:.1} GFLOP/s, bf16 dot-product peak {:.1}; bf16 path {}",
        peak::fma_peak_gflops().unwrap_or(f64::NAN),
        peak::bf16_peak_gflops().unwrap_or(f64::NAN),
        bf16::path().name()
    );
    println!("ms per forward (GFLOP/s): fp32 direct | fp32 with Winograd | bf16 | bf16 vs the faster fp32");
    for round in 0..rounds {
        println!("round {}", round + 1);
        for (label, input, f, k) in SHAPES {
            let g = Conv2dGeometry::new(input, f, (k, k), (1, 1), (1, 1), Padding::Same).unwrap();
            let (x, w, b) = (data(g.input_len()), data(g.weight_len()), data(f));
            let mut y = vec![0.0; g.output_len()];
            let gflop = 2.0 * (g.output_len() * k * k * input[3]) as f64 / 1e9;
            winograd::set_enabled(false);
            let direct = best(5, || {
                conv::conv2d_forward(&g, &x, &w, Some(&b), Activation::Linear, &mut y)
            });
            winograd::set_enabled(true);
            let wino = best(5, || {
                conv::conv2d_forward(&g, &x, &w, Some(&b), Activation::Linear, &mut y)
            });
            let packed = bf16_conv::pack_weights(&g, &w);
            let low = best(5, || {
                bf16_conv::conv2d_forward_bf16(Path::Avx512Bf16, &g, &x, &packed, Some(&b), &mut y)
            });
            let cols = [direct, wino, low]
                .map(|t| format!("{:7.2} ({:5.1})", t * 1e3, gflop / t))
                .join(" | ");
            println!("{label:<30} {cols} | {:.2}x", direct.min(wino) / low);
        }
    }
}
