//! `convnet`: train, evaluate and inspect CNNs from the command line.
//!
//! This binary is glue: it parses arguments (clap), loads data through
//! `convnet-data`, builds and trains models through `convnet-nn`, and maps
//! every error to a one-line message and an exit code (0 success, 1 runtime
//! failure, 2 bad usage or bad input).

mod alloc;
mod bench;
mod bench_dist;
mod dist;
mod error;
mod inspect;
mod interop;
mod lab;
mod model_arg;
mod pictures;
mod predict;
mod serve;
mod surgery;
mod train;

use clap::{Parser, Subcommand};

use error::{CliError, CliResult};

#[derive(Parser)]
#[command(
    name = "convnet",
    version,
    about = "Build, train and inspect convolutional neural networks",
    long_about = "Build, train and inspect convolutional neural networks.\n\n\
        Models are written in the compact notation of CNN-design experiments, e.g.\n\
        32C5-P2-64C5-P2-128-D0.4-10: 32 maps of 5x5, 2x2 max-pool, 64 maps of 5x5,\n\
        2x2 max-pool, dense 128, dropout 40 %, 10-way softmax.\n\n\
        Start with `convnet train`: it trains the recommended MNIST net on the bundled MNIST."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Largest image (width x height) that is decoded, checked from the file's header before
    /// its pixels are read: bigger images (image bombs) are refused as unreadable, in training
    /// folders, predict, explain and the explorer's uploads.
    #[arg(long, global = true, default_value_t = convnet_data::DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
    /// Under mpirun: seconds a rank waits for the others at a training step (a gradient sum)
    /// before it ends the job with a message naming the ranks that did not arrive (stopped or
    /// hung); 0 waits forever. Waits between commands' stages (an ensemble's members) are
    /// not limited.
    #[arg(long, global = true, default_value_t = dist::DEFAULT_RANK_TIMEOUT)]
    rank_timeout: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model (by default the recommended MNIST net on the bundled MNIST).
    Train(Box<train::TrainArgs>),
    /// Evaluate a trained run on its test data.
    Evaluate(inspect::EvaluateArgs),
    /// Predict labels and probabilities for images, folders or a Kaggle CSV.
    Predict(predict::PredictArgs),
    /// Run a family of architecture variants on MNIST and compare them (table + plot).
    Experiment(Box<lab::ExperimentArgs>),
    /// Train N nets on random 90 % bags of MNIST and combine their softmax outputs.
    Ensemble(Box<lab::EnsembleArgs>),
    /// Show what a trained net does to one image: feature maps, pooling, filters, probabilities.
    Explain(pictures::ExplainArgs),
    /// Time training and inference of the reference nets (M1, M2, M3) on synthetic data.
    Bench(bench::BenchArgs),
    /// Print a model's layers, output shapes and parameter counts.
    Summary(inspect::SummaryArgs),
    /// Transfer learning: a trained run's layers, frozen, with a new head, trained on new data.
    Finetune(Box<surgery::FinetuneArgs>),
    /// Insert batch norm into a trained run without changing what it computes (a new run to fine-tune).
    InsertBn(surgery::InsertBnArgs),
    /// Write a run's model as ONNX (opset 13, input NCHW), for other runtimes.
    Export(interop::ExportArgs),
    /// Read an ONNX model (PyTorch, tf2onnx, convnet) into a run folder.
    Import(interop::ImportArgs),
    /// The explorer in the browser: draw or upload an image, see every layer, curves, mistakes.
    Serve(serve::ServeArgs),
}

fn run() -> CliResult<()> {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                print!("{e}");
                return Ok(());
            }
            let _ = e.print();
            std::process::exit(2);
        }
    };
    convnet_data::set_max_pixels(cli.max_pixels);
    // Under mpirun, the commands without a data-parallel form run on rank 0
    // alone (the others have nothing to do and wait in MPI_Finalize).
    let spread = matches!(
        cli.command,
        Command::Train(_)
            | Command::Finetune(_)
            | Command::Ensemble(_)
            | Command::Experiment(_)
            | Command::Bench(_)
    );
    if !spread && dist::world().rank() != 0 {
        return Ok(());
    }
    match cli.command {
        Command::Train(a) => train::train(*a),
        Command::Evaluate(a) => inspect::evaluate(a),
        Command::Summary(a) => inspect::summary(a),
        Command::Predict(a) => predict::predict(a),
        Command::Bench(a) => bench::bench(a),
        Command::Explain(a) => pictures::run_explain(a),
        Command::Experiment(a) => lab::run_experiment(*a),
        Command::Ensemble(a) => lab::run_ensemble(*a),
        Command::InsertBn(a) => surgery::insert_bn(a),
        Command::Finetune(a) => surgery::finetune(*a),
        Command::Export(a) => interop::export(a),
        Command::Import(a) => interop::import(a),
        Command::Serve(a) => serve::serve(a),
    }
}

fn main() {
    // A closed pipe (`convnet summary resnet18 | head`) ends the process
    // quietly, as it does for other Unix tools, instead of a panic in println!.
    // SAFETY: setting a signal's disposition to the default at start-up,
    // before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    alloc::configure();
    let outcome = dist::init().and_then(|()| run());
    if let Err(e) = outcome {
        eprintln!("error: {e}");
        dist::fail(e.code);
    }
    dist::finish();
}

/// `--precision`: `fp32`, or `bf16` (Keras's policy name `mixed_bfloat16`
/// too): convolutions take bf16 operands with fp32 sums. On a CPU without
/// AVX512-BF16, a one-line notice and fp32.
pub fn precision(name: &str) -> CliResult<convnet_tensor::Precision> {
    let p = convnet_tensor::Precision::from_name(name).ok_or_else(|| {
        CliError::usage(format!(
            "--precision '{name}': expected fp32 or bf16 (mixed_bfloat16)"
        ))
    })?;
    Ok(p.on_this_cpu().unwrap_or_else(|| {
        eprintln!("note: this CPU has no AVX512-BF16; --precision bf16 runs in fp32");
        convnet_tensor::Precision::Fp32
    }))
}

/// Sets the number of worker threads (all cores when `None`; under
/// `mpirun`, the cores shared among the ranks on this machine).
pub fn set_threads(threads: Option<usize>) -> CliResult<()> {
    let local = dist::local_ranks();
    if threads.is_none() && local > 1 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Already set up (finetune's second stage): keep it.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads((cores / local).max(1))
            .build_global();
    }
    if let Some(n) = threads {
        if n == 0 {
            return Err(CliError::usage("--threads must be at least 1"));
        }
        // Set once per process; a second call with the same count
        // (finetune, then its pipeline) finds it done.
        static SET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        if SET.get() == Some(&n) {
            return Ok(());
        }
        SET.set(n).ok();
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| CliError::runtime(format!("cannot start {n} threads: {e}")))?;
    }
    Ok(())
}
