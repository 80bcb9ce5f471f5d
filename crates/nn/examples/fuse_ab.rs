//! A/B of the training step's fusions on a residual block's tail at
//! ResNet-20's three stage sizes: `x -> BN -> Add(., x) -> ReLU` fused (one
//! pass: normalize, add the shortcut, ReLU, mask) vs unfused (three layers),
//! forward + backward, alternating, best of many repetitions.
//! `cargo run --release -p convnet-nn --example fuse_ab [THREADS]`.

use convnet_nn::{Activation, BatchNormConfig, LayerSpec, Mode, ModelSpec, Tensor};
use std::time::Instant;

fn block(h: usize, c: usize) -> ModelSpec {
    let mut g = ModelSpec::new(&[h, h, c]);
    let x = g.input();
    let b = g.apply(LayerSpec::BatchNormalization(BatchNormConfig::new()), &[&x]);
    let s = g.apply(LayerSpec::Add, &[&b, &x]);
    g.apply(
        LayerSpec::Activation {
            activation: Activation::Relu,
        },
        &[&s],
    );
    g
}

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("THREADS"))
        .unwrap_or(2);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let batch = 128;
    println!("{threads} threads, batch {batch}: ms per forward and backward, best of 40 each (4 alternating runs of 10)");
    println!(
        "{:<12} {:>9} {:>9} {:>7}   {:>9} {:>9} {:>7}",
        "stage", "fwd unf.", "fused", "ratio", "bwd unf.", "fused", "ratio"
    );
    for (h, c) in [(32, 16), (16, 32), (8, 64)] {
        let spec = block(h, c);
        let mut models = [spec.build(1).unwrap(), spec.build(1).unwrap()];
        models[0].set_fusion(false);
        let n = batch * h * h * c;
        let x = Tensor::from_vec(
            &[batch, h, h, c],
            (0..n)
                .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                .collect(),
        )
        .unwrap();
        // Best forward and best backward of each.
        let mut best = [[f64::INFINITY; 2]; 2];
        let dy = Tensor::full(&[batch, h, h, c], 0.01);
        // Runs of 10 steps of one model, alternating: buffers recycle between
        // the steps of one model as they do in training (not between models).
        for _ in 0..4 {
            for (k, m) in models.iter_mut().enumerate() {
                for _ in 0..10 {
                    let t = Instant::now();
                    let _ = m.forward(&x, Mode::Train, false);
                    best[k][0] = best[k][0].min(t.elapsed().as_secs_f64());
                    let g = dy.clone();
                    let t = Instant::now();
                    m.backward(g);
                    best[k][1] = best[k][1].min(t.elapsed().as_secs_f64());
                    m.zero_grad();
                }
            }
        }
        assert_eq!(models[1].fused_adds(), 1, "the fused model fuses");
        let [u, f] = best;
        println!(
            "{:<12} {:>9.3} {:>9.3} {:>7.2}   {:>9.3} {:>9.3} {:>7.2}",
            format!("{h}x{h}x{c}"),
            1e3 * u[0],
            1e3 * f[0],
            u[0] / f[0],
            1e3 * u[1],
            1e3 * f[1],
            u[1] / f[1]
        );
    }
}
