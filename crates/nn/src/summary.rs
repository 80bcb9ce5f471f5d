//! `summary()`: Keras's table of layers, output shapes and parameter counts,
//! optionally with the output-size arithmetic of every conv and pooling
//! layer, `out = floor((N + 2P - M) / S) + 1`, with the numbers filled in.

use crate::kind::Window;
use crate::spec::checked_sum;
use crate::{LayerSpec, ModelSpec, Result};
use convnet_tensor::shape::{axis_geometry, AxisPadding};
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
    /// The names of the nodes it reads (`input` for the model's input).
    pub connected_to: Vec<String>,
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
    /// True for a graph (not a chain): `Display` adds the input row and the
    /// "Connected to" column, as Keras does for functional models.
    pub graph: bool,
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
    let Window {
        kernel: k,
        strides: s,
        dilation: d,
        padding: p,
        ceil_mode: ceil,
    } = spec.layer_kind().window()?;
    let h = axis_formula(input[0], k[0], s[0], d[0], p.axis(0), ceil);
    let w = axis_formula(input[1], k[1], s[1], d[1], p.axis(1), ceil);
    Some(if h == w {
        format!("H,W: {h}")
    } else {
        format!("H: {h}; W: {w}")
    })
}

impl ModelSpec {
    /// The summary, computed from the description alone (nothing is built).
    pub fn summary(&self) -> Result<Summary> {
        let (wiring, shapes) = self.checked()?;
        let mut rows = Vec::new();
        let (mut trainable, mut non_trainable) = (0, 0);
        for (i, (node, out)) in self.layers.iter().zip(&shapes).enumerate() {
            let spec = &node.layer;
            let input = self.first_input_shape(&wiring, &shapes, i);
            let name = wiring.names[i].clone();
            let (t, nt) = spec.param_counts(input)?;
            // A frozen layer's weights count as non-trainable, as in Keras.
            let (t, nt) = if node.trainable { (t, nt) } else { (0, t + nt) };
            trainable = checked_sum(trainable, t)?;
            non_trainable = checked_sum(non_trainable, nt)?;
            checked_sum(trainable, non_trainable)?;
            rows.push(SummaryRow {
                name,
                kind: spec.kind(),
                output_shape: out.clone(),
                params: t + nt,
                formula: formula(spec, input),
                connected_to: wiring.inputs[i]
                    .iter()
                    .map(|s| wiring.source_name(*s).to_string())
                    .collect(),
            });
        }
        Ok(Summary {
            input_shape: self.input_shape.clone(),
            rows,
            trainable,
            non_trainable,
            show_formulas: false,
            graph: !wiring.is_chain(),
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
        // Graphs list the input first, as Keras's functional summary does.
        let input_row = self.graph.then(|| SummaryRow {
            name: crate::INPUT.into(),
            kind: "InputLayer",
            output_shape: self.input_shape.clone(),
            params: 0,
            formula: None,
            connected_to: Vec::new(),
        });
        let rows: Vec<&SummaryRow> = input_row.iter().chain(&self.rows).collect();
        let names: Vec<String> = rows
            .iter()
            .map(|r| format!("{} ({})", r.name, r.kind))
            .collect();
        let shapes: Vec<String> = rows.iter().map(|r| shape_str(&r.output_shape)).collect();
        let links: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                if r.connected_to.is_empty() {
                    vec!["-".to_string()]
                } else {
                    r.connected_to
                        .iter()
                        .map(|n| format!("{n}[0][0]"))
                        .collect()
                }
            })
            .collect();
        let w0 = names.iter().map(|s| s.len()).max().unwrap_or(0).max(12) + 2;
        let w1 = shapes.iter().map(|s| s.len()).max().unwrap_or(0).max(12) + 2;
        let w2 = 12;
        let w3 = if self.graph {
            2 + links
                .iter()
                .flatten()
                .map(|s| s.len())
                .max()
                .unwrap_or(0)
                .max(12)
        } else {
            0
        };
        let width = w0 + w1 + w2 + w3 + 1;
        let line = "_".repeat(width);
        let title = if self.graph {
            "functional"
        } else {
            "sequential"
        };
        writeln!(
            f,
            "Model: \"{title}\"  input {}",
            shape_str(&self.input_shape)
        )?;
        writeln!(f, "{line}")?;
        write!(
            f,
            " {:<w0$}{:<w1$}{:>w2$}",
            "Layer (type)", "Output Shape", "Param #"
        )?;
        if self.graph {
            write!(f, "  {:<w$}", "Connected to", w = w3 - 2)?;
        }
        if self.show_formulas {
            write!(f, "   Output size: floor((N + 2P - M) / S) + 1")?;
        }
        writeln!(f)?;
        writeln!(f, "{}", "=".repeat(width))?;
        for (i, r) in rows.iter().enumerate() {
            write!(
                f,
                " {:<w0$}{:<w1$}{:>w2$}",
                names[i],
                shapes[i],
                thousands(r.params)
            )?;
            if self.graph {
                write!(f, "  {:<w$}", links[i][0], w = w3 - 2)?;
            }
            if self.show_formulas {
                if let Some(fm) = &r.formula {
                    write!(f, "   {fm}")?;
                }
            }
            writeln!(f)?;
            for more in links[i].iter().skip(1) {
                writeln!(f, " {:<w$}{more}", "", w = w0 + w1 + w2 + 2)?;
            }
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
