//! Pictures of a run (`train` writes them) and `convnet explain`.

use crate::error::{CliError, CliResult};
use clap::Args;
use convnet_data::{load_image, LabeledImages};
use convnet_lab::explain::explain;
use convnet_lab::report::{
    confusion_matrix, confusion_png, mistakes_png, report_html, training_curves, worst_mistakes,
    Mistake, ReportInput,
};
use convnet_nn::{History, Model};
use convnet_run::folder::RunConfig;
use convnet_tensor::Tensor;
use std::path::{Path, PathBuf};

/// Class names for `k` outputs (2 for one sigmoid): the run's, else the label numbers.
pub(crate) fn names(classes: &Option<Vec<String>>, k: usize) -> Vec<String> {
    let k = k.max(2);
    (0..k)
        .map(|i| {
            classes
                .as_ref()
                .and_then(|c| c.get(i).cloned())
                .unwrap_or_else(|| i.to_string())
        })
        .collect()
}

/// Writes the curves, the confusion matrix and mistakes on `eval`, and
/// `report.html`, into the run folder.
pub fn write_run_pictures(
    run: &Path,
    model: &mut Model,
    cfg: &RunConfig,
    history: &History,
    eval: Option<(&LabeledImages, &str)>,
    result_line: &str,
) -> CliResult<()> {
    training_curves(history, run)?;
    let mut pictures = vec![
        ("loss per epoch".to_string(), "loss.png".to_string()),
        ("accuracy per epoch".to_string(), "accuracy.png".to_string()),
    ];
    if let Some((data, what)) = eval {
        let (probs, truth) = convnet_run::predict_images(model, data, None, 256)?;
        let k = probs.sample_len();
        let pred = convnet_lab::report::predicted_classes(&probs);
        let labels = names(&cfg.classes, k);
        confusion_png(
            &confusion_matrix(&truth, &pred, labels.len()),
            &labels,
            &run.join("confusion_matrix.png"),
        )?;
        let wrong = worst_mistakes(&probs, &truth, 24);
        // Only the shown images are converted to f32, renumbered 0..k.
        let shown = data.select(&wrong.iter().map(|m| m.index).collect::<Vec<_>>());
        let renumbered: Vec<_> = wrong
            .iter()
            .enumerate()
            .map(|(j, m)| Mistake {
                index: j,
                ..m.clone()
            })
            .collect();
        mistakes_png(
            &shown.images_tensor()?,
            &renumbered,
            &labels,
            &run.join("mistakes.png"),
        )?;
        pictures.push((
            format!("confusion matrix on the {what}"),
            "confusion_matrix.png".into(),
        ));
        pictures.push((
            format!("most confidently wrong {what} images"),
            "mistakes.png".into(),
        ));
    }
    let summary = cfg.model.summary()?.with_formulas(true).to_string();
    let title = format!(
        "convnet run {}",
        run.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    );
    report_html(
        &ReportInput {
            title: &title,
            summary: &summary,
            history,
            result: result_line,
            pictures: &pictures,
        },
        &run.join("report.html"),
    )?;
    Ok(())
}

/// Options of `convnet explain`.
#[derive(Args)]
pub struct ExplainArgs {
    /// A run folder written by `convnet train`.
    run: PathBuf,
    /// An image file to explain (resized to the model's input).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Or the index of an image of the run's test data (training data if it has no test split).
    #[arg(long)]
    index: Option<usize>,
    /// Output folder (default: RUN/explain/NAME).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `convnet explain`.
pub fn run_explain(a: ExplainArgs) -> CliResult<()> {
    let (cfg, mut model) = convnet_run::open(&a.run)?;
    let shape = model.input_shape().to_vec();
    if shape.len() != 3 {
        return Err(CliError::usage(format!(
            "the model takes inputs {shape:?}, not images"
        )));
    }
    let (image, name, truth) = match (&a.image, a.index) {
        (Some(p), None) => {
            let v = load_image(p, shape[0], shape[1], shape[2])?;
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| "image".into());
            (
                Tensor::from_vec(&shape, v).expect("sizes agree"),
                stem,
                None,
            )
        }
        (None, Some(i)) => {
            let loaded = cfg.load_data()?;
            let split = loaded.test.unwrap_or(loaded.train);
            if i >= split.len() {
                return Err(CliError::usage(format!(
                    "--index {i}: the data has {} images",
                    split.len()
                )));
            }
            let one = split.range(i, i + 1);
            let label = one.label(0);
            (
                one.images_tensor()?.reshape(&shape).expect("one image"),
                format!("index-{i}"),
                Some(label),
            )
        }
        _ => {
            return Err(CliError::usage(
                "give exactly one of --image FILE or --index N",
            ))
        }
    };
    let dir = a.out.unwrap_or_else(|| a.run.join("explain").join(&name));
    let k: usize = model.output_shape().iter().product();
    let labels = names(&cfg.classes, k);
    let pics = explain(&mut model, &image, &labels, &dir)?;
    if let Some(t) = truth {
        println!(
            "true class: {}",
            labels.get(t).cloned().unwrap_or_else(|| t.to_string())
        );
    }
    for p in pics {
        println!("{}\t{}", p.path.display(), p.title);
    }
    Ok(())
}
