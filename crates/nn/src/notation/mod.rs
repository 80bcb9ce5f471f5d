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
//! | `[M]DWk[xm][Ss][v\|s]` | DepthwiseConv2D, k x k (or k x m) per channel, depth multiplier M (default 1), ReLU |
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

mod syntax;

use crate::graph::{fresh_name, snake, INPUT};
use crate::kind::{Role, TokenContext};
use crate::layers::conv2d::parse_conv;
use crate::{
    Activation, BatchNormConfig, Conv2dConfig, DenseConfig, LayerSpec, ModelSpec, NnError, Node,
    Padding, Result,
};
use std::collections::HashSet;
use syntax::{err, BlockKind, Item};

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

pub(crate) fn parse_usize(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&v| v > 0)
}

/// Splits a trailing `S<digits>` stride off `rest`.
pub(crate) fn split_stride(rest: &str) -> Option<(&str, Option<usize>)> {
    match rest.find('S') {
        Some(i) => Some((&rest[..i], Some(parse_usize(&rest[i + 1..])?))),
        None => Some((rest, None)),
    }
}

/// Parses a window `k` (square) or `kxm` (k rows, m columns).
pub(crate) fn parse_kernel(kernel: &str) -> Option<(usize, usize)> {
    match kernel.split_once('x') {
        Some((a, b)) => Some((parse_usize(a)?, parse_usize(b)?)),
        None => parse_usize(kernel).map(|k| (k, k)),
    }
}

/// Splits a trailing `v` (valid) or `s` (same) off `rest`.
pub(crate) fn split_padding(rest: &str, default: Padding) -> (&str, Padding) {
    if let Some(r) = rest.strip_suffix('v') {
        (r, Padding::Valid)
    } else if let Some(r) = rest.strip_suffix('s') {
        (r, Padding::Same)
    } else {
        (rest, default)
    }
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

const EXPECTED: &str = "expected NCk (conv, e.g. 32C5, 32C5S2, 32C3v), DWk (depthwise conv, \
                        e.g. DW3, 2DW5S2), Pk (max-pool), Ak (avg-pool), GAP, GMP, BN, \
                        Dr (dropout, e.g. D0.4), SEr (squeeze-and-excitation, e.g. SE4), F or N (dense)";

/// A node of the model being built: `None` is the model's input.
type Ref = Option<usize>;

/// Builds the graph from the parsed items, checking every node's shape as it
/// is added so that errors point at the token that made it.
struct Lower<'a> {
    s: &'a str,
    opts: &'a NotationOptions,
    spec: ModelSpec,
    shapes: Vec<Vec<usize>>,
    names: Vec<String>,
    taken: HashSet<String>,
    /// The token range behind each node.
    spans: Vec<(usize, usize)>,
    /// Name every node (the notation has blocks, so nodes are referred to by name).
    named: bool,
    cur: Ref,
}

/// What the layers being lowered are part of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// The classic chain: `NCk-BN` is conv (with its activation), then batch norm.
    Chain,
    /// Inside `R[...]` or `I[...]`: `NCk-BN` is conv (no bias) -> BN -> activation,
    /// and convs and pools default to `same` padding.
    Block,
}

impl<'a> Lower<'a> {
    fn shape(&self, r: Ref) -> &[usize] {
        match r {
            None => &self.spec.input_shape,
            Some(i) => &self.shapes[i],
        }
    }

    fn name(&self, r: Ref) -> String {
        match r {
            None => INPUT.to_string(),
            Some(i) => self.names[i].clone(),
        }
    }

    /// Adds `layer` reading `inputs`; the new node becomes the current one.
    fn push(&mut self, layer: LayerSpec, inputs: &[Ref], span: (usize, usize)) -> Result<Ref> {
        let ins: Vec<&[usize]> = inputs.iter().map(|&r| self.shape(r)).collect();
        let out = layer
            .output_shape_of(&ins)
            .map_err(|e| err(self.s, span.0, span.1, short(e)))?;
        let name = fresh_name(&snake(layer.kind()), &self.taken);
        self.taken.insert(name.clone());
        let prev: Ref = self.spec.layers.len().checked_sub(1);
        let node = if inputs == [prev] {
            Node {
                name: self.named.then(|| name.clone()),
                inputs: None,
                trainable: true,
                layer,
            }
        } else {
            Node {
                name: Some(name.clone()),
                inputs: Some(inputs.iter().map(|&r| self.name(r)).collect()),
                trainable: true,
                layer,
            }
        };
        self.spec.layers.push(node);
        self.shapes.push(out);
        self.names.push(name);
        self.spans.push(span);
        self.cur = Some(self.shapes.len() - 1);
        Ok(self.cur)
    }

    fn chain(&mut self, layer: LayerSpec, span: (usize, usize)) -> Result<Ref> {
        let cur = self.cur;
        self.push(layer, &[cur], span)
    }

    /// Lowers a sequence. In a residual block's main path (`defer`), the
    /// activation of a final conv (or conv-BN) is left out and returned, to
    /// follow the addition.
    fn seq(&mut self, items: &[Item<'_>], ctx: Ctx, top: bool, defer: bool) -> Result<bool> {
        let mut deferred = false;
        let mut k = 0;
        while k < items.len() {
            let item = &items[k];
            let is_last = k + 1 == items.len();
            match item {
                Item::Atom { text, start } => {
                    let span = (*start, text.len());
                    let next_bn = matches!(items.get(k + 1), Some(Item::Atom { text: "BN", .. }));
                    if ctx == Ctx::Block && text.contains('C') && !text.starts_with('D') {
                        let mut conv = self.conv(text, span, ctx)?;
                        let ends = if next_bn {
                            k + 2 == items.len()
                        } else {
                            is_last
                        };
                        let hold = defer && ends;
                        let act = conv.activation;
                        conv.activation = Activation::Linear;
                        if next_bn {
                            conv.use_bias = false;
                        }
                        self.chain(LayerSpec::Conv2D(conv), span)?;
                        if next_bn {
                            let (bs, bl) = items[k + 1].span();
                            self.chain(
                                LayerSpec::BatchNormalization(BatchNormConfig::new()),
                                (bs, bl),
                            )?;
                            k += 1;
                        }
                        if hold {
                            deferred = true;
                        } else if act != Activation::Linear {
                            self.chain(LayerSpec::Activation { activation: act }, span)?;
                        }
                    } else {
                        let output = top && is_last;
                        self.atom(text, span, ctx, output)?;
                    }
                }
                Item::Block {
                    kind,
                    branches,
                    start,
                    len,
                } => {
                    let span = (*start, *len);
                    match kind {
                        BlockKind::Group => {
                            // A group is only brackets: its last layer is the
                            // net's output when the group ends the net.
                            let d =
                                self.seq(&branches[0], ctx, top && is_last, defer && is_last)?;
                            deferred |= d;
                        }
                        BlockKind::Residual => self.residual(&branches[0], span)?,
                        BlockKind::Inception => self.inception(branches, span)?,
                    }
                }
            }
            k += 1;
        }
        Ok(deferred)
    }

    fn residual(&mut self, main: &[Item<'_>], span: (usize, usize)) -> Result<()> {
        let x = self.cur;
        self.need_image("R[...]", span)?;
        let deferred = self.seq(main, Ctx::Block, false, true)?;
        let y = self.cur;
        let (xs, ys) = (self.shape(x).to_vec(), self.shape(y).to_vec());
        let has_bn = main
            .iter()
            .any(|i| matches!(i, Item::Atom { text: "BN", .. }));
        let shortcut = if xs == ys || ys.len() != 3 {
            x
        } else {
            // Projection: a 1x1 conv to the main path's channels, with the
            // stride that brings the input to its size (He et al. 2016, option B).
            let stride = |a: usize, b: usize| a.div_ceil(b).max(1);
            let mut c = Conv2dConfig::new(ys[2], 1).with_padding(Padding::Valid);
            c.strides = [stride(xs[0], ys[0]), stride(xs[1], ys[1])];
            c.use_bias = !has_bn;
            let p = self.push(LayerSpec::Conv2D(c), &[x], span)?;
            if has_bn {
                self.push(
                    LayerSpec::BatchNormalization(BatchNormConfig::new()),
                    &[p],
                    span,
                )?
            } else {
                p
            }
        };
        self.push(LayerSpec::Add, &[y, shortcut], span)?;
        if deferred || self.opts.activation != Activation::Linear {
            self.chain(
                LayerSpec::Activation {
                    activation: self.opts.activation,
                },
                span,
            )?;
        }
        Ok(())
    }

    fn inception(&mut self, branches: &[Vec<Item<'_>>], span: (usize, usize)) -> Result<()> {
        if branches.len() < 2 {
            return Err(err(
                self.s,
                span.0,
                span.1,
                "I[...] needs at least two branches separated by '|'",
            ));
        }
        let x = self.cur;
        self.need_image("I[...]", span)?;
        let mut outs = Vec::with_capacity(branches.len());
        for b in branches {
            self.cur = x;
            self.seq(b, Ctx::Block, false, false)?;
            outs.push(self.cur);
        }
        self.push(LayerSpec::Concatenate, &outs, span)?;
        Ok(())
    }

    fn need_image(&self, what: &str, span: (usize, usize)) -> Result<()> {
        if self.shape(self.cur).len() != 3 {
            return Err(err(
                self.s,
                span.0,
                span.1,
                format!("'{what}' needs an image input, but the layers before it are flat"),
            ));
        }
        Ok(())
    }

    fn conv(&self, t: &str, span: (usize, usize), ctx: Ctx) -> Result<Conv2dConfig> {
        let default = match ctx {
            Ctx::Chain => self.opts.padding,
            Ctx::Block => Padding::Same,
        };
        let c = parse_conv(t, default, self.opts.activation).ok_or_else(|| {
            err(
                self.s,
                span.0,
                span.1,
                format!("'{t}': a conv is NCk[xm][Ss][v|s], e.g. 32C5, 32C5S2, 32C3v"),
            )
        })?;
        self.need_image(t, span)?;
        Ok(c)
    }

    /// `SEr`: squeeze-and-excitation (Hu et al. 2018, EfficientNet's
    /// blocks): global average pooling -> Dense(C/r, the notation's
    /// activation) -> Dense(C, sigmoid) -> the map times that gate.
    fn squeeze_excite(&mut self, r: usize, span: (usize, usize)) -> Result<()> {
        self.need_image("SEr", span)?;
        let x = self.cur;
        let c = self.shape(x)[2];
        if r == 0 || r > c {
            let msg = format!("SE{r}: the ratio must be 1 to the map's {c} channels");
            return Err(err(self.s, span.0, span.1, msg));
        }
        let dense = |u, a| LayerSpec::Dense(DenseConfig::new(u).with_activation(a));
        self.chain(LayerSpec::GlobalAveragePooling2D, span)?;
        self.chain(dense(c / r, self.opts.activation), span)?;
        let gate = self.chain(dense(c, Activation::Sigmoid), span)?;
        self.push(LayerSpec::Multiply, &[x, gate], span)?;
        Ok(())
    }

    fn atom(&mut self, t: &str, span: (usize, usize), ctx: Ctx, output: bool) -> Result<()> {
        let bad = |msg: String| err(self.s, span.0, span.1, msg);
        if let Some(r) = t.strip_prefix("SE") {
            let r = parse_usize(r)
                .ok_or_else(|| bad(format!("'{t}': squeeze-and-excitation is SEr, e.g. SE4")))?;
            return self.squeeze_excite(r, span);
        }
        let pad = |chain: Padding| match ctx {
            Ctx::Chain => chain,
            Ctx::Block => Padding::Same,
        };
        let tokens = TokenContext {
            conv_padding: pad(self.opts.padding),
            pool_padding: pad(Padding::Valid),
            activation: self.opts.activation,
            output,
        };
        let spec = match crate::spec::parse_token(t, &tokens) {
            Some(Ok(spec)) => spec,
            Some(Err(why)) => return Err(bad(why)),
            None => return Err(bad(format!("unknown layer '{t}': {EXPECTED}"))),
        };
        let kind = spec.layer_kind();
        if kind.window().is_some() {
            self.need_image(t, span)?;
        }
        // A product after an image flattens it first (Keras's Flatten).
        if kind.role() == Role::Product && self.shape(self.cur).len() == 3 {
            self.chain(LayerSpec::Flatten, span)?;
        }
        self.chain(spec, span)?;
        Ok(())
    }
}

/// The message of a shape error without the "layer i (Kind):" prefix that
/// the caret makes redundant.
fn short(e: NnError) -> String {
    match e {
        NnError::Shape { msg, .. } => msg,
        other => other.to_string(),
    }
}

/// Parses a notation into a model description.
pub fn parse_notation(notation: &str, opts: &NotationOptions) -> Result<ModelSpec> {
    let s = notation.trim();
    let items = syntax::parse(s)?;
    let mut idx = 0;
    let mut input = opts.input.clone();
    let mut input_len = s.len();
    // A leading input size: HxWxC always; a plain square number only when
    // more items follow (a lone number is a one-layer model).
    if items.len() > 1 {
        if let Item::Atom { text, .. } = &items[0] {
            if let Some(shape) = parse_input(text) {
                let next_is_dense =
                    matches!(&items[1], Item::Atom { text, .. } if parse_usize(text).is_some());
                if text.contains('x') || !next_is_dense || items.len() > 2 {
                    input = Some(shape);
                    input_len = text.len();
                    idx = 1;
                }
            }
        }
    }
    let input = input.ok_or_else(|| {
        err(
            s,
            0,
            items[0].span().1,
            "no input size: start the notation with one (e.g. 784- or 28x28x1-) or pass --input",
        )
    })?;
    let mut low = Lower {
        s,
        opts,
        spec: ModelSpec::new(&input),
        shapes: Vec::new(),
        names: Vec::new(),
        taken: [INPUT.to_string()].into_iter().collect(),
        spans: Vec::new(),
        named: items[idx..].iter().any(has_block),
        cur: None,
    };
    // An input size too large to hold points at the input.
    if let Err(e) = convnet_tensor::shape::checked_product(&input, "input shape") {
        return Err(err(s, 0, input_len, e.to_string()));
    }
    low.seq(&items[idx..], Ctx::Chain, true, false)?;
    let spec = low.spec;
    if spec.layers.is_empty() {
        return Err(err(s, 0, s.len(), "no layers"));
    }
    // Whole-model checks (the parameter total), pointing at the layer's token.
    match spec.checked() {
        Ok(_) => Ok(spec),
        Err(NnError::Shape { index, msg, .. }) => {
            let (start, len) = low.spans[index];
            Err(err(s, start, len, msg))
        }
        Err(e) => Err(err(s, 0, input_len, e.to_string())),
    }
}

/// True for `R[...]` and `I[...]` blocks and `SEr` (a merge), anywhere inside the item.
fn has_block(item: &Item<'_>) -> bool {
    match item {
        Item::Atom { text, .. } => text.starts_with("SE"),
        Item::Block { kind, branches, .. } => {
            *kind != BlockKind::Group || branches.iter().flatten().any(has_block)
        }
    }
}

/// Renders a model description back into the notation (inverse of
/// [`parse_notation`] for models it can express), with the input size first.
pub fn to_notation(seq: &ModelSpec) -> Option<String> {
    if !seq.wiring().ok()?.is_chain() {
        return None;
    }
    let mut parts = vec![seq
        .input_shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")];
    for node in &seq.layers {
        parts.push(node.layer.layer_kind().notation()?);
    }
    Some(parts.join("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ModelSpec> {
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
        match &m.layers.last().unwrap().layer {
            LayerSpec::Dense(d) => assert_eq!(d.activation, Activation::Sigmoid),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_last_layer_is_the_output_inside_brackets_too() {
        // Brackets only group: `[128-10]` at the end ends in the softmax
        // output, `[1]x2` in a sigmoid, as their flat spellings do (the
        // property test found `[1]x2` ending in a ReLU).
        let last = |s: &str| match &parse(s).unwrap().layers.last().unwrap().layer {
            LayerSpec::Dense(d) => d.activation,
            other => panic!("{other:?}"),
        };
        for (grouped, flat) in [
            ("32C5-P2-[128-10]", "32C5-P2-128-10"),
            ("[1]x2", "F-1-1"),
            ("[[8C3-P2]-[16-10]]", "8C3-P2-16-10"),
        ] {
            assert_eq!(last(grouped), last(flat), "{grouped}");
        }
        assert_eq!(last("[1]x2"), Activation::Sigmoid);
        assert_eq!(last("32C5-P2-[128-10]"), Activation::Softmax);
        // A group that is not last keeps ReLU inside.
        let m = parse("[16]-10").unwrap();
        match &m.layers[1].layer {
            LayerSpec::Dense(d) => assert_eq!(d.activation, Activation::Relu),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn squeeze_and_excitation_gates_the_map_it_follows() {
        let m = parse("8x8x3-16C3-SE4-GAP-10").unwrap();
        let kinds: Vec<&str> = m.layers.iter().map(|n| n.layer.kind()).collect();
        assert_eq!(
            kinds,
            [
                "Conv2D",
                "GlobalAveragePooling2D",
                "Dense",
                "Dense",
                "Multiply",
                "GlobalAveragePooling2D",
                "Dense"
            ]
        );
        match (&m.layers[2].layer, &m.layers[3].layer) {
            (LayerSpec::Dense(a), LayerSpec::Dense(b)) => {
                assert_eq!((a.units, a.activation), (4, Activation::Relu));
                assert_eq!((b.units, b.activation), (16, Activation::Sigmoid));
            }
            other => panic!("{other:?}"),
        }
        let names = m.wiring().unwrap().names;
        assert_eq!(
            m.layers[4].inputs.as_deref(),
            Some(&[names[0].clone(), names[3].clone()][..])
        );
        assert_eq!(m.output_shapes().unwrap()[4], vec![8, 8, 16]);
        // In a residual block too, and with the notation's activation.
        let opts = NotationOptions::default().with_activation(Activation::Swish);
        let r = parse_notation("8x8x8-R[8C3-BN-SE2-8C3-BN]-GAP-10", &opts).unwrap();
        assert!(r.layers.iter().any(|n| matches!(&n.layer,
            LayerSpec::Dense(d) if d.units == 4 && d.activation == Activation::Swish)));
        for (bad, msg) in [
            (
                "8x8x3-16C3-SE32-10",
                "the ratio must be 1 to the map's 16 channels",
            ),
            ("8x8x3-16C3-SE0-10", "squeeze-and-excitation is SEr"),
            ("8x8x3-16C3-SEx-10", "squeeze-and-excitation is SEr"),
            ("8x8x3-F-SE4-10", "SEr"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(msg), "{bad}: {e}");
        }
    }

    /// A residual block that changes the channels at stride 1 projects its
    /// shortcut too (a 1x1 conv, stride 1); the other projection tests all
    /// change the stride as well, so a rule that projected on a change of
    /// size only passed them.
    #[test]
    fn a_channel_change_alone_projects_the_shortcut() {
        let m = parse("8x8x3-R[16C3-16C3]-GAP-10").unwrap();
        let convs: Vec<&Conv2dConfig> = m
            .layers
            .iter()
            .filter_map(|n| match &n.layer {
                LayerSpec::Conv2D(c) => Some(c),
                _ => None,
            })
            .collect();
        assert_eq!(convs.len(), 3, "{m:?}");
        let proj = convs[2];
        assert_eq!(
            (proj.filters, proj.kernel_size, proj.strides),
            (16, [1, 1], [1, 1])
        );
        assert_eq!(m.output_shapes().unwrap().last().unwrap(), &vec![10]);
        // The same channels: the input itself is the shortcut.
        let m = parse("8x8x16-R[16C3-16C3]-GAP-10").unwrap();
        let n = m
            .layers
            .iter()
            .filter(|n| matches!(n.layer, LayerSpec::Conv2D(_)))
            .count();
        assert_eq!(n, 2);
    }

    #[test]
    fn deep_nesting_and_exploding_repeats_get_a_caret_error() {
        let deep = format!("{}10{}", "[".repeat(30_000), "]".repeat(30_000));
        let e = parse(&deep).unwrap_err().to_string();
        assert!(e.contains("brackets nested more than 100 deep"), "{e}");
        assert!(e.contains('^'), "{e}");
        // 100 levels are fine.
        let ok = format!("{}10{}", "[".repeat(100), "]".repeat(100));
        parse(&ok).unwrap();
        let e = parse("[[[10]x1000]x1000]x1000").unwrap_err().to_string();
        assert!(e.contains("more than 100000 layers"), "{e}");
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
