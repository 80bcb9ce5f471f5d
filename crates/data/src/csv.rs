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

/// Reads a Kaggle CSV row by row, a chunk of images at a time, so that a
/// large file (Kaggle's 28,000 test images, or more) needs memory for one
/// chunk only. The header is checked when the reader is made; every error
/// names the file, the line and the column.
pub struct KaggleCsvReader<R> {
    path: std::path::PathBuf,
    lines: std::iter::Enumerate<std::io::Lines<R>>,
    cols: Vec<String>,
    has_labels: bool,
    side: usize,
}

impl KaggleCsvReader<std::io::BufReader<std::fs::File>> {
    /// Opens `path` and reads its header.
    pub fn open(path: &Path) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
        Self::new(path, std::io::BufReader::new(f))
    }
}

impl<R: std::io::BufRead> KaggleCsvReader<R> {
    /// Reads the header of the CSV text `reader`; `path` names it in errors.
    pub fn new(path: &Path, reader: R) -> Result<Self> {
        let mut lines = reader.lines().enumerate();
        let header = loop {
            match lines.next() {
                None => {
                    return Err(format_err(
                        path,
                        "header",
                        "label,pixel0,...,pixel783",
                        "an empty file",
                    ))
                }
                Some((_, l)) => {
                    let l = l.map_err(|e| io_err(path, e))?;
                    if !l.trim().is_empty() {
                        break l;
                    }
                }
            }
        };
        let cols: Vec<String> = header
            .trim()
            .trim_start_matches('\u{feff}')
            .split(',')
            .map(|c| c.trim().to_string())
            .collect();
        let has_labels = cols.first().map(String::as_str) == Some("label");
        let npix = cols.len() - has_labels as usize;
        let side = (npix as f64).sqrt().round() as usize;
        if side * side != npix || npix == 0 {
            return Err(format_err(
                path,
                "header",
                "label (optional) followed by a square number of pixel columns, e.g. 784 = 28x28",
                format!("{npix} pixel columns"),
            ));
        }
        for (i, c) in cols.iter().skip(has_labels as usize).enumerate() {
            if *c != format!("pixel{i}") {
                return Err(format_err(
                    path,
                    format!("header column {}", i + 1 + has_labels as usize),
                    format!("pixel{i}"),
                    format!("'{c}'"),
                ));
            }
        }
        Ok(KaggleCsvReader {
            path: path.to_path_buf(),
            lines,
            cols,
            has_labels,
            side,
        })
    }

    /// Whether the file has a `label` column.
    pub fn has_labels(&self) -> bool {
        self.has_labels
    }

    /// The image shape `[side, side, 1]`.
    pub fn image_shape(&self) -> [usize; 3] {
        [self.side, self.side, 1]
    }

    /// The next `max` images or fewer (labels all 0 when the file has
    /// none); `None` at the end of the file.
    pub fn next_chunk(&mut self, max: usize) -> Result<Option<LabeledImages>> {
        let path = self.path.as_path();
        let npix = self.side * self.side;
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        while labels.len() < max.max(1) {
            let Some((lineno, line)) = self.lines.next() else {
                break;
            };
            let line = line.map_err(|e| io_err(path, e))?;
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.trim().split(',').collect();
            if fields.len() != self.cols.len() {
                return Err(format_err(
                    path,
                    format!("line {}", lineno + 1),
                    format!("{} comma-separated values", self.cols.len()),
                    format!("{} values", fields.len()),
                ));
            }
            let mut label = 0;
            for (ci, f) in fields.iter().enumerate() {
                let v: u32 = f.trim().parse().map_err(|_| {
                    format_err(
                        path,
                        format!("line {}, column '{}'", lineno + 1, self.cols[ci]),
                        "an integer",
                        format!("'{f}'"),
                    )
                })?;
                if ci == 0 && self.has_labels {
                    label = v;
                } else {
                    if v > 255 {
                        return Err(format_err(
                            path,
                            format!("line {}, column '{}'", lineno + 1, self.cols[ci]),
                            "a pixel value 0..255",
                            v.to_string(),
                        ));
                    }
                    pixels.push(v as u8);
                }
            }
            labels.push(label);
        }
        if labels.is_empty() {
            return Ok(None);
        }
        debug_assert_eq!(pixels.len(), labels.len() * npix);
        Ok(Some(LabeledImages::from_bytes(
            self.image_shape(),
            pixels,
            labels,
        )?))
    }
}

/// Parses CSV text; `path` names the file in errors.
pub fn parse_kaggle_csv(path: &Path, text: &str) -> Result<CsvImages> {
    read_all(KaggleCsvReader::new(path, text.as_bytes())?)
}

/// Every image of a reader, in one set.
fn read_all<R: std::io::BufRead>(mut r: KaggleCsvReader<R>) -> Result<CsvImages> {
    let images = match r.next_chunk(usize::MAX)? {
        Some(images) => images,
        None => LabeledImages::from_bytes(r.image_shape(), Vec::new(), Vec::new())?,
    };
    Ok(CsvImages {
        images,
        has_labels: r.has_labels(),
    })
}

/// Reads a Kaggle CSV file (all of it; [`KaggleCsvReader`] reads it in chunks).
pub fn read_kaggle_csv(path: &Path) -> Result<CsvImages> {
    read_all(KaggleCsvReader::open(path)?)
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
    fn chunks_hold_the_same_images_as_the_whole_file() {
        let rows: Vec<String> = (0..7)
            .map(|i| format!("{},{},{},{},{}", i % 10, i, 2 * i, 3 * i, 255 - i))
            .collect();
        // Blank lines are skipped wherever they are, and line numbers count them.
        let t = format!(
            "{}\n{}\n\n{}\n",
            header(true),
            rows[..3].join("\n"),
            rows[3..].join("\n")
        );
        let whole = parse_kaggle_csv(Path::new("t.csv"), &t).unwrap().images;
        let mut r = KaggleCsvReader::new(Path::new("t.csv"), t.as_bytes()).unwrap();
        assert!(r.has_labels());
        assert_eq!(r.image_shape(), [2, 2, 1]);
        let mut sizes = Vec::new();
        let (mut pixels, mut labels) = (Vec::new(), Vec::new());
        while let Some(c) = r.next_chunk(3).unwrap() {
            sizes.push(c.len());
            pixels.extend_from_slice(c.images_tensor().unwrap().data());
            labels.extend(c.labels());
        }
        assert_eq!(sizes, [3, 3, 1]);
        assert_eq!(pixels, whole.images_tensor().unwrap().data());
        assert_eq!(labels, whole.labels());
        // An error in a later chunk names its line (blank line 5 counted).
        let bad = format!(
            "{}\n{}\n\n{}\n7,1,2\n",
            header(true),
            rows[..3].join("\n"),
            rows[3..].join("\n")
        );
        let mut r = KaggleCsvReader::new(Path::new("t.csv"), bad.as_bytes()).unwrap();
        r.next_chunk(3).unwrap();
        r.next_chunk(3).unwrap();
        let e = r.next_chunk(3).unwrap_err().to_string();
        assert!(
            e.contains("t.csv: line 10: expected 5 comma-separated values"),
            "{e}"
        );
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
