//! bf16 convolution gradients (`bf16_grad`, AVX512-BF16) against the fp32
//! ones (`conv::conv2d_backward_weight`, `conv::conv2d_backward_input`) on
//! the nets' training shapes, alternating, best of 5:
//!
//!     cargo run --release -p convnet-tensor --example bf16_grad_ab [THREADS] [ROUNDS]

use convnet_tensor::bf16::{self, Path};
use convnet_tensor::{bf16_grad, conv, peak, Conv2dGeometry, Padding};

mod common;

use common::{best, data};

const SHAPES: [(&str, [usize; 4], usize, usize); 7] = [
    ("ResNet-20 32x32x16->16 b128", [128, 32, 32, 16], 16, 3),
    ("ResNet-20 16x16x32->32 b128", [128, 16, 16, 32], 32, 3),
    ("ResNet-20 8x8x64->64 b128", [128, 8, 8, 64], 64, 3),
    ("VGG-64 32x32x64->64 b64", [64, 32, 32, 64], 64, 3),
    ("VGG-64 8x8x256->256 b64", [64, 8, 8, 256], 256, 3),
    ("M1 28x28x1->32 5x5 b128", [128, 28, 28, 1], 32, 5),
    ("M1 14x14x32->64 5x5 b128", [128, 14, 14, 32], 64, 5),
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
    println!(
        "ms (GFLOP/s): weight gradient fp32 | bf16 | ratio || input gradient fp32 | bf16 | ratio"
    );
    for round in 0..rounds {
        println!("round {}", round + 1);
        for (label, input, f, k) in SHAPES {
            let g = Conv2dGeometry::new(input, f, (k, k), (1, 1), (1, 1), Padding::Same).unwrap();
            let (x, w, dy) = (
                data(g.input_len()),
                data(g.weight_len()),
                data(g.output_len()),
            );
            let gflop = 2.0 * (g.output_len() * k * k * input[3]) as f64 / 1e9;
            let (mut dw, mut db) = (vec![0.0; g.weight_len()], vec![0.0; f]);
            let w32 = best(5, || {
                conv::conv2d_backward_weight(&g, &x, &dy, &mut dw, Some(&mut db))
            });
            let w16 = best(5, || {
                bf16_grad::conv2d_backward_weight_bf16(
                    Path::Avx512Bf16,
                    &g,
                    &x,
                    &dy,
                    &mut dw,
                    Some(&mut db),
                )
            });
            let cell = |t: f64| format!("{:7.2} ({:5.1})", t * 1e3, gflop / t);
            let mut line = format!(
                "{label:<30} {} | {} | {:.2}x",
                cell(w32),
                cell(w16),
                w32 / w16
            );
            if bf16_grad::handles_input(&g) && input[3] > 1 {
                let mut dx = vec![0.0; g.input_len()];
                let i32_ = best(5, || conv::conv2d_backward_input(&g, &dy, &w, &mut dx));
                let i16 = best(5, || {
                    bf16_grad::conv2d_backward_input_bf16(Path::Avx512Bf16, &g, &dy, &w, &mut dx)
                });
                line += &format!(" || {} | {} | {:.2}x", cell(i32_), cell(i16), i32_ / i16);
            }
            println!("{line}");
        }
    }
}
