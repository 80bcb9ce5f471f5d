//! Sequential, summary, compile/fit/evaluate/predict, callbacks, save/load.

mod common;

use common::{cases, quiet, tensor, train_two_then_resume_to_four, weights};
use convnet_nn::*;
use rand::{Rng as _, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;

fn relu_conv(f: usize, k: usize) -> Conv2dConfig {
    Conv2dConfig::new(f, k)
        .with_padding(Padding::Same)
        .with_activation(Activation::Relu)
}

fn m1(dense: usize) -> Sequential {
    Sequential::new(&[28, 28, 1])
        .conv2d(relu_conv(32, 5))
        .max_pool(PoolConfig::new(2))
        .conv2d(relu_conv(64, 5))
        .max_pool(PoolConfig::new(2))
        .flatten()
        .dense(DenseConfig::new(dense).with_activation(Activation::Relu))
        .dense(DenseConfig::new(10).with_activation(Activation::Softmax))
}

/// The final net of the MNIST architecture experiment (issue: 327,242 params).
fn m2() -> Sequential {
    let c = |f, k| Conv2dConfig::new(f, k).with_activation(Activation::Relu);
    Sequential::new(&[28, 28, 1])
        .conv2d(c(32, 3))
        .batch_norm()
        .conv2d(c(32, 3))
        .batch_norm()
        .conv2d(c(32, 5).with_stride(2).with_padding(Padding::Same))
        .batch_norm()
        .dropout(0.4)
        .conv2d(c(64, 3))
        .batch_norm()
        .conv2d(c(64, 3))
        .batch_norm()
        .conv2d(c(64, 5).with_stride(2).with_padding(Padding::Same))
        .batch_norm()
        .dropout(0.4)
        .conv2d(c(128, 4))
        .batch_norm()
        .flatten()
        .dropout(0.4)
        .dense(DenseConfig::new(10).with_activation(Activation::Softmax))
}

#[test]
fn summary_counts_equal_keras() {
    let s = m1(128).summary().unwrap();
    assert_eq!(s.total(), 454_922);
    assert_eq!(s.non_trainable, 0);
    assert_eq!(m1(1024).summary().unwrap().total(), 3_274_634);
    let s = m2().summary().unwrap();
    assert_eq!((s.total(), s.non_trainable), (327_242, 832));
    // The built model agrees with the pure count.
    assert_eq!(m2().build(0).unwrap().param_counts(), (326_410, 832));
    let shapes: Vec<Vec<usize>> = s.rows.iter().map(|r| r.output_shape.clone()).collect();
    assert_eq!(shapes[0], vec![26, 26, 32]);
    assert_eq!(shapes[4], vec![12, 12, 32]);
    assert_eq!(shapes[14], vec![1, 1, 128]);
}

#[test]
fn summary_prints_names_shapes_counts_and_formulas() {
    let text = m1(128).summary().unwrap().with_formulas(true).to_string();
    for needle in [
        "conv2d (Conv2D)",
        "conv2d_1 (Conv2D)",
        "max_pooling2d_1 (MaxPooling2D)",
        "(None, 28, 28, 32)",
        "(None, 3136)",
        "401,536",
        "Total params: 454,922 (1.74 MB)",
        "Non-trainable params: 0",
        // conv 5x5 same on 28: total padding 4; pool 2 on 28.
        "H,W: floor((28 + 4 - 5) / 1) + 1 = 28",
        "H,W: floor((28 + 0 - 2) / 2) + 1 = 14",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let plain = m1(128).summary().unwrap().to_string();
    assert!(!plain.contains("floor"));
}

#[test]
fn shape_errors_name_the_layer() {
    let bad = Sequential::new(&[8, 8, 1])
        .conv2d(Conv2dConfig::new(4, 5))
        .conv2d(Conv2dConfig::new(4, 5));
    let e = bad.summary().unwrap_err().to_string();
    assert!(
        e.starts_with("layer 1 (Conv2D)") && e.contains("[4, 4, 4]"),
        "{e}"
    );
    let e = Sequential::new(&[10])
        .conv2d(Conv2dConfig::new(2, 3))
        .build(0);
    assert!(e.is_err());
}

fn blobs(n: usize, seed: u64) -> TensorData {
    // Two classes of 6x6 images: bright top half or bright bottom half, plus noise.
    let mut rng = Rng::seed_from_u64(seed);
    let mut x = Tensor::zeros(&[n, 6, 6, 1]);
    let mut y = Tensor::zeros(&[n, 2]);
    for i in 0..n {
        let class = i % 2;
        for r in 0..6 {
            for c in 0..6 {
                let bright = (r < 3) == (class == 0);
                x.data_mut()[i * 36 + r * 6 + c] =
                    if bright { 0.8 } else { 0.2 } + rng.gen_range(-0.2..0.2);
            }
        }
        y.data_mut()[i * 2 + class] = 1.0;
    }
    TensorData::new(x, y).unwrap()
}

fn small_net() -> Sequential {
    Sequential::new(&[6, 6, 1])
        .conv2d(relu_conv(4, 3))
        .batch_norm()
        .max_pool(PoolConfig::new(2))
        .flatten()
        .dropout(0.2)
        .dense(DenseConfig::new(2).with_activation(Activation::Softmax))
}

#[test]
fn fit_learns_and_is_reproducible() {
    let data = blobs(128, 1);
    let train = |seed| {
        let mut m = small_net().build(seed).unwrap();
        m.compile(
            OptimizerConfig::adam().with_learning_rate(0.01),
            Loss::CategoricalCrossentropy,
        );
        let h = m.fit(&data, None, &quiet(5), &mut []).unwrap();
        (m, h)
    };
    let (mut a, ha) = train(3);
    let (b, hb) = train(3);
    let (c, _) = train(4);
    assert_eq!(weights(&a), weights(&b), "same seed, same weights");
    assert_eq!(ha.epochs[4].loss, hb.epochs[4].loss);
    assert_ne!(weights(&a), weights(&c));
    assert!(ha.epochs[4].loss < ha.epochs[0].loss);
    let e = a.evaluate(&blobs(64, 9), 32).unwrap();
    assert!(e.accuracy > 0.9, "{e:?}");
    // predict returns probabilities (the softmax head is applied).
    let p = a.predict(&blobs(4, 2).x().clone(), 3).unwrap();
    assert_eq!(p.shape(), &[4, 2]);
    for row in p.data().chunks(2) {
        assert!((row[0] + row[1] - 1.0).abs() < 1e-5);
    }
}

#[test]
fn training_is_bit_identical_across_thread_counts() {
    let data = blobs(64, 1);
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut m = small_net().build(5).unwrap();
            m.compile(OptimizerConfig::adam(), Loss::CategoricalCrossentropy);
            m.fit(&data, None, &quiet(2), &mut []).unwrap();
            weights(&m)
        })
    };
    assert_eq!(run(1), run(2));
}

#[test]
fn validation_split_takes_the_last_samples() {
    let data = blobs(100, 1);
    let mut m = small_net().build(0).unwrap();
    m.compile(OptimizerConfig::adam(), Loss::CategoricalCrossentropy);
    let h = m
        .fit(&data, None, &quiet(1).with_validation_split(0.2), &mut [])
        .unwrap();
    let val = Subset::new(&data, (80..100).collect());
    let e = m.evaluate(&val, 7).unwrap();
    assert!((h.epochs[0].val_loss.unwrap() - e.loss).abs() < 1e-5);
    assert!(m
        .fit(&data, None, &quiet(1).with_validation_split(1.5), &mut [])
        .is_err());
}

#[test]
fn early_stopping_and_plateau_react_to_a_stalled_metric() {
    let data = blobs(64, 1);
    let mut m = small_net().build(0).unwrap();
    // A learning rate of 1e-9 cannot improve anything measurably.
    m.compile(
        OptimizerConfig::sgd().with_learning_rate(1e-9),
        Loss::CategoricalCrossentropy,
    );
    let mut es = EarlyStopping::new("loss", 2).with_min_delta(1.0);
    // min_delta 1.0 on both: dropout's noise in the loss must not count
    // as an improvement.
    let mut rop = ReduceLrOnPlateau::new("loss")
        .with_patience(1)
        .with_min_delta(1.0)
        .with_factor(0.5);
    let h = m
        .fit(
            &data,
            None,
            &quiet(10).with_shuffle(false),
            &mut [&mut es, &mut rop],
        )
        .unwrap();
    assert_eq!(
        h.epochs.len(),
        3,
        "stopped after patience 2 past the first epoch"
    );
    assert_eq!(es.stopped_epoch, Some(3));
    assert!(m.lr_factor() < 1.0);
}

#[test]
fn early_stopping_restores_the_best_weights() {
    let data = blobs(64, 1);
    let mut m = small_net().build(0).unwrap();
    // A large learning rate makes the loss jump around after the first epochs.
    m.compile(
        OptimizerConfig::sgd().with_learning_rate(3.0),
        Loss::CategoricalCrossentropy,
    );
    let mut es = EarlyStopping::new("loss", 2).with_restore_best_weights(true);
    let mut snapshots = Snapshots(Vec::new());
    let h = m
        .fit(&data, None, &quiet(8), &mut [&mut snapshots, &mut es])
        .unwrap();
    let losses: Vec<f32> = h.epochs.iter().map(|e| e.loss).collect();
    let best = (0..losses.len())
        .min_by(|&a, &b| losses[a].partial_cmp(&losses[b]).unwrap())
        .unwrap();
    assert!(
        best + 1 < losses.len(),
        "the last epoch was the best: {losses:?}"
    );
    assert_eq!(weights(&m), snapshots.0[best], "losses {losses:?}");
}

struct Snapshots(Vec<Vec<Vec<f32>>>);
impl Callback for Snapshots {
    fn on_epoch_end(&mut self, m: &mut Model, _: &EpochLogs, _: &History) -> Result<Control> {
        self.0.push(weights(m));
        Ok(Control::Continue)
    }
}

#[test]
fn non_finite_loss_stops_with_epoch_and_batch() {
    let mut data = blobs(64, 1);
    let mut x = data.x().clone();
    x.data_mut()[36 * 40] = f32::NAN; // sample 40 lands in batch 3 without shuffling
    data = TensorData::new(x, data.y().clone()).unwrap();
    let mut m = small_net().build(0).unwrap();
    m.compile(OptimizerConfig::adam(), Loss::CategoricalCrossentropy);
    let e = m
        .fit(&data, None, &quiet(2).with_shuffle(false), &mut [])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("epoch 1, batch 3") && e.contains("lower learning rate"),
        "{e}"
    );
}

#[test]
fn save_load_round_trip_and_checkpoint_callbacks() {
    let dir = std::env::temp_dir().join(format!("convnet-model-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = blobs(64, 1);
    let mut m = small_net().build(0).unwrap();
    m.compile(OptimizerConfig::adam(), Loss::CategoricalCrossentropy);
    let mut ckpt = ModelCheckpoint::new(dir.join("best"), "loss").with_save_best_only(true);
    let mut csv = CsvLogger::new(dir.join("log.csv"));
    std::fs::create_dir_all(&dir).unwrap();
    let h = m
        .fit(&data, None, &quiet(3), &mut [&mut ckpt, &mut csv])
        .unwrap();
    assert!(ckpt.saves >= 1);
    let log = std::fs::read_to_string(dir.join("log.csv")).unwrap();
    assert_eq!(log.lines().count(), 4);
    assert_eq!(h.to_csv().lines().next(), log.lines().next());

    m.save(&dir.join("final")).unwrap();
    let mut loaded = Model::load(&dir.join("final")).unwrap();
    let x = blobs(8, 3).x().clone();
    assert_eq!(
        m.predict(&x, 4).unwrap().data(),
        loaded.predict(&x, 4).unwrap().data()
    );
    assert_eq!(loaded.spec(), m.spec());

    // A truncated weights file is reported, naming the file.
    let w = dir.join("final").join(save::WEIGHTS_FILE);
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    let e = Model::load(&dir.join("final")).err().unwrap().to_string();
    assert!(
        e.contains("weights.safetensors") && e.contains("truncated"),
        "{e}"
    );
    // A weights file for another architecture is reported, naming the tensor.
    let other = Sequential::new(&[6, 6, 1])
        .flatten()
        .dense(DenseConfig::new(2));
    let mut tensors = BTreeMap::new();
    tensors.insert("layer1.kernel".to_string(), Tensor::zeros(&[36, 3]));
    let mut om = other.build(0).unwrap();
    let e = om
        .set_weights(Path::new("x.safetensors"), &tensors)
        .unwrap_err()
        .to_string();
    assert!(e.contains("'layer1.kernel' has shape [36, 3]"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sgd_momentum_and_adam_steps_match_pytorch() {
    // Fixtures: tools/golden/gen_golden.py (training_step_cases). Tolerance
    // policy as in tests/golden.rs: |ours - golden| <= 1e-4 (1 + |golden|).
    for c in cases("training_steps.json") {
        let name = c["optimizer"].as_str().unwrap();
        let mut m = Sequential::new(&[5, 5, 1])
            .conv2d(Conv2dConfig::new(2, 3).with_activation(Activation::Relu))
            .flatten()
            .dense(DenseConfig::new(3).with_activation(Activation::Softmax))
            .build(0)
            .unwrap();
        let mut w = BTreeMap::new();
        w.insert("layer0.kernel".to_string(), tensor(&c["conv_kernel"]));
        w.insert("layer0.bias".to_string(), tensor(&c["conv_bias"]));
        w.insert("layer2.kernel".to_string(), tensor(&c["dense_kernel"]));
        w.insert("layer2.bias".to_string(), tensor(&c["dense_bias"]));
        m.set_weights(Path::new("fixture"), &w).unwrap();
        let (opt, lr) = match name {
            "sgd_momentum" => (
                OptimizerConfig::sgd()
                    .with_learning_rate(0.1)
                    .with_momentum(0.9),
                0.1,
            ),
            _ => (OptimizerConfig::adam().with_learning_rate(0.01), 0.01),
        };
        m.compile(opt, Loss::SparseCategoricalCrossentropy);
        let x = tensor(&c["x"]);
        let y = tensor(&c["labels"]);
        for step in 0..2 {
            let (l, _, _) = m.train_step(&x, &y, lr).unwrap();
            let want = c["losses"][step].as_f64().unwrap() as f32;
            assert!(
                (l - want).abs() <= 1e-4 * (1.0 + want.abs()),
                "{name} step {step}: loss {l} vs {want}"
            );
        }
        let params = m.named_params();
        for (key, fixture) in [
            ("layer0.kernel", "conv_kernel_after"),
            ("layer0.bias", "conv_bias_after"),
            ("layer2.kernel", "dense_kernel_after"),
            ("layer2.bias", "dense_bias_after"),
        ] {
            let ours = &params.iter().find(|(n, _)| n == key).unwrap().1.value;
            let want = tensor(&c[fixture]);
            for (i, (a, b)) in ours.data().iter().zip(want.data()).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{name} {key}[{i}]: {a} vs PyTorch {b}"
                );
            }
        }
    }
}

#[test]
fn resuming_from_a_checkpoint_gives_the_uninterrupted_weights() {
    let dir = std::env::temp_dir().join(format!("convnet-resume-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = blobs(96, 1);
    let make = || {
        let mut m = small_net().build(11).unwrap();
        m.compile(OptimizerConfig::adam(), Loss::CategoricalCrossentropy);
        m
    };
    let mut straight = make();
    straight.fit(&data, None, &quiet(4), &mut []).unwrap();

    let (resumed, state) = train_two_then_resume_to_four(make, &data, &dir);
    assert_eq!(state.epochs_done, 2);
    assert_eq!(state.history.epochs.len(), 2);
    assert_eq!(weights(&resumed), weights(&straight));
    let (_, state) = Model::load_checkpoint(&dir).unwrap();
    assert_eq!(state.history.epochs.len(), 4);
    // Only the newest checkpoint folder is kept.
    let folders: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    assert_eq!(folders.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_model_that_cannot_fit_fails_before_allocating() {
    let m1 = m1(128);
    let need = m1.training_bytes(128).unwrap();
    // 455k params x 16 bytes, plus per sample ~ 3 x 46k activations and 19.6k x 25 im2col values.
    assert!(need > 7_000_000 && need < 200_000_000, "{need}");
    assert!(m1.training_bytes(256).unwrap() > need);
    let e = m1.check_memory(128, 1 << 20).unwrap_err().to_string();
    assert!(
        e.contains("batch size 128 needs about") && e.contains("GiB"),
        "{e}"
    );
    // A huge image net is refused by fit without allocating its activations.
    let huge = Sequential::new(&[4096, 4096, 3])
        .conv2d(Conv2dConfig::new(64, 3))
        .flatten()
        .dense(DenseConfig::new(2));
    assert!(huge.training_bytes(1024).unwrap() > 1u128 << 40);
}

#[test]
fn a_custom_learning_rate_function_sets_each_epoch() {
    let data = blobs(32, 1);
    let mut m = small_net().build(0).unwrap();
    m.compile(OptimizerConfig::adam(), Loss::CategoricalCrossentropy);
    let h = m
        .fit(
            &data,
            None,
            &quiet(3).with_lr_fn(|e, lr| lr * 0.5f32.powi(e as i32)),
            &mut [],
        )
        .unwrap();
    let lrs: Vec<f32> = h.epochs.iter().map(|e| e.lr).collect();
    assert_eq!(lrs, vec![1e-3, 5e-4, 2.5e-4]);
}

#[test]
fn inference_fuses_batch_norm_into_the_convolution_exactly() {
    // The final MNIST net: every Conv2D is followed by a BatchNormalization.
    let mut model = m2().build(3).unwrap();
    let mut rng = Rng::seed_from_u64(5);
    let x = Tensor::from_vec(
        &[6, 28, 28, 1],
        (0..6 * 784).map(|_| rng.gen_range(0.0..1.0)).collect(),
    )
    .unwrap();
    // A few training forwards move the moving statistics away from 0 and 1.
    for _ in 0..3 {
        model.forward(&x, Mode::Train, false);
    }
    let fused = model.forward(&x, Mode::Eval, true);
    // `trace` runs the layers one by one, unfused.
    let unfused = model.trace(&x).pop().unwrap();
    assert_eq!(fused.shape(), unfused.shape());
    for (a, b) in fused.data().iter().zip(unfused.data()) {
        assert_eq!(a.to_bits(), b.to_bits(), "{a} vs {b}");
    }
}

/// One training step's outputs and parameter gradients.
fn step_outputs(fusion: bool) -> (Vec<u32>, Vec<Vec<u32>>) {
    let opts = NotationOptions::default();
    // BN -> ReLU pairs inside the block and after the first conv; a BN read by an Add.
    let spec = parse_notation(
        "9x9x3-6C3-BN-R[6C3-BN-6C3-BN]x2-R[8C3S2-BN-8C3-BN]-GAP-4",
        &opts,
    )
    .unwrap();
    let mut pairs = 0;
    for w in spec.layers.windows(2) {
        if matches!(w[0].layer, LayerSpec::BatchNormalization(_))
            && matches!(
                w[1].layer,
                LayerSpec::Activation {
                    activation: Activation::Relu
                }
            )
        {
            pairs += 1;
        }
    }
    assert!(pairs >= 2, "the net has BN -> ReLU pairs to fuse");
    // BN -> Add -> ReLU at the end of each residual block.
    let adds = spec
        .layers
        .windows(3)
        .filter(|w| {
            matches!(w[0].layer, LayerSpec::BatchNormalization(_))
                && matches!(w[1].layer, LayerSpec::Add)
                && matches!(
                    w[2].layer,
                    LayerSpec::Activation {
                        activation: Activation::Relu
                    }
                )
        })
        .count();
    assert_eq!(adds, 3, "every residual block ends in BN -> Add -> ReLU");
    let mut m = spec.build(4).unwrap();
    m.set_fusion(fusion);
    let mut rng = Rng::seed_from_u64(9);
    let x = Tensor::from_vec(
        &[5, 9, 9, 3],
        (0..5 * 243).map(|_| rng.gen_range(-1.0..1.0)).collect(),
    )
    .unwrap();
    let y = m.forward(&x, Mode::Train, false);
    assert_eq!(m.fused_relus(), if fusion { pairs } else { 0 });
    assert_eq!(m.fused_adds(), if fusion { adds } else { 0 });
    let dlogits = Tensor::from_vec(
        y.shape(),
        (0..y.len()).map(|i| ((i % 7) as f32 - 3.0) / 7.0).collect(),
    )
    .unwrap();
    m.backward(dlogits);
    let grads = m
        .params_mut()
        .iter()
        .map(|p| p.grad.data().iter().map(|v| v.to_bits()).collect())
        .collect();
    (y.data().iter().map(|v| v.to_bits()).collect(), grads)
}

#[test]
fn fused_batch_norm_relu_and_add_are_bit_identical_to_the_layers() {
    let (y1, g1) = step_outputs(true);
    let (y0, g0) = step_outputs(false);
    assert_eq!(y1, y0, "forward");
    assert_eq!(g1.len(), g0.len());
    for (i, (a, b)) in g1.iter().zip(&g0).enumerate() {
        assert_eq!(a, b, "gradient of parameter {i}");
    }
    assert!(
        g1.iter().flatten().any(|&b| f32::from_bits(b) != 0.0),
        "gradients flow"
    );
}

/// Inference: the ReLU, or the residual sum and ReLU, after a Conv2D's
/// batch norm run in the convolution's pass with the same bits as the
/// layers one by one; through the kernels' tail (16k filters, Winograd at
/// 32 channels) and the tail's own pass (6 and 8 filters).
#[test]
fn inference_fuses_relus_and_residual_sums_into_the_convolution_exactly() {
    for notation in [
        "9x9x3-6C3-BN-R[6C3-BN-6C3-BN]x2-R[8C3S2-BN-8C3-BN]-GAP-4",
        "9x9x3-16C3-BN-R[16C3-BN-16C3-BN]x2-R[32C3S2-BN-32C3-BN]-GAP-4",
    ] {
        let mut m = parse_notation(notation, &NotationOptions::default())
            .unwrap()
            .build(4)
            .unwrap();
        let mut rng = Rng::seed_from_u64(9);
        let x = Tensor::from_vec(
            &[5, 9, 9, 3],
            (0..5 * 243).map(|_| rng.gen_range(-1.0..1.0)).collect(),
        )
        .unwrap();
        // Moving statistics away from 0 and 1.
        for _ in 0..3 {
            m.forward(&x, Mode::Train, false);
        }
        let fused = m.forward(&x, Mode::Eval, true);
        assert_eq!(m.fused_adds(), 3, "{notation}: a sum per block");
        assert!(m.fused_relus() >= 3, "{notation}: {}", m.fused_relus());
        m.set_fusion(false);
        let unfused = m.forward(&x, Mode::Eval, true);
        assert_eq!(m.fused_adds() + m.fused_relus(), 0);
        assert_eq!(fused.shape(), unfused.shape());
        for (a, b) in fused.data().iter().zip(unfused.data()) {
            assert_eq!(a.to_bits(), b.to_bits(), "{notation}: {a} vs {b}");
        }
    }
}

/// Counts the hooks and says Stop after `stop_at` (0-based epoch, 1-based step).
struct StopAt {
    stop_at: (usize, usize),
    begun: Vec<usize>,
    batches: usize,
    ended: usize,
}
impl Callback for StopAt {
    fn on_epoch_begin(&mut self, _: &mut Model, epoch: usize) -> Result<()> {
        self.begun.push(epoch);
        Ok(())
    }
    fn on_batch_end(&mut self, epoch: usize, step: usize, _: usize, _: f32, _: f32) -> Control {
        self.batches += 1;
        if (epoch, step) == self.stop_at {
            Control::Stop
        } else {
            Control::Continue
        }
    }
    fn on_epoch_end(&mut self, _: &mut Model, _: &EpochLogs, _: &History) -> Result<Control> {
        self.ended += 1;
        Ok(Control::Continue)
    }
}

#[test]
fn a_callback_stops_fit_between_batches() {
    let data = blobs(64, 1); // 8 batches of 8
    let config = quiet(3).with_batch_size(8).with_shuffle(false);
    let mut m = small_net().build(0).unwrap();
    m.compile(OptimizerConfig::adam(), Loss::CategoricalCrossentropy);
    let mut cb = StopAt {
        stop_at: (1, 3),
        begun: vec![],
        batches: 0,
        ended: 0,
    };
    let e = m.fit(&data, None, &config, &mut [&mut cb]).unwrap_err();
    assert!(matches!(e, NnError::Stopped { epoch: 2, batch: 3 }), "{e}");
    assert_eq!((cb.begun, cb.batches, cb.ended), (vec![0, 1], 8 + 3, 1));
    // The model is where the stopping step left it: one full epoch, then 3 steps.
    let mut r = small_net().build(0).unwrap();
    r.compile(OptimizerConfig::adam(), Loss::CategoricalCrossentropy);
    r.fit(&data, None, &config.clone().with_epochs(1), &mut [])
        .unwrap();
    let after_one = weights(&r);
    let mut more = config.clone().with_epochs(2).with_initial_epoch(1);
    more.steps_per_epoch = Some(3);
    r.fit(&data, None, &more, &mut []).unwrap();
    assert_eq!(weights(&m), weights(&r));
    assert_ne!(weights(&m), after_one);
}

/// Sets the rate to `to` before step `at` of the first epoch.
struct RateAt {
    at: usize,
    to: f32,
    seen: Vec<f32>,
}
impl Callback for RateAt {
    fn on_batch_begin(&mut self, m: &mut Model, epoch: usize, step: usize, lr: f32) -> Result<()> {
        self.seen.push(lr);
        if (epoch, step) == (0, self.at) {
            m.set_lr_factor(m.lr_factor() * self.to / lr);
        }
        Ok(())
    }
}

#[test]
fn a_callback_changes_the_rate_from_the_next_step() {
    let data = blobs(64, 1); // 8 batches of 8
    let config = quiet(1).with_batch_size(8).with_shuffle(false);
    let mut m = small_net().build(0).unwrap();
    m.compile(OptimizerConfig::sgd(), Loss::CategoricalCrossentropy);
    // A rate of 0 from step 4 on: the weights stay where step 3 left them.
    let mut cb = RateAt {
        at: 4,
        to: 0.0,
        seen: vec![],
    };
    let h = m.fit(&data, None, &config, &mut [&mut cb]).unwrap();
    assert_eq!(cb.seen[..4], [0.01; 4]);
    assert!(cb.seen[4..].iter().all(|&r| r == 0.0), "{:?}", cb.seen);
    assert_eq!(h.epochs[0].lr, 0.0);
    let mut r = small_net().build(0).unwrap();
    r.compile(OptimizerConfig::sgd(), Loss::CategoricalCrossentropy);
    let mut three = config.clone();
    three.steps_per_epoch = Some(3);
    r.fit(&data, None, &three, &mut []).unwrap();
    // The trainable weights (batch norm's moving statistics go on moving).
    let trained = |m: &Model| -> Vec<Vec<f32>> {
        m.named_params()
            .into_iter()
            .filter(|(_, p)| p.trainable)
            .map(|(_, p)| p.value.data().to_vec())
            .collect()
    };
    assert_eq!(trained(&m), trained(&r));
    assert_ne!(weights(&m), weights(&r));
}
