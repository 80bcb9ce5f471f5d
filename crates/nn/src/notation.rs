//! The compact notation of CNN-design experiments, e.g.
//! `32C5-P2-64C5-P2-128-D0.4-10` or
//! `784-[32C3v-BN-32C3v-BN-32C5S2-BN-D0.4]-128-10`.
//!
//! Tokens are separated by `-`; brackets only group and must balance.
//!
//! | token | layer |
//! |---|---|
//! | `NCk`, `NCkxm` | Conv2D, N filters of k x k (or k x m), ReLU |
//! | `...Ss` | stride s, e.g. `32C5S2` |
//! | `...v` / `...s` | `valid` / `same` padding for this conv (default: the parser's, `same` unless set) |
//! | `Pk`, `PkSs` | MaxPooling2D k x k, stride s (default k) |
//! | `Ak`, `AkSs` | AveragePooling2D |
//! | `GAP`, `GMP` | global average / max pooling |
//! | `BN` | BatchNormalization |
//! | `Dr` | Dropout with rate r, e.g. `D0.4` |
//! | `F` | Flatten (inserted automatically before the first dense layer) |
//! | `N` | Dense with N units, ReLU; the last one is the output: softmax, or sigmoid when N = 1 |
//! | first token `N` (a square, e.g. `784`) or `HxWxC` | the input size (`784` = 28x28x1) |
//!
//! Errors point at the offending token.

use crate::{
    Activation, BatchNormConfig, Conv2dConfig, DenseConfig, DropoutConfig, LayerSpec, NnError,
    Padding, PoolConfig, Result, Sequential,
};

/// Parser settings.
#[derive(Clone, Debug)]
pub struct NotationOptions {
    /// Padding of conv tokens without a `v`/`s` suffix.
    pub padding: Padding,
    /// Activation of convs and hidden dense layers.
    pub activation: Activation,
    /// Input shape used when the notation does not give one.
    pub input: Option<Vec<usize>>,
}

impl Default for NotationOptions {
    fn default() -> Self {
        NotationOptions {
            padding: Padding::Same,
            activation: Activation::Relu,
            input: None,
        }
    }
}

impl NotationOptions {
    /// Default padding of conv tokens.
    pub fn with_padding(mut self, p: Padding) -> Self {
        self.padding = p;
        self
    }
    /// Input shape when the notation has none.
    pub fn with_input(mut self, shape: &[usize]) -> Self {
        self.input = Some(shape.to_vec());
        self
    }
    /// Activation of hidden layers.
    pub fn with_activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }
}

/// One token with its byte range in the notation.
struct Token<'a> {
    text: &'a str,
    start: usize,
}

fn err(notation: &str, start: usize, len: usize, msg: impl Into<String>) -> NnError {
    NnError::Notation {
        notation: notation.to_string(),
        start,
        len: len.max(1),
        msg: msg.into(),
    }
}

/// Splits on `-`, strips brackets (checking they balance), keeps positions.
fn tokenize(s: &str) -> Result<Vec<Token<'_>>> {
    let mut tokens = Vec::new();
    let mut depth = 0i32;
    let mut pos = 0;
    for part in s.split('-') {
        let mut text = part;
        let mut start = pos;
        while let Some(rest) = text.strip_prefix('[') {
            depth += 1;
            text = rest;
            start += 1;
        }
        let mut closing = 0;
        while let Some(rest) = text.strip_suffix(']') {
            closing += 1;
            text = rest;
        }
        if text.contains('[') || text.contains(']') {
            return Err(err(
                s,
                start,
                text.len(),
                "brackets may only wrap whole tokens",
            ));
        }
        if text.is_empty() {
            return Err(err(
                s,
                pos,
                part.len(),
                "empty token (two '-' in a row, or a trailing '-')",
            ));
        }
        depth -= closing;
        if depth < 0 {
            return Err(err(s, start + text.len(), 1, "']' without a matching '['"));
        }
        tokens.push(Token { text, start });
        pos += part.len() + 1;
    }
    if depth != 0 {
        return Err(err(
            s,
            0,
            s.len(),
            "unbalanced brackets: a '[' is never closed",
        ));
    }
    Ok(tokens)
}

fn parse_usize(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&v| v > 0)
}

/// Splits a trailing `S<digits>` stride off `rest`.
fn split_stride(rest: &str) -> Option<(&str, Option<usize>)> {
    match rest.find('S') {
        Some(i) => Some((&rest[..i], Some(parse_usize(&rest[i + 1..])?))),
        None => Some((rest, None)),
    }
}

/// Parses `NCk[xm][Ss][v|s]`.
fn parse_conv(t: &str, opts: &NotationOptions) -> Option<Conv2dConfig> {
    let (filters, rest) = t.split_once('C')?;
    let filters = parse_usize(filters)?;
    let (rest, padding) = if let Some(r) = rest.strip_suffix('v') {
        (r, Padding::Valid)
    } else if let Some(r) = rest.strip_suffix('s') {
        (r, Padding::Same)
    } else {
        (rest, opts.padding)
    };
    let (kernel, stride) = split_stride(rest)?;
    let (kh, kw) = match kernel.split_once('x') {
        Some((a, b)) => (parse_usize(a)?, parse_usize(b)?),
        None => {
            let k = parse_usize(kernel)?;
            (k, k)
        }
    };
    Some(
        Conv2dConfig::new(filters, kh)
            .with_kernel(kh, kw)
            .with_stride(stride.unwrap_or(1))
            .with_padding(padding)
            .with_activation(opts.activation),
    )
}

/// Parses `Pk[Ss]` / `Ak[Ss]` after the letter.
fn parse_pool(rest: &str) -> Option<PoolConfig> {
    let (k, s) = split_stride(rest)?;
    let k = parse_usize(k)?;
    let mut p = PoolConfig::new(k);
    // A stride equal to the pool size is the default: store it as such so
    // that equal models compare equal (found by the notation fuzzer).
    if let Some(s) = s.filter(|&s| s != k) {
        p = p.with_stride(s);
    }
    Some(p)
}

/// Parses an input size: `784` (a square: 28x28x1), `HxW` or `HxWxC`.
fn parse_input(t: &str) -> Option<Vec<usize>> {
    if t.contains('x') {
        let dims: Option<Vec<usize>> = t.split('x').map(parse_usize).collect();
        let dims = dims?;
        return match dims.len() {
            2 => Some(vec![dims[0], dims[1], 1]),
            3 => Some(dims),
            _ => None,
        };
    }
    let n = parse_usize(t)?;
    let r = (n as f64).sqrt().round() as usize;
    // checked: near usize::MAX the rounded root squared overflows (found by
    // the notation fuzzer with overflow checks on).
    (r.checked_mul(r) == Some(n) && r > 1).then(|| vec![r, r, 1])
}

const EXPECTED: &str = "expected NCk (conv, e.g. 32C5, 32C5S2, 32C3v), Pk (max-pool), \
                        Ak (avg-pool), GAP, GMP, BN, Dr (dropout, e.g. D0.4), F or N (dense)";

/// Parses a notation into a model description.
pub fn parse_notation(notation: &str, opts: &NotationOptions) -> Result<Sequential> {
    let s = notation.trim();
    let tokens = tokenize(s)?;
    let mut idx = 0;
    let mut input = opts.input.clone();
    // A leading input size: HxWxC always; a plain square number only when
    // more tokens follow (a lone number is a one-layer model).
    if tokens.len() > 1 {
        if let Some(shape) = parse_input(tokens[0].text) {
            let next = tokens[1].text;
            let next_is_dense = parse_usize(next).is_some();
            if tokens[0].text.contains('x') || !next_is_dense || tokens.len() > 2 {
                input = Some(shape);
                idx = 1;
            }
        }
    }
    let input = input.ok_or_else(|| {
        err(
            s,
            0,
            tokens.first().map_or(1, |t| t.text.len()),
            "no input size: start the notation with one (e.g. 784- or 28x28x1-) or pass --input",
        )
    })?;
    let mut seq = Sequential::new(&input);
    let mut image = input.len() == 3;
    let last_dense = tokens.iter().rposition(|t| parse_usize(t.text).is_some());
    for (i, tok) in tokens.iter().enumerate().skip(idx) {
        let t = tok.text;
        let bad = |msg: String| err(s, tok.start, t.len(), msg);
        let spec = if let Some(units) = parse_usize(t) {
            if image {
                seq = seq.flatten();
                image = false;
            }
            let act = if Some(i) == last_dense && i + 1 == tokens.len() {
                if units == 1 {
                    Activation::Sigmoid
                } else {
                    Activation::Softmax
                }
            } else {
                opts.activation
            };
            LayerSpec::Dense(DenseConfig::new(units).with_activation(act))
        } else if t == "BN" {
            LayerSpec::BatchNormalization(BatchNormConfig::new())
        } else if t == "F" {
            image = false;
            LayerSpec::Flatten
        } else if t == "GAP" || t == "GMP" {
            image = false;
            if t == "GAP" {
                LayerSpec::GlobalAveragePooling2D
            } else {
                LayerSpec::GlobalMaxPooling2D
            }
        } else if let Some(rate) = t.strip_prefix('D') {
            let r: f32 = rate
                .parse()
                .map_err(|_| bad(format!("'{t}': dropout needs a rate, e.g. D0.4")))?;
            if !(0.0..1.0).contains(&r) {
                return Err(bad(format!("'{t}': dropout rate must be in [0, 1)")));
            }
            LayerSpec::Dropout(DropoutConfig::new(r))
        } else if t.contains('C') {
            LayerSpec::Conv2D(parse_conv(t, opts).ok_or_else(|| {
                bad(format!(
                    "'{t}': a conv is NCk[xm][Ss][v|s], e.g. 32C5, 32C5S2, 32C3v"
                ))
            })?)
        } else if let Some(rest) = t.strip_prefix('P') {
            LayerSpec::MaxPooling2D(
                parse_pool(rest)
                    .ok_or_else(|| bad(format!("'{t}': a max-pool is Pk[Ss], e.g. P2")))?,
            )
        } else if let Some(rest) = t.strip_prefix('A') {
            LayerSpec::AveragePooling2D(
                parse_pool(rest)
                    .ok_or_else(|| bad(format!("'{t}': an avg-pool is Ak[Ss], e.g. A2")))?,
            )
        } else {
            return Err(bad(format!("unknown layer '{t}': {EXPECTED}")));
        };
        if !image
            && matches!(
                spec,
                LayerSpec::Conv2D(_) | LayerSpec::MaxPooling2D(_) | LayerSpec::AveragePooling2D(_)
            )
        {
            return Err(bad(format!(
                "'{t}' needs an image input, but the layers before it are flat"
            )));
        }
        seq = seq.add(spec);
    }
    if seq.layers.is_empty() {
        return Err(err(s, 0, s.len(), "no layers"));
    }
    // Check the shapes now, pointing at the token of the first bad layer.
    if let Err(NnError::Shape { index, msg, .. }) = seq.output_shapes() {
        let mut li = 0;
        for tok in tokens.iter().skip(idx) {
            // Auto-inserted Flatten layers have no token: skip them.
            while matches!(seq.layers.get(li), Some(LayerSpec::Flatten)) && tok.text != "F" {
                li += 1;
            }
            if li == index {
                return Err(err(s, tok.start, tok.text.len(), msg));
            }
            li += 1;
        }
        return Err(err(s, 0, s.len(), msg));
    }
    // Any other failure (an input size too large to hold) points at the input.
    if let Err(e) = seq.output_shapes() {
        let len = if idx == 1 {
            tokens[0].text.len()
        } else {
            s.len()
        };
        return Err(err(s, 0, len, e.to_string()));
    }
    Ok(seq)
}

/// Renders a model description back into the notation (inverse of
/// [`parse_notation`] for models it can express), with the input size first.
pub fn to_notation(seq: &Sequential) -> Option<String> {
    let mut parts = vec![seq
        .input_shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")];
    for l in &seq.layers {
        parts.push(match l {
            LayerSpec::Conv2D(c) => {
                let mut t = format!("{}C{}", c.filters, c.kernel_size[0]);
                if c.kernel_size[1] != c.kernel_size[0] {
                    t.push_str(&format!("x{}", c.kernel_size[1]));
                }
                if c.strides[0] != c.strides[1] || c.dilation_rate != [1, 1] {
                    return None;
                }
                if c.strides[0] != 1 {
                    t.push_str(&format!("S{}", c.strides[0]));
                }
                t.push(if c.padding == Padding::Valid {
                    'v'
                } else {
                    's'
                });
                t
            }
            LayerSpec::MaxPooling2D(p) | LayerSpec::AveragePooling2D(p) => {
                let letter = if matches!(l, LayerSpec::MaxPooling2D(_)) {
                    'P'
                } else {
                    'A'
                };
                if p.pool_size[0] != p.pool_size[1] || p.padding != Padding::Valid {
                    return None;
                }
                let mut t = format!("{letter}{}", p.pool_size[0]);
                if let Some(s) = p.strides {
                    if s[0] != p.pool_size[0] {
                        t.push_str(&format!("S{}", s[0]));
                    }
                }
                t
            }
            LayerSpec::BatchNormalization(_) => "BN".into(),
            LayerSpec::Dropout(d) => format!("D{}", d.rate),
            LayerSpec::Flatten => "F".into(),
            LayerSpec::GlobalAveragePooling2D => "GAP".into(),
            LayerSpec::GlobalMaxPooling2D => "GMP".into(),
            LayerSpec::Dense(d) => d.units.to_string(),
            LayerSpec::Activation { .. } => return None,
        });
    }
    Some(parts.join("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Sequential> {
        parse_notation(s, &NotationOptions::default().with_input(&[28, 28, 1]))
    }

    #[test]
    fn classic_nets_parse_with_keras_counts() {
        let m = parse("32C5-P2-64C5-P2-128-D0.4-10").unwrap();
        assert_eq!(m.summary().unwrap().total(), 454_922);
        let m = parse("784-[32C3v-BN-32C3v-BN-32C5S2-BN-D0.4]-[64C3v-BN-64C3v-BN-64C5S2-BN-D0.4]-128C4v-BN-F-D0.4-10").unwrap();
        let s = m.summary().unwrap();
        assert_eq!((s.total(), s.non_trainable), (327_242, 832));
        let m = parse("32C3-32C3-32C5S2").unwrap();
        assert_eq!(m.output_shape().unwrap(), vec![14, 14, 32]);
        let m = parse_notation("128x128x3-32C3-P2-64-1", &NotationOptions::default()).unwrap();
        assert_eq!(m.input_shape, vec![128, 128, 3]);
        match m.layers.last().unwrap() {
            LayerSpec::Dense(d) => assert_eq!(d.activation, Activation::Sigmoid),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_point_at_the_token() {
        let e = parse("32C5-P2-X5-10").unwrap_err().to_string();
        assert!(e.contains("unknown layer 'X5'"), "{e}");
        assert!(
            e.contains("  32C5-P2-X5-10\n          ^^\n")
                || e.ends_with("  32C5-P2-X5-10\n          ^^"),
            "{e}"
        );
        let e = parse("32C5-D1.5-10").unwrap_err().to_string();
        assert!(e.contains("'D1.5'") && e.ends_with("\n       ^^^^"), "{e}");
        let e = parse("[32C5-P2-10").unwrap_err().to_string();
        assert!(e.contains("unbalanced"), "{e}");
        let e = parse("32C5--10").unwrap_err().to_string();
        assert!(e.contains("empty token"), "{e}");
        let e = parse("32C29v-10").unwrap_err().to_string();
        assert!(
            e.contains("smaller than the window") && e.contains("^^^^^^"),
            "{e}"
        );
        let e = parse("128-32C3-10").unwrap_err().to_string();
        assert!(e.contains("needs an image input"), "{e}");
        // A regression input of the notation fuzzer: an input too large to hold.
        let e = parse("17043000000015892x100572x1-8C3-10")
            .unwrap_err()
            .to_string();
        assert!(e.contains("more elements than fit in memory"), "{e}");
        let e = parse_notation("32C5-10", &NotationOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no input size"), "{e}");
        // A regression input of the notation fuzzer (corpus replay in debug):
        // each layer's count fits but their total overflowed in `summary`.
        let e = parse("F-2147483648-2147483648-2147483648-2147483648-2147483648-10")
            .unwrap_err()
            .to_string();
        assert!(e.contains("parameters do not fit in memory"), "{e}");
        // Another: a leading "input size" whose rounded square root squared
        // overflowed. Not a square, so it is read as a dense layer.
        assert!(parse_notation("18446744073709551614-10", &NotationOptions::default()).is_err());
    }

    #[test]
    fn round_trips_through_to_notation() {
        // "A1S1\n\n\x0b" is a regression input of the notation fuzzer.
        for s in [
            "A1S1\n\n\x0b",
            "P2S2-10",
            "28x28x1-32C5s-P2-64C5S2v-A2S1-BN-F-D0.4-128-10",
            "28x28x1-32C3s-GAP-1",
        ] {
            let m = parse(s).unwrap();
            let text = to_notation(&m).unwrap();
            assert_eq!(parse(&text).unwrap(), m, "{s} -> {text}");
        }
    }
}
