//! A node's attributes with ONNX's defaults, and the errors that name a node.

use super::*;

/// The attributes of one node, with ONNX's defaults.
pub(super) struct Attrs<'n> {
    pub(super) node: &'n NodeProto,
    pub(super) path: &'n str,
}

impl<'n> Attrs<'n> {
    pub(super) fn get(&self, name: &str) -> Option<&'n AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }
    pub(super) fn err(&self, msg: String) -> OnnxError {
        unsupported(self.path, self.node, msg)
    }
    /// Fails on any attribute not in `known`.
    pub(super) fn only(&self, known: &[&str]) -> Result<()> {
        for a in &self.node.attribute {
            if !known.contains(&a.name.as_str()) {
                return Err(self.err(format!(
                    "attribute '{}' is not supported (known: {})",
                    a.name,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
        Ok(())
    }
    pub(super) fn int(&self, name: &str, default: i64) -> Result<i64> {
        match self.get(name) {
            None => Ok(default),
            Some(a) if a.r#type == attribute_type::INT || a.r#type == 0 => Ok(a.i),
            Some(a) => Err(self.err(format!(
                "attribute '{name}' has type {}, expected INT",
                a.r#type
            ))),
        }
    }
    pub(super) fn float(&self, name: &str, default: f32) -> Result<f32> {
        match self.get(name) {
            None => Ok(default),
            Some(a) if a.r#type == attribute_type::FLOAT || a.r#type == 0 => Ok(a.f),
            Some(a) => Err(self.err(format!(
                "attribute '{name}' has type {}, expected FLOAT",
                a.r#type
            ))),
        }
    }
    pub(super) fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if a.r#type == attribute_type::INTS || a.r#type == 0 => {
                Ok(Some(a.ints.clone()))
            }
            Some(a) => Err(self.err(format!(
                "attribute '{name}' has type {}, expected INTS",
                a.r#type
            ))),
        }
    }
    pub(super) fn string(&self, name: &str, default: &str) -> Result<String> {
        match self.get(name) {
            None => Ok(default.into()),
            Some(a) if a.r#type == attribute_type::STRING || a.r#type == 0 => {
                Ok(String::from_utf8_lossy(&a.s).into_owned())
            }
            Some(a) => Err(self.err(format!(
                "attribute '{name}' has type {}, expected STRING",
                a.r#type
            ))),
        }
    }
    /// A pair of positive sizes (`kernel_shape`, `strides`, `dilations`).
    pub(super) fn pair(&self, name: &str, default: [usize; 2]) -> Result<[usize; 2]> {
        match self.ints(name)? {
            None => Ok(default),
            Some(v) => match v.as_slice() {
                [a, b] if *a >= 1 && *b >= 1 && *a <= 1 << 16 && *b <= 1 << 16 => {
                    Ok([*a as usize, *b as usize])
                }
                _ => Err(self.err(format!(
                    "attribute '{name}' is {v:?}; expected two sizes >= 1 (2-D only)"
                ))),
            },
        }
    }
    /// `pads` `[top, left, bottom, right]` as our `[top, bottom, left, right]`.
    /// `Shape`'s `start` and `end` over a rank-`r` shape (negative counts
    /// from the end, clamped): the range of dimensions it returns.
    pub(super) fn shape_range(&self, r: usize) -> Result<std::ops::Range<usize>> {
        self.only(&["start", "end"])?;
        let r = r as i64;
        let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
        let (a, b) = (clamp(self.int("start", 0)?), clamp(self.int("end", r)?));
        Ok(a..b.max(a))
    }

    pub(super) fn pads(&self) -> Result<[usize; 4]> {
        match self.ints("pads")? {
            None => Ok([0; 4]),
            Some(v) => match v.as_slice() {
                [t, l, b, r] if v.iter().all(|&p| (0..=1 << 16).contains(&p)) => {
                    Ok([*t as usize, *b as usize, *l as usize, *r as usize])
                }
                _ => Err(self.err(format!(
                    "attribute 'pads' is {v:?}; expected 4 non-negative values (2-D only)"
                ))),
            },
        }
    }
}

pub(super) fn node_name(n: &NodeProto) -> String {
    if !n.name.is_empty() {
        n.name.clone()
    } else {
        n.output.first().cloned().unwrap_or_default()
    }
}

pub(super) fn unsupported(path: &str, n: &NodeProto, msg: String) -> OnnxError {
    OnnxError::Unsupported {
        path: path.into(),
        node: node_name(n),
        op: n.op_type.clone(),
        msg,
    }
}
