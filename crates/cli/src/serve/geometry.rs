//! Receptive fields: which input pixels one output pixel of a node sees.
//!
//! Walking back from node `i` along first inputs, a window layer (conv,
//! pooling) with kernel `k`, stride `s`, dilation `d` and padding before
//! `p` maps output rows `[a, b]` to input rows
//!
//! ```text
//! [a * s - p, b * s - p + (k - 1) * d]
//! ```
//!
//! (likewise columns); zero padding shifts by its top/left amount; every
//! other layer with an image output keeps the range. The result is
//! clamped to the input image. A node without a spatial output (after
//! Flatten) sees the whole image.

use convnet_nn::{ModelSpec, Role, Source};
use convnet_tensor::shape::axis_geometry;

/// `(top, bottom, left, right)`, inclusive, in input pixels.
pub type Window = (usize, usize, usize, usize);

/// The input window seen by pixel `(y, x)` of node `node`'s output; `None`
/// when the node has no spatial output or the pixel is outside it.
#[cfg(test)]
pub fn receptive_field(spec: &ModelSpec, node: usize, y: usize, x: usize) -> Option<Window> {
    receptive_fields(spec, node, y, x)?
        .into_iter()
        .find_map(|(n, w)| n.is_none().then_some(w))
}

/// The windows pixel `(y, x)` of node `node` sees in every earlier node on
/// the path of first inputs, nearest first, each clamped to that node's
/// output; the input's (node `None`) last.
pub fn receptive_fields(
    spec: &ModelSpec,
    node: usize,
    y: usize,
    x: usize,
) -> Option<Vec<(Option<usize>, Window)>> {
    let (wiring, shapes) = spec.checked().ok()?;
    let out = shapes.get(node)?;
    if out.len() != 3 || y >= out[0] || x >= out[1] {
        return None;
    }
    // Signed ranges: padding can reach outside the image.
    let (mut r, mut c) = ((y as i64, y as i64), (x as i64, x as i64));
    let mut found = Vec::new();
    let mut i = Some(node);
    while let Some(n) = i {
        let src = wiring.inputs[n].first().copied().unwrap_or(Source::Input);
        let input: &[usize] = match src {
            Source::Input => &spec.input_shape,
            Source::Node(j) => &shapes[j],
        };
        if input.len() != 3 {
            return None;
        }
        let kind = spec.layers[n].layer.layer_kind();
        if let Some(convnet_nn::Window {
            kernel: k,
            strides: s,
            dilation: d,
            padding: pad,
            ceil_mode: ceil,
        }) = kind.window()
        {
            for (axis, range) in [(0, &mut r), (1, &mut c)] {
                let g = axis_geometry(input[axis], k[axis], s[axis], d[axis], pad.axis(axis), ceil)
                    .ok()?;
                let (s, p, reach) = (
                    s[axis] as i64,
                    g.pad_before as i64,
                    ((k[axis] - 1) * d[axis]) as i64,
                );
                *range = (range.0 * s - p, range.1 * s - p + reach);
            }
        } else if let Some([top, left]) = kind.offset() {
            r = (r.0 - top as i64, r.1 - top as i64);
            c = (c.0 - left as i64, c.1 - left as i64);
        } else if kind.role() == Role::GlobalPooling {
            return None;
        }
        // The range is now in the source's pixels.
        let [h, w] = [input[0] as i64, input[1] as i64];
        let clamp = |v: i64, hi: i64| v.clamp(0, hi - 1) as usize;
        let window = (clamp(r.0, h), clamp(r.1, h), clamp(c.0, w), clamp(c.1, w));
        i = match src {
            Source::Input => None,
            Source::Node(j) => Some(j),
        };
        found.push((i, window));
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use convnet_nn::{parse_notation, NotationOptions};

    fn spec(n: &str) -> ModelSpec {
        parse_notation(n, &NotationOptions::default()).unwrap()
    }

    #[test]
    fn windows_compose_through_convs_and_pools() {
        // 28x28 -> 5x5 valid conv (24x24) -> 2x2 pool (12x12) -> 3x3 valid conv (10x10).
        let s = spec("28x28x1-4C5v-P2-4C3v-10");
        assert_eq!(receptive_field(&s, 0, 0, 0), Some((0, 4, 0, 4)));
        assert_eq!(receptive_field(&s, 0, 3, 7), Some((3, 7, 7, 11)));
        // Pool pixel (1, 2) covers conv rows 2..3, cols 4..5: input rows 2..7, cols 4..9.
        assert_eq!(receptive_field(&s, 1, 1, 2), Some((2, 7, 4, 9)));
        // Second conv pixel (0, 0): pool rows 0..2 -> conv rows 0..5 -> input 0..9.
        assert_eq!(receptive_field(&s, 2, 0, 0), Some((0, 9, 0, 9)));
        // Outside the map, and after Flatten: none.
        assert_eq!(receptive_field(&s, 2, 10, 0), None);
        assert_eq!(receptive_field(&s, 4, 0, 0), None);
    }

    #[test]
    fn every_earlier_layer_gets_its_window() {
        let s = spec("28x28x1-4C5v-P2-4C3v-10");
        // Second conv pixel (0, 0): pool rows 0..2, conv rows 0..5, input 0..9.
        let w = receptive_fields(&s, 2, 0, 0).unwrap();
        assert_eq!(
            w,
            vec![
                (Some(1), (0, 2, 0, 2)),
                (Some(0), (0, 5, 0, 5)),
                (None, (0, 9, 0, 9))
            ]
        );
    }

    #[test]
    fn same_padding_is_clamped_to_the_image() {
        let s = spec("8x8x1-2C3-10");
        assert_eq!(receptive_field(&s, 0, 0, 0), Some((0, 1, 0, 1)));
        assert_eq!(receptive_field(&s, 0, 7, 4), Some((6, 7, 3, 5)));
    }
}
