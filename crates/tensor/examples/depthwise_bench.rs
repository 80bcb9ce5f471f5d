//! Depthwise convolutions at MobileNet-V2 / EfficientNet-Lite0 shapes:
//! forward, input gradient and weight gradient, best of several passes, in
//! ms, GFLOP/s and GB/s (the bytes each pass must read and write at least:
//! input, output, weights). `tools/depthwise_peer.py` times PyTorch's
//! depthwise `Conv2d` (channels-last) on the same shapes.
//! `cargo run --release -p convnet-tensor --example depthwise_bench [THREADS] [builds]`;
//! with `builds`, each pass is timed on the portable build and on the
//! CPU's vector build (AVX-512 or AVX2), alternating, and the ratio printed.

use convnet_tensor::depthwise::{
    self, depthwise_backward_input, depthwise_backward_weight, depthwise_forward, DepthwiseGeometry,
};
use convnet_tensor::{peak, Padding};

mod common;

use common::{best, data};

/// The shapes: (label, [N, H, W, C], kernel, stride).
pub const SHAPES: [(&str, [usize; 4], usize, usize); 5] = [
    ("112x112x32 DW3 b32", [32, 112, 112, 32], 3, 1),
    ("112x112x96 DW3S2 b32", [32, 112, 112, 96], 3, 2),
    ("56x56x144 DW3 b32", [32, 56, 56, 144], 3, 1),
    ("28x28x240 DW5 b32", [32, 28, 28, 240], 5, 1),
    ("14x14x480 DW3 b32", [32, 14, 14, 480], 3, 1),
];

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("THREADS"))
        .unwrap_or(2);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let compare = std::env::args().nth(2).as_deref() == Some("builds");
    println!(
        "measured FMA peak {:.1} GFLOP/s",
        peak::fma_peak_gflops().unwrap_or(f64::NAN)
    );
    if compare {
        println!("{threads} thread(s); portable -> vector build, ms per pass (ratio, vector GFLOP/s): forward | input gradient | weight gradient");
    } else {
        println!("{threads} thread(s); ms per pass (GFLOP/s, GB/s): forward | input gradient | weight gradient");
    }
    for (label, input, k, s) in SHAPES {
        let g = DepthwiseGeometry::new(input, 1, (k, k), (s, s), (1, 1), Padding::Same).unwrap();
        let (x, w, b) = (data(g.input_len()), data(g.weight_len()), data(g.conv.f));
        let dy = data(g.output_len());
        let mut y = vec![0.0; g.output_len()];
        let mut dx = vec![0.0; g.input_len()];
        let (mut dw, mut db) = (vec![0.0; g.weight_len()], vec![0.0; g.conv.f]);
        let gflop = 2.0 * g.forward_macs() as f64 / 1e9;
        let gb = 4.0 * (g.input_len() + g.output_len() + g.weight_len()) as f64 / 1e9;
        let reps = 10;
        if compare {
            // Portable, then vector, twice, alternating; the best of each.
            let mut t = [[f64::MAX; 3]; 2];
            for _ in 0..2 {
                for (i, on) in [false, true].into_iter().enumerate() {
                    depthwise::set_vector(on);
                    let now = [
                        best(reps, || depthwise_forward(&g, &x, &w, Some(&b), &mut y)),
                        best(reps, || depthwise_backward_input(&g, &dy, &w, &mut dx)),
                        best(reps, || {
                            depthwise_backward_weight(&g, &x, &dy, &mut dw, Some(&mut db))
                        }),
                    ];
                    for k in 0..3 {
                        t[i][k] = t[i][k].min(now[k]);
                    }
                }
            }
            let cols: Vec<String> = (0..3)
                .map(|k| {
                    let (p, v) = (t[0][k], t[1][k]);
                    format!(
                        "{:6.2} -> {:6.2} ms ({:4.2}x, {:5.1} GFLOP/s)",
                        p * 1e3,
                        v * 1e3,
                        p / v,
                        gflop / v
                    )
                })
                .collect();
            println!("{label:<22} {}", cols.join(" | "));
            continue;
        }
        let times = [
            best(reps, || depthwise_forward(&g, &x, &w, Some(&b), &mut y)),
            best(reps, || depthwise_backward_input(&g, &dy, &w, &mut dx)),
            best(reps, || {
                depthwise_backward_weight(&g, &x, &dy, &mut dw, Some(&mut db))
            }),
        ];
        let cols: Vec<String> = times
            .iter()
            .map(|t| format!("{:7.2} ({:5.1}, {:5.1})", t * 1e3, gflop / t, gb / t))
            .collect();
        println!("{label:<22} {}", cols.join(" | "));
    }
}
