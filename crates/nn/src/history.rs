//! What training reports: one [`EpochLogs`] per epoch, the [`History`] of a
//! run and its CSV form (`history.csv`, [`crate::CsvLogger`]), and the
//! [`Evaluation`] of a model on data.

use serde::{Deserialize, Serialize};

/// Loss and metrics of one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLogs {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub loss: f32,
    /// Training accuracy over the epoch.
    pub accuracy: f32,
    /// Validation loss.
    pub val_loss: Option<f32>,
    /// Validation accuracy.
    pub val_accuracy: Option<f32>,
    /// Learning rate used.
    pub lr: f32,
    /// Wall time of the epoch (training and validation).
    pub seconds: f32,
}

impl EpochLogs {
    /// The value of `"loss"`, `"accuracy"`, `"val_loss"` or `"val_accuracy"`.
    pub fn get(&self, metric: &str) -> Option<f32> {
        match metric {
            "loss" => Some(self.loss),
            "accuracy" => Some(self.accuracy),
            "val_loss" => self.val_loss,
            "val_accuracy" => self.val_accuracy,
            _ => None,
        }
    }
}

/// Per-epoch logs of a `fit` call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// One entry per completed epoch.
    pub epochs: Vec<EpochLogs>,
}

impl History {
    /// CSV with a header: `epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds`.
    pub fn to_csv(&self) -> String {
        let mut s = String::from(CSV_HEADER);
        s.push('\n');
        for e in &self.epochs {
            s.push_str(&csv_row(e));
            s.push('\n');
        }
        s
    }
}

/// Loss and accuracy of an evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss.
    pub loss: f32,
    /// Accuracy.
    pub accuracy: f32,
}

/// The CSV header of [`CsvLogger`] and [`History::to_csv`].
pub const CSV_HEADER: &str = "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds";

/// One CSV row for an epoch.
pub fn csv_row(e: &EpochLogs) -> String {
    let opt = |v: Option<f32>| v.map_or(String::new(), |v| v.to_string());
    format!(
        "{},{},{},{},{},{},{}",
        e.epoch,
        e.loss,
        e.accuracy,
        opt(e.val_loss),
        opt(e.val_accuracy),
        e.lr,
        e.seconds
    )
}
