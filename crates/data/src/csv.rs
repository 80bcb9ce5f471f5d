//! Kaggle digit-recognizer CSV: `label,pixel0,...,pixel783` (training) or
//! `pixel0,...,pixel783` (test), pixel values 0..255, and the submission
//! format `ImageId,Label` (1-based ids).

use crate::error::{format_err, io_err, Result};
use crate::images::LabeledImages;
use std::path::Path;

/// Images of a Kaggle CSV, with labels when the file has a `label` column.
#[derive(Clone, Debug)]
pub struct CsvImages {
    /// `side x side x 1` images; labels all 0 when the file has none.
    pub images: LabeledImages,
    /// Whether the file had a `label` column.
    pub has_labels: bool,
}

impl CsvImages {
    /// As labelled images; an error if the file had no labels.
    pub fn labeled(self, path: &Path) -> Result<LabeledImages> {
        if !self.has_labels {
            return Err(format_err(
                path,
                "header",
                "a 'label' column for training data",
                "no label column",
            ));
        }
        Ok(self.images)
    }
}

/// Parses CSV text; `path` names the file in errors.
pub fn parse_kaggle_csv(path: &Path, text: &str) -> Result<CsvImages> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| format_err(path, "header", "label,pixel0,...,pixel783", "an empty file"))?;
    let cols: Vec<&str> = header
        .trim()
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(str::trim)
        .collect();
    let has_label = cols.first() == Some(&"label");
    let npix = cols.len() - has_label as usize;
    let side = (npix as f64).sqrt().round() as usize;
    if side * side != npix || npix == 0 {
        return Err(format_err(
            path,
            "header",
            "label (optional) followed by a square number of pixel columns, e.g. 784 = 28x28",
            format!("{npix} pixel columns"),
        ));
    }
    for (i, c) in cols.iter().skip(has_label as usize).enumerate() {
        if *c != format!("pixel{i}") {
            return Err(format_err(
                path,
                format!("header column {}", i + 1 + has_label as usize),
                format!("pixel{i}"),
                format!("'{c}'"),
            ));
        }
    }
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (lineno, line) in lines {
        let fields: Vec<&str> = line.trim().split(',').collect();
        if fields.len() != cols.len() {
            return Err(format_err(
                path,
                format!("line {}", lineno + 1),
                format!("{} comma-separated values", cols.len()),
                format!("{} values", fields.len()),
            ));
        }
        for (ci, f) in fields.iter().enumerate() {
            let v: u32 = f.trim().parse().map_err(|_| {
                format_err(
                    path,
                    format!("line {}, column '{}'", lineno + 1, cols[ci]),
                    "an integer",
                    format!("'{f}'"),
                )
            })?;
            if ci == 0 && has_label {
                labels.push(v);
            } else {
                if v > 255 {
                    return Err(format_err(
                        path,
                        format!("line {}, column '{}'", lineno + 1, cols[ci]),
                        "a pixel value 0..255",
                        v.to_string(),
                    ));
                }
                pixels.push(v as u8);
            }
        }
    }
    if !has_label {
        labels = vec![0; pixels.len() / npix];
    }
    Ok(CsvImages {
        images: LabeledImages::from_bytes([side, side, 1], pixels, labels)?,
        has_labels: has_label,
    })
}

/// Reads a Kaggle CSV file.
pub fn read_kaggle_csv(path: &Path) -> Result<CsvImages> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    parse_kaggle_csv(path, &text)
}

/// The submission text: `ImageId,Label` then one 1-based row per prediction.
pub fn submission_csv(labels: &[usize]) -> String {
    let mut s = String::from("ImageId,Label\n");
    for (i, l) in labels.iter().enumerate() {
        s.push_str(&format!("{},{l}\n", i + 1));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(label: bool) -> String {
        let mut cols: Vec<String> = (0..4).map(|i| format!("pixel{i}")).collect();
        if label {
            cols.insert(0, "label".into());
        }
        cols.join(",")
    }

    #[test]
    fn reads_train_and_test_files() {
        let t = format!("{}\n7,0,255,51,0\n1,1,2,3,4\n", header(true));
        let d = parse_kaggle_csv(Path::new("train.csv"), &t).unwrap();
        let x = d.images.images_tensor().unwrap();
        assert_eq!(x.shape(), &[2, 2, 2, 1]);
        assert!(d.has_labels);
        assert_eq!(d.images.labels(), vec![7, 1]);
        assert_eq!(x.data()[1], 1.0);
        let t = format!("{}\n0,255,51,0\n", header(false));
        let d = parse_kaggle_csv(Path::new("test.csv"), &t).unwrap();
        assert!(!d.has_labels && d.images.len() == 1);
        assert_eq!(submission_csv(&[3, 1]), "ImageId,Label\n1,3\n2,1\n");
    }

    #[test]
    fn errors_name_line_and_column() {
        let p = Path::new("train.csv");
        let e = parse_kaggle_csv(p, &format!("{}\n7,0,255,51\n", header(true)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("train.csv: line 2: expected 5 comma-separated values, found 4 values"),
            "{e}"
        );
        let e = parse_kaggle_csv(p, &format!("{}\n7,0,x,51,0\n", header(true)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2, column 'pixel1': expected an integer, found 'x'"),
            "{e}"
        );
        let e = parse_kaggle_csv(p, &format!("{}\n7,0,256,51,0\n", header(true)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("pixel value 0..255, found 256"), "{e}");
        let e = parse_kaggle_csv(p, "label,pixel0,pixel1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("square number of pixel columns"), "{e}");
        let e = parse_kaggle_csv(p, "label,pixel0,pixel1,pxl2,pixel3\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("header column 4: expected pixel2, found 'pxl2'"),
            "{e}"
        );
        let e = parse_kaggle_csv(p, "").unwrap_err().to_string();
        assert!(e.contains("empty file"), "{e}");
    }
}
