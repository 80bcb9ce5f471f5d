//! `summary()`: Keras's table of layers, output shapes and parameter counts,
//! optionally with the output-size arithmetic of every conv and pooling
//! layer, `out = floor((N + 2P - M) / S) + 1`, with the numbers filled in.

use crate::spec::checked_sum;
use crate::{LayerSpec, Result, Sequential};
use convnet_tensor::shape::{axis_geometry, AxisPadding};
use std::collections::HashMap;
use std::fmt;

/// One row of the summary.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    /// Keras-style instance name (`conv2d`, `conv2d_1`, ...).
    pub name: String,
    /// Layer class (`Conv2D`, ...).
    pub kind: &'static str,
    /// Per-sample output shape.
    pub output_shape: Vec<usize>,
    /// Parameters of this layer (trainable and not).
    pub params: usize,
    /// The output-size formula with numbers, for conv and pooling layers.
    pub formula: Option<String>,
}

/// A model summary. `Display` prints the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Per-sample input shape.
    pub input_shape: Vec<usize>,
    /// One row per layer.
    pub rows: Vec<SummaryRow>,
    /// Trainable parameters.
    pub trainable: usize,
    /// Non-trainable parameters (batch norm moving statistics).
    pub non_trainable: usize,
    /// Whether `Display` shows the formula column.
    pub show_formulas: bool,
}

impl Summary {
    /// All parameters.
    pub fn total(&self) -> usize {
        self.trainable + self.non_trainable
    }
    /// The same summary, printing the output-size formulas.
    pub fn with_formulas(mut self, show: bool) -> Self {
        self.show_formulas = show;
        self
    }
}

fn snake(kind: &str) -> String {
    match kind {
        "Conv2D" => "conv2d".into(),
        "MaxPooling2D" => "max_pooling2d".into(),
        "AveragePooling2D" => "average_pooling2d".into(),
        "GlobalAveragePooling2D" => "global_average_pooling2d".into(),
        "GlobalMaxPooling2D" => "global_max_pooling2d".into(),
        "BatchNormalization" => "batch_normalization".into(),
        other => other.to_lowercase(),
    }
}

/// `floor((N + 2P - M) / S) + 1 = out` for one axis, numbers filled in
/// (`ceil` when the pool rounds up).
fn axis_formula(n: usize, m: usize, s: usize, d: usize, pad: AxisPadding, ceil: bool) -> String {
    let a = axis_geometry(n, m, s, d, pad, ceil).expect("validated by output_shapes");
    let m_eff = (m - 1) * d + 1;
    let round = if ceil && pad != AxisPadding::Same {
        "ceil"
    } else {
        "floor"
    };
    format!(
        "{round}(({n} + {} - {m_eff}) / {s}) + 1 = {}",
        a.pad_before + a.pad_after,
        a.out
    )
}

fn formula(spec: &LayerSpec, input: &[usize]) -> Option<String> {
    let (k, s, d, p, ceil) = match spec {
        LayerSpec::Conv2D(c) => (c.kernel_size, c.strides, c.dilation_rate, c.padding, false),
        LayerSpec::MaxPooling2D(p) | LayerSpec::AveragePooling2D(p) => (
            p.pool_size,
            p.strides.unwrap_or(p.pool_size),
            [1, 1],
            p.padding,
            p.ceil_mode,
        ),
        _ => return None,
    };
    let h = axis_formula(input[0], k[0], s[0], d[0], p.axis(0), ceil);
    let w = axis_formula(input[1], k[1], s[1], d[1], p.axis(1), ceil);
    Some(if h == w {
        format!("H,W: {h}")
    } else {
        format!("H: {h}; W: {w}")
    })
}

impl Sequential {
    /// The summary, computed from the description alone (nothing is built).
    pub fn summary(&self) -> Result<Summary> {
        let shapes = self.output_shapes()?;
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut rows = Vec::new();
        let (mut trainable, mut non_trainable) = (0, 0);
        let mut input = self.input_shape.clone();
        for (spec, out) in self.layers.iter().zip(&shapes) {
            let base = snake(spec.kind());
            let k = counts.entry(base.clone()).or_insert(0);
            let name = if *k == 0 {
                base.clone()
            } else {
                format!("{base}_{k}")
            };
            *k += 1;
            let (t, nt) = spec.param_counts(&input)?;
            trainable = checked_sum(trainable, t)?;
            non_trainable = checked_sum(non_trainable, nt)?;
            checked_sum(trainable, non_trainable)?;
            rows.push(SummaryRow {
                name,
                kind: spec.kind(),
                output_shape: out.clone(),
                params: t + nt,
                formula: formula(spec, &input),
            });
            input = out.clone();
        }
        Ok(Summary {
            input_shape: self.input_shape.clone(),
            rows,
            trainable,
            non_trainable,
            show_formulas: false,
        })
    }
}

/// `1234567` -> `1,234,567`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn bytes(params: usize) -> String {
    let b = params as f64 * 4.0;
    if b >= 1024.0 * 1024.0 {
        format!("{:.2} MB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.2} KB", b / 1024.0)
    } else {
        format!("{b:.2} B")
    }
}

fn shape_str(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("(None, {})", dims.join(", "))
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .rows
            .iter()
            .map(|r| format!("{} ({})", r.name, r.kind))
            .collect();
        let shapes: Vec<String> = self
            .rows
            .iter()
            .map(|r| shape_str(&r.output_shape))
            .collect();
        let w0 = names.iter().map(|s| s.len()).max().unwrap_or(0).max(12) + 2;
        let w1 = shapes.iter().map(|s| s.len()).max().unwrap_or(0).max(12) + 2;
        let w2 = 12;
        let width = w0 + w1 + w2 + 1;
        let line = "_".repeat(width);
        writeln!(
            f,
            "Model: \"sequential\"  input {}",
            shape_str(&self.input_shape)
        )?;
        writeln!(f, "{line}")?;
        write!(
            f,
            " {:<w0$}{:<w1$}{:>w2$}",
            "Layer (type)", "Output Shape", "Param #"
        )?;
        if self.show_formulas {
            write!(f, "   Output size: floor((N + 2P - M) / S) + 1")?;
        }
        writeln!(f)?;
        writeln!(f, "{}", "=".repeat(width))?;
        for (i, r) in self.rows.iter().enumerate() {
            write!(
                f,
                " {:<w0$}{:<w1$}{:>w2$}",
                names[i],
                shapes[i],
                thousands(r.params)
            )?;
            if self.show_formulas {
                if let Some(fm) = &r.formula {
                    write!(f, "   {fm}")?;
                }
            }
            writeln!(f)?;
        }
        writeln!(f, "{}", "=".repeat(width))?;
        writeln!(
            f,
            " Total params: {} ({})",
            thousands(self.total()),
            bytes(self.total())
        )?;
        writeln!(
            f,
            " Trainable params: {} ({})",
            thousands(self.trainable),
            bytes(self.trainable)
        )?;
        writeln!(
            f,
            " Non-trainable params: {} ({})",
            thousands(self.non_trainable),
            bytes(self.non_trainable)
        )?;
        write!(f, "{line}")
    }
}
