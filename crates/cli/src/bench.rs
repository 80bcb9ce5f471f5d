//! `convnet bench`: training and inference speed of the reference nets on
//! synthetic data, steady state after warm-up, with achieved GFLOP/s and
//! peak memory. Each configuration runs in its own child process so that
//! its peak resident memory is its own.
//!
//! FLOPs count 2 per multiply-add of the conv and dense layers; a training
//! step is counted as 3 forward passes (forward, input gradient, weight
//! gradient), the usual convention (M1: about 66 MFLOP per training image).
//! They are the direct convolution's: inference through Winograd does fewer
//! multiply-adds, so its GFLOP/s (and % of peak) is an effective rate that
//! can pass the peak.

use crate::error::{CliError, CliResult};
use clap::Args;
use convnet_nn::{
    parse_notation, Loss, Mode, ModelSpec, NotationOptions, OptimizerConfig, Padding,
};
use convnet_tensor::{Precision, Tensor};
use rand::{Rng as _, SeedableRng};
use std::time::Instant;

/// The reference nets of the speed issues: a notation or a built-in net
/// (`convnet_nn::zoo`), and the notation's default padding.
pub const NETS: [(&str, &str, &str); 5] = [
    ("m1", "28x28x1-32C5-P2-64C5-P2-128-D0.4-10", "same"),
    (
        "m2",
        "28x28x1-32C3v-BN-32C3v-BN-32C5S2s-BN-D0.4-64C3v-BN-64C3v-BN-64C5S2s-BN-D0.4-128C4v-BN-F-D0.4-10",
        "valid",
    ),
    (
        "m3",
        "128x128x3-32C3v-32C3v-P2-BN-D0.2-32C3v-32C3v-P2-BN-D0.2-64C3v-64C3v-64C3v-P2-BN-D0.2-64-D0.2-1",
        "valid",
    ),
    // He et al.'s CIFAR ResNet-20 (projection shortcuts), 32x32x3, 10 classes.
    ("resnet20", "resnet20", "same"),
    // A VGG-style net with batch norm at 64x64x3: four stages of two 3x3 convs.
    (
        "vgg64",
        "64x64x3-32C3-BN-32C3-BN-P2-64C3-BN-64C3-BN-P2-128C3-BN-128C3-BN-P2-256C3-BN-256C3-BN-P2-F-256-D0.5-10",
        "same",
    ),
];

/// The configurations `convnet bench` runs by default: (net, mode, batch).
pub const DEFAULT_CONFIGS: [(&str, &str, usize); 11] = [
    ("m1", "train", 128),
    ("m1", "train", 32),
    ("m1", "infer", 256),
    ("m2", "train", 128),
    ("m2", "infer", 256),
    ("m3", "train", 32),
    ("m3", "infer", 64),
    ("resnet20", "train", 128),
    ("resnet20", "infer", 256),
    ("vgg64", "train", 64),
    ("vgg64", "infer", 128),
];

/// Options of `convnet bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// One configuration NET:MODE:BATCH (e.g. m1:train:128); default: all of the speed issue's.
    #[arg(long)]
    config: Vec<String>,
    /// Seconds of timed steps per configuration (after warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f32,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// The machine's peak in GFLOP/s for the percent column (default: measured, a loop of
    /// FMAs on every thread, 512-bit with AVX-512, else 256-bit with AVX2 + FMA; without
    /// either, a 2048^3 GEMM).
    #[arg(long)]
    peak: Option<f64>,
    /// Run the configurations in this process instead of one child process each (no per-config memory).
    #[arg(long)]
    in_process: bool,
    /// Print the time of every layer's forward and (training) backward pass instead.
    #[arg(long)]
    layers: bool,
    /// Run every convolution through im2col + GEMM instead of the implicit-GEMM
    /// kernels (to measure what those kernels bring).
    #[arg(long)]
    im2col: bool,
    /// Run inference's 3x3 convolutions on the direct kernels instead of
    /// Winograd F(2x2, 3x3) (to measure what it brings).
    #[arg(long)]
    no_winograd: bool,
    /// fp32, or bf16 (mixed_bfloat16): convolutions take bf16 operands with fp32 sums, on
    /// AVX512-BF16 (elsewhere a notice and fp32).
    #[arg(long, default_value = "fp32")]
    precision: String,
    /// Run every layer in its own memory pass: no fusion of neighbouring
    /// nodes (the same results bit for bit; to measure what fusion brings).
    #[arg(long)]
    unfused: bool,
    /// Write each configured net (as built for the benchmark: seed 1) to DIR/NET.onnx and
    /// stop: the models `tools/bench_peers.py` runs in ONNX Runtime.
    #[arg(long, value_name = "DIR")]
    export_onnx: Option<std::path::PathBuf>,
    /// Data-parallel training steps through `fit` with this job's ranks (run alone
    /// and under `mpirun -np N`): step time, time in the collectives, bytes summed.
    #[arg(long)]
    data_parallel: bool,
}

/// Prints the mean forward and backward time of every layer of a training
/// step, or of an inference forward pass (`train` false: no backward column).
pub fn layer_times(
    name: &str,
    train: bool,
    batch: usize,
    steps: usize,
    precision: Precision,
) -> CliResult<()> {
    let seq = net(name)?;
    let mut model = seq.build(1)?;
    model.set_precision(precision);
    let mut rng = convnet_nn::Rng::seed_from_u64(0);
    let mut shape = vec![batch];
    shape.extend_from_slice(&seq.input_shape);
    let n: usize = shape.iter().product();
    let x = Tensor::from_vec(&shape, (0..n).map(|_| rng.gen::<f32>()).collect()).expect("sizes");
    let n_layers = model.layers().len();
    let mut fwd = vec![0.0f64; n_layers];
    let mut bwd = vec![0.0f64; n_layers];
    for step in 0..steps + 2 {
        let (f, b) = if train {
            model.time_nodes(&x)
        } else {
            (model.time_nodes_eval(&x), vec![0.0; n_layers])
        };
        if step >= 2 {
            fwd.iter_mut().zip(&f).for_each(|(a, b)| *a += b);
            bwd.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
        }
    }
    let what = if train {
        "training step"
    } else {
        "inference pass"
    };
    println!("{name} batch {batch}: mean ms per {what}");
    for (i, node) in model.spec().layers.iter().enumerate() {
        println!(
            "  {:>2} {:<20} {:<24} {:>8.2} fwd {:>8.2} bwd",
            i,
            node.layer.kind(),
            model.wiring().names[i],
            1e3 * fwd[i] / steps as f64,
            1e3 * bwd[i] / steps as f64
        );
    }
    println!(
        "  total                   {:>8.2} fwd {:>8.2} bwd",
        1e3 * fwd.iter().sum::<f64>() / steps as f64,
        1e3 * bwd.iter().sum::<f64>() / steps as f64
    );
    Ok(())
}

/// The model description of a reference net.
pub fn net(name: &str) -> CliResult<ModelSpec> {
    let (_, notation, pad) = NETS.iter().find(|(n, _, _)| *n == name).ok_or_else(|| {
        CliError::usage(format!(
            "unknown net '{name}': expected m1, m2, m3, resnet20 or vgg64"
        ))
    })?;
    if let Some((input, classes)) = convnet_nn::zoo::defaults(notation) {
        return Ok(convnet_nn::zoo::builtin(notation, &input, classes).expect("built-in")?);
    }
    let padding = if *pad == "same" {
        Padding::Same
    } else {
        Padding::Valid
    };
    Ok(parse_notation(
        notation,
        &NotationOptions::default().with_padding(padding),
    )?)
}

/// Forward multiply-adds per sample.
pub fn forward_macs(seq: &ModelSpec) -> CliResult<usize> {
    let (wiring, shapes) = seq.checked()?;
    let mut macs = 0;
    for (i, (node, out)) in seq.layers.iter().zip(&shapes).enumerate() {
        let input = match wiring.inputs[i][0] {
            convnet_nn::Source::Input => &seq.input_shape,
            convnet_nn::Source::Node(j) => &shapes[j],
        };
        macs += node.layer.layer_kind().multiply_adds(input, out) as usize;
    }
    Ok(macs)
}

/// GFLOP/s of a 2048^3 matrix product on all threads.
pub fn measure_peak() -> f64 {
    use convnet_tensor::gemm::{matmul, MatRef, Threads};
    let n = 2048;
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let mut c = vec![0.0; n * n];
    matmul(
        &mut c,
        MatRef::row_major(&a, n, n),
        MatRef::row_major(&a, n, n),
        false,
        Threads::Pool,
    );
    let start = Instant::now();
    let reps = 3;
    for _ in 0..reps {
        matmul(
            &mut c,
            MatRef::row_major(&a, n, n),
            MatRef::row_major(&a, n, n),
            false,
            Threads::Pool,
        );
    }
    2.0 * (n * n * n * reps) as f64 / start.elapsed().as_secs_f64() / 1e9
}

/// GFLOP/s of a 2048^3 bf16 matrix product (fp32 sums) on all threads, on
/// the path that runs ([`convnet_tensor::bf16::path`]).
pub fn measure_bf16_gemm() -> f64 {
    use convnet_tensor::bf16;
    let n = 2048;
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let (pa, pb) = (bf16::pack_a(&a, n, n), bf16::pack_b(&a, n, n));
    let mut c = vec![0.0; n * n];
    bf16::gemm(&pa, &pb, &mut c, n, n, n);
    let start = Instant::now();
    let reps = 3;
    for _ in 0..reps {
        c.fill(0.0);
        bf16::gemm(&pa, &pb, &mut c, n, n, n);
    }
    2.0 * (n * n * n * reps) as f64 / start.elapsed().as_secs_f64() / 1e9
}

/// The bf16 line of the header: the path that runs, its measured peak and
/// a 2048^3 product's rate (issue #30's kernels are not in the nets yet).
fn bf16_line() -> String {
    use convnet_tensor::{bf16, peak};
    let amx = if bf16::has_amx_bf16() {
        "AMX bf16 present (its tile kernels are not written yet)"
    } else {
        "no AMX"
    };
    match (bf16::path(), peak::bf16_peak_gflops()) {
        (bf16::Path::Avx512Bf16, Some(p)) => format!(
            "bf16: avx512-bf16 kernels, measured dot-product peak {p:.1} GFLOP/s, a 2048^3 bf16 GEMM {:.1}; {amx}",
            measure_bf16_gemm()
        ),
        (path, _) => format!(
            "bf16: {} path (no AVX512-BF16: bf16 products would run in a slow portable loop); {amx}",
            path.name()
        ),
    }
}

/// Result of one configuration.
pub struct BenchResult {
    /// Images per second.
    pub images_per_sec: f64,
    /// Achieved GFLOP/s.
    pub gflops: f64,
    /// Peak resident memory, MiB.
    pub peak_mib: Option<f64>,
}

/// Runs one configuration in this process.
pub fn run_config(
    name: &str,
    mode: &str,
    batch: usize,
    seconds: f32,
    fusion: bool,
    precision: Precision,
) -> CliResult<BenchResult> {
    let seq = net(name)?;
    let mut model = seq.build(1)?;
    model.set_fusion(fusion);
    model.set_precision(precision);
    let outputs: usize = seq.output_shape()?.iter().product();
    let loss = if outputs == 1 {
        Loss::BinaryCrossentropy
    } else {
        Loss::SparseCategoricalCrossentropy
    };
    model.compile(OptimizerConfig::adam(), loss);
    if mode == "train" {
        crate::alloc::purge_immediately_if_large(seq.training_bytes(batch)?);
    }
    let mut rng = convnet_nn::Rng::seed_from_u64(0);
    let mut shape = vec![batch];
    shape.extend_from_slice(&seq.input_shape);
    let n: usize = shape.iter().product();
    let x = Tensor::from_vec(&shape, (0..n).map(|_| rng.gen::<f32>()).collect()).expect("sizes");
    let y = if outputs == 1 {
        Tensor::from_vec(&[batch, 1], (0..batch).map(|i| (i % 2) as f32).collect()).expect("sizes")
    } else {
        Tensor::from_vec(&[batch], (0..batch).map(|i| (i % outputs) as f32).collect())
            .expect("sizes")
    };
    let train = match mode {
        "train" => true,
        "infer" => false,
        _ => {
            return Err(CliError::usage(format!(
                "mode '{mode}': expected train or infer"
            )))
        }
    };
    let mut step = || -> CliResult<()> {
        if train {
            model.train_step(&x, &y, 1e-3)?;
        } else {
            let _ = model.forward(&x, Mode::Eval, true);
        }
        Ok(())
    };
    for _ in 0..3 {
        step()?;
    }
    let start = Instant::now();
    let mut steps = 0;
    while steps < 5 || start.elapsed().as_secs_f32() < seconds {
        step()?;
        steps += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let images_per_sec = (steps * batch) as f64 / secs;
    let flop_per_image = 2.0 * forward_macs(&seq)? as f64 * if train { 3.0 } else { 1.0 };
    Ok(BenchResult {
        images_per_sec,
        gflops: images_per_sec * flop_per_image / 1e9,
        peak_mib: crate::alloc::peak_rss_bytes().map(|b| b as f64 / (1u64 << 20) as f64),
    })
}

/// `--export-onnx`: every configured net once, as `run_config` builds it.
fn export_nets(configs: &[(String, String, usize)], dir: &std::path::Path) -> CliResult<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::runtime(format!("cannot create {}: {e}", dir.display())))?;
    let mut done: Vec<&str> = Vec::new();
    for (n, _, _) in configs {
        if done.contains(&n.as_str()) {
            continue;
        }
        let model = net(n)?.build(1)?;
        let path = dir.join(format!("{n}.onnx"));
        convnet_onnx::export(&model, &path)?;
        println!("{}", path.display());
        done.push(n);
    }
    Ok(())
}

fn parse_config(s: &str) -> CliResult<(String, String, usize)> {
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        [n, m, b] => Ok((
            n.to_string(),
            m.to_string(),
            b.parse()
                .map_err(|_| CliError::usage(format!("--config '{s}': bad batch size")))?,
        )),
        _ => Err(CliError::usage(format!(
            "--config '{s}': expected NET:MODE:BATCH, e.g. m1:train:128"
        ))),
    }
}

/// `convnet bench`.
pub fn bench(a: BenchArgs) -> CliResult<()> {
    crate::set_threads(a.threads)?;
    let configs: Vec<(String, String, usize)> = if a.config.is_empty() {
        DEFAULT_CONFIGS
            .iter()
            .map(|(n, m, b)| (n.to_string(), m.to_string(), *b))
            .collect()
    } else {
        a.config
            .iter()
            .map(|s| parse_config(s))
            .collect::<CliResult<_>>()?
    };
    if a.im2col {
        convnet_tensor::implicit::set_enabled(false);
    }
    if a.no_winograd {
        convnet_tensor::winograd::set_enabled(false);
    }
    if let Some(dir) = &a.export_onnx {
        return export_nets(&configs, dir);
    }
    if a.data_parallel {
        let configs: Vec<_> = if a.config.is_empty() {
            ["m1:train:128", "m2:train:64", "resnet20:train:128"]
                .iter()
                .map(|s| parse_config(s))
                .collect::<CliResult<_>>()?
        } else {
            configs
        };
        return crate::bench_dist::bench(&configs, a.seconds);
    }
    let precision = crate::precision(&a.precision)?;
    // A child process runs exactly one configuration and prints one machine-readable line.
    if configs.len() == 1 && std::env::var_os("CONVNET_BENCH_CHILD").is_some() {
        let (n, m, b) = &configs[0];
        let r = run_config(n, m, *b, a.seconds, !a.unfused, precision)?;
        println!(
            "RESULT {} {} {}",
            r.images_per_sec,
            r.gflops,
            r.peak_mib.unwrap_or(f64::NAN)
        );
        return Ok(());
    }
    if a.layers {
        for (n, m, b) in &configs {
            layer_times(n, m == "train", *b, 10, precision)?;
        }
        return Ok(());
    }
    let gemm = measure_peak();
    let fma = convnet_tensor::peak::fma_peak_gflops();
    let (peak, what) = match (a.peak, fma) {
        (Some(p), _) => (p, "given".to_string()),
        (None, Some(f)) => (
            f,
            format!("measured FMA peak; a 2048^3 GEMM runs at {gemm:.1}"),
        ),
        (None, None) => (
            gemm,
            "measured, 2048^3 GEMM (no FMA loop for this CPU)".to_string(),
        ),
    };
    println!(
        "threads {}, peak {peak:.1} GFLOP/s ({what})",
        rayon::current_num_threads(),
    );
    println!("{}", bf16_line());
    println!(
        "{:<8} {:<6} {:>6} {:>10} {:>9} {:>7} {:>10}",
        "net", "mode", "batch", "images/s", "GFLOP/s", "% peak", "peak MiB"
    );
    for (n, m, b) in configs {
        let r = if a.in_process {
            run_config(&n, &m, b, a.seconds, !a.unfused, precision)?
        } else {
            let exe = std::env::current_exe().map_err(|e| CliError::runtime(e.to_string()))?;
            let mut cmd = std::process::Command::new(exe);
            cmd.env("CONVNET_BENCH_CHILD", "1").args([
                "bench",
                "--config",
                &format!("{n}:{m}:{b}"),
                "--seconds",
                &a.seconds.to_string(),
            ]);
            if let Some(t) = a.threads {
                cmd.args(["--threads", &t.to_string()]);
            }
            if a.im2col {
                cmd.arg("--im2col");
            }
            if a.unfused {
                cmd.arg("--unfused");
            }
            if a.no_winograd {
                cmd.arg("--no-winograd");
            }
            cmd.args(["--precision", &a.precision]);
            let out = cmd
                .output()
                .map_err(|e| CliError::runtime(format!("cannot run the benchmark child: {e}")))?;
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text
                .lines()
                .find(|l| l.starts_with("RESULT "))
                .ok_or_else(|| {
                    CliError::runtime(format!(
                        "benchmark {n}:{m}:{b} failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    ))
                })?;
            let v: Vec<f64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            BenchResult {
                images_per_sec: v[0],
                gflops: v[1],
                peak_mib: v.get(2).copied().filter(|x| x.is_finite()),
            }
        };
        println!(
            "{:<8} {:<6} {:>6} {:>10.1} {:>9.1} {:>6.1}% {:>10}",
            n,
            m,
            b,
            r.images_per_sec,
            r.gflops,
            100.0 * r.gflops / peak,
            r.peak_mib.map_or("-".into(), |p| format!("{p:.0}"))
        );
    }
    Ok(())
}
