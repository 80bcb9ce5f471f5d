//! Pictures of a training run and its evaluation, and the one-page HTML
//! report that shows them: loss and accuracy curves, the confusion matrix,
//! the most confidently wrong test images, and the summary with the
//! output-size formula of every layer.

use crate::error::{io_err, Result};
use crate::plot::{ensure_font, line_chart, Series};
use convnet_nn::History;
use convnet_tensor::Tensor;
use plotters::prelude::*;
use std::path::Path;

/// Writes `loss.png` and `accuracy.png` (train and validation per epoch).
pub fn training_curves(history: &History, dir: &Path) -> Result<()> {
    let pts = |f: &dyn Fn(&convnet_nn::EpochLogs) -> Option<f32>| -> Vec<(f32, f32)> {
        history
            .epochs
            .iter()
            .filter_map(|e| f(e).map(|v| (e.epoch as f32, v)))
            .collect()
    };
    for (file, title, train, val) in [
        (
            "loss.png",
            "loss",
            pts(&|e| Some(e.loss)),
            pts(&|e| e.val_loss),
        ),
        (
            "accuracy.png",
            "accuracy",
            pts(&|e| Some(e.accuracy)),
            pts(&|e| e.val_accuracy),
        ),
    ] {
        let mut series = vec![Series {
            label: "train",
            points: train,
        }];
        if !val.is_empty() {
            series.push(Series {
                label: "validation",
                points: val,
            });
        }
        line_chart(
            &dir.join(file),
            &format!("{title} per epoch"),
            "epoch",
            title,
            &series,
            (720, 440),
        )?;
    }
    Ok(())
}

/// `m[true][pred]` counts.
pub fn confusion_matrix(truth: &[usize], pred: &[usize], k: usize) -> Vec<Vec<usize>> {
    let mut m = vec![vec![0; k]; k];
    for (&t, &p) in truth.iter().zip(pred) {
        if t < k && p < k {
            m[t][p] += 1;
        }
    }
    m
}

/// Draws a confusion matrix (rows: true class, columns: predicted) with counts.
pub fn confusion_png(m: &[Vec<usize>], labels: &[String], path: &Path) -> Result<()> {
    ensure_font();
    let k = m.len();
    let cell = 48i32;
    let (left, top) = (110i32, 70i32);
    let size = (
        (left + cell * k as i32 + 20) as u32,
        (top + cell * k as i32 + 60) as u32,
    );
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, size).into_drawing_area();
        root.fill(&WHITE)?;
        let max = m.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
        let font = ("sans-serif", 14).into_font();
        root.draw(&Text::new(
            "confusion matrix (rows: true, columns: predicted)",
            (10, 10),
            ("sans-serif", 18).into_font(),
        ))?;
        for t in 0..k {
            root.draw(&Text::new(
                labels[t].clone(),
                (10, top + t as i32 * cell + cell / 2 - 7),
                font.clone(),
            ))?;
            root.draw(&Text::new(
                labels[t].clone(),
                (left + t as i32 * cell + 4, top - 22),
                font.clone(),
            ))?;
            for (p, &v) in m[t].iter().enumerate() {
                let shade = (v as f64 / max).powf(0.5);
                let color = if t == p {
                    RGBColor(
                        (255.0 * (1.0 - shade)) as u8,
                        (255.0 - 120.0 * shade) as u8,
                        (255.0 * (1.0 - shade)) as u8,
                    )
                } else {
                    RGBColor(
                        255,
                        (255.0 * (1.0 - shade)) as u8,
                        (255.0 * (1.0 - shade)) as u8,
                    )
                };
                let (x0, y0) = (left + p as i32 * cell, top + t as i32 * cell);
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell, y0 + cell)],
                    color.filled(),
                ))?;
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell, y0 + cell)],
                    BLACK.mix(0.2),
                ))?;
                root.draw(&Text::new(
                    v.to_string(),
                    (x0 + 6, y0 + cell / 2 - 7),
                    font.clone(),
                ))?;
            }
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| io_err(path, e))
}

/// The predicted class of each row of `probs` `[N, k]`: the argmax, or for a
/// single sigmoid output (`k = 1`) class 1 above 0.5.
pub fn predicted_classes(probs: &Tensor) -> Vec<usize> {
    if probs.sample_len() == 1 {
        probs.data().iter().map(|&p| (p > 0.5) as usize).collect()
    } else {
        probs.argmax_rows()
    }
}

/// One wrongly classified image.
#[derive(Clone, Debug)]
pub struct Mistake {
    /// Index in the evaluated set.
    pub index: usize,
    /// True class.
    pub truth: usize,
    /// Predicted class.
    pub pred: usize,
    /// Probability of the predicted class.
    pub confidence: f32,
}

/// The probability the model gives its predicted class `pred` in row `i`
/// (for one sigmoid output: p for class 1, 1 - p for class 0).
fn confidence(probs: &Tensor, i: usize, pred: usize) -> f32 {
    let k = probs.sample_len().max(1);
    let p = &probs.data()[i * k..(i + 1) * k];
    match (k, pred) {
        (1, 1) => p[0],
        (1, _) => 1.0 - p[0],
        _ => p[pred],
    }
}

/// The `n` most confidently wrong predictions.
pub fn worst_mistakes(probs: &Tensor, truth: &[usize], n: usize) -> Vec<Mistake> {
    let pred = predicted_classes(probs);
    let mut wrong: Vec<Mistake> = (0..truth.len())
        .filter(|&i| pred[i] != truth[i])
        .map(|i| Mistake {
            index: i,
            truth: truth[i],
            pred: pred[i],
            confidence: confidence(probs, i, pred[i]),
        })
        .collect();
    wrong.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then(a.index.cmp(&b.index))
    });
    wrong.truncate(n);
    wrong
}

/// For each of `classes` classes, the sample of that class predicted right
/// with the most confidence (the first on ties) and that confidence; `None`
/// for a class never predicted right.
pub fn best_examples(probs: &Tensor, truth: &[usize], classes: usize) -> Vec<Option<(usize, f32)>> {
    let pred = predicted_classes(probs);
    let mut best: Vec<Option<(usize, f32)>> = vec![None; classes];
    for (i, (&t, &p)) in truth.iter().zip(&pred).enumerate() {
        if t != p || t >= classes {
            continue;
        }
        let c = confidence(probs, i, p);
        if best[t].is_none_or(|(_, b)| c > b) {
            best[t] = Some((i, c));
        }
    }
    best
}

/// Draws the mistakes as a grid of images captioned "true -> predicted (p)".
pub fn mistakes_png(
    images: &Tensor,
    mistakes: &[Mistake],
    labels: &[String],
    path: &Path,
) -> Result<()> {
    ensure_font();
    let s = images.shape();
    let (h, w, c) = (s[1], s[2], s[3]);
    let scale = (96 / h.max(w)).max(1) as i32;
    let (tw, th) = (w as i32 * scale, h as i32 * scale);
    let cols = 6i32;
    let rows = (mistakes.len() as i32 + cols - 1) / cols;
    let (cw, ch) = (tw.max(110) + 16, th + 40);
    let size = ((cols * cw + 10) as u32, (rows.max(1) * ch + 40) as u32);
    let per = h * w * c;
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, size).into_drawing_area();
        root.fill(&WHITE)?;
        root.draw(&Text::new(
            format!(
                "{} most confidently wrong: true -> predicted (probability)",
                mistakes.len()
            ),
            (10, 8),
            ("sans-serif", 16).into_font(),
        ))?;
        for (j, m) in mistakes.iter().enumerate() {
            let (cx, cy) = (10 + (j as i32 % cols) * cw, 32 + (j as i32 / cols) * ch);
            let img = &images.data()[m.index * per..(m.index + 1) * per];
            for y in 0..h {
                for x in 0..w {
                    let v = |k: usize| {
                        (img[(y * w + x) * c + k.min(c - 1)].clamp(0.0, 1.0) * 255.0) as u8
                    };
                    let color = if c >= 3 {
                        RGBColor(v(0), v(1), v(2))
                    } else {
                        RGBColor(v(0), v(0), v(0))
                    };
                    let (x0, y0) = (cx + x as i32 * scale, cy + y as i32 * scale);
                    root.draw(&Rectangle::new(
                        [(x0, y0), (x0 + scale, y0 + scale)],
                        color.filled(),
                    ))?;
                }
            }
            let name = |l: usize| labels.get(l).cloned().unwrap_or_else(|| l.to_string());
            root.draw(&Text::new(
                format!(
                    "{} -> {} ({:.2})",
                    name(m.truth),
                    name(m.pred),
                    m.confidence
                ),
                (cx, cy + th + 4),
                ("sans-serif", 13).into_font(),
            ))?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| io_err(path, e))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What goes into `report.html`.
pub struct ReportInput<'a> {
    /// Page title.
    pub title: &'a str,
    /// The summary table with formulas (plain text).
    pub summary: &'a str,
    /// Per-epoch history.
    pub history: &'a History,
    /// Test (or validation) accuracy line.
    pub result: &'a str,
    /// Pictures beside the report: (title, file name).
    pub pictures: &'a [(String, String)],
}

/// Writes a self-contained page (pictures referenced beside it) to `path`.
pub fn report_html(r: &ReportInput<'_>, path: &Path) -> Result<()> {
    let mut rows = String::new();
    for e in &r.history.epochs {
        let opt = |v: Option<f32>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td><td>{}</td><td>{:.2e}</td><td>{:.1}</td></tr>\n",
            e.epoch, e.loss, e.accuracy, opt(e.val_loss), opt(e.val_accuracy), e.lr, e.seconds
        ));
    }
    let mut figs = String::new();
    for (t, f) in r.pictures {
        figs.push_str(&format!(
            "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>\n",
            escape(f),
            escape(t),
            escape(t)
        ));
    }
    let html = format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; max-width: 1200px; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 13px; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
figure {{ display: inline-block; margin: 1em; vertical-align: top; }} figcaption {{ font-size: 13px; color: #555; }}
.result {{ font-size: 1.3em; font-weight: bold; }}
</style></head><body>
<h1>{title}</h1>
<p class="result">{result}</p>
<h2>Model</h2>
<pre>{summary}</pre>
<h2>Training</h2>
<table><tr><th>epoch</th><th>loss</th><th>accuracy</th><th>val loss</th><th>val accuracy</th><th>lr</th><th>seconds</th></tr>
{rows}</table>
<h2>Pictures</h2>
{figs}
</body></html>
"#,
        title = escape(r.title),
        result = escape(r.result),
        summary = escape(r.summary),
    );
    convnet_nn::save::write_atomic(path, html.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_and_mistakes() {
        let m = confusion_matrix(&[0, 1, 1, 2], &[0, 2, 1, 2], 3);
        assert_eq!(m, vec![vec![1, 0, 0], vec![0, 1, 1], vec![0, 0, 1]]);
        let probs = Tensor::from_vec(&[3, 2], vec![0.9, 0.1, 0.3, 0.7, 0.2, 0.8]).unwrap();
        let w = worst_mistakes(&probs, &[1, 0, 0], 5);
        assert_eq!(w.len(), 3);
        assert_eq!((w[0].index, w[0].pred), (0, 0));
        assert!((w[0].confidence - 0.9).abs() < 1e-6 && w[1].index == 2);
    }

    #[test]
    fn best_examples_are_the_most_confident_right_ones() {
        // Rows: class 0 right (0.6), class 0 right (0.9), class 1 wrong,
        // class 1 right (0.7); class 2 never right.
        let probs = Tensor::from_vec(
            &[5, 3],
            vec![
                0.6, 0.3, 0.1, 0.9, 0.05, 0.05, 0.8, 0.1, 0.1, 0.2, 0.7, 0.1, 0.5, 0.4, 0.1,
            ],
        )
        .unwrap();
        let b = best_examples(&probs, &[0, 0, 1, 1, 2], 3);
        assert_eq!(b[0].map(|e| e.0), Some(1));
        assert_eq!(b[1].map(|e| e.0), Some(3));
        assert!((b[1].unwrap().1 - 0.7).abs() < 1e-6);
        assert_eq!(b[2], None);
        // One sigmoid output: class 0's confidence is 1 - p.
        let one = Tensor::from_vec(&[2, 1], vec![0.2, 0.4]).unwrap();
        let b = best_examples(&one, &[0, 0], 2);
        assert_eq!(b[0], Some((0, 0.8)));
    }
}
