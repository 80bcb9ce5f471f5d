//! The notation's syntax: tokens and the tree of items they form.
//!
//! ```text
//! notation := item ('-' item)*
//! item     := ATOM                     32C5, P2, BN, D0.4, 128, GAP, ...
//!           | '[' seq ']' repeat?      grouping
//!           | 'R[' seq ']' repeat?     residual block
//!           | 'I[' seq ('|' seq)* ']' repeat?   inception block, branches
//! seq      := item ('-' item)*
//! repeat   := 'x' N                    the block N times in a row, e.g. R[16C3-BN-16C3-BN]x3
//! ```
//!
//! Whitespace between tokens is ignored. Every item keeps its byte range,
//! so that errors can point at it.

use crate::{NnError, Result};

/// A parsed item with its byte range in the notation.
#[derive(Clone, Debug)]
pub(crate) enum Item<'a> {
    /// A layer token.
    Atom { text: &'a str, start: usize },
    /// `[...]`, `R[...]` or `I[...|...]`: its sequences and the range of the whole block.
    Block {
        kind: BlockKind,
        branches: Vec<Vec<Item<'a>>>,
        start: usize,
        len: usize,
    },
}

/// What a bracketed block means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockKind {
    /// Plain grouping.
    Group,
    /// Residual block: the sequence plus a shortcut, added, then ReLU.
    Residual,
    /// Inception module: branches from the same input, concatenated on channels.
    Inception,
}

impl Item<'_> {
    /// Layer tokens in the item, repeats expanded.
    fn atoms(&self) -> usize {
        match self {
            Item::Atom { .. } => 1,
            Item::Block { branches, .. } => branches
                .iter()
                .flatten()
                .map(Item::atoms)
                .fold(0, usize::saturating_add),
        }
    }

    /// `(start, len)` of the item.
    pub(crate) fn span(&self) -> (usize, usize) {
        match self {
            Item::Atom { text, start } => (*start, text.len()),
            Item::Block { start, len, .. } => (*start, *len),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tok<'a> {
    Atom(&'a str),
    Open(BlockKind),
    /// `]` and the repeat count after it (1 without `xN`).
    Close(usize),
    Bar,
    Dash,
}

pub(crate) fn err(notation: &str, start: usize, len: usize, msg: impl Into<String>) -> NnError {
    NnError::Notation {
        notation: notation.to_string(),
        start,
        len: len.max(1),
        msg: msg.into(),
    }
}

fn is_special(b: u8) -> bool {
    matches!(b, b'-' | b'|' | b'[' | b']') || b.is_ascii_whitespace()
}

/// Splits the notation into tokens with their byte ranges.
fn tokenize(s: &str) -> Result<Vec<(Tok<'_>, usize, usize)>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let single = match c {
            b'-' => Some(Tok::Dash),
            b'|' => Some(Tok::Bar),
            b'[' => Some(Tok::Open(BlockKind::Group)),
            _ => None,
        };
        if let Some(t) = single {
            out.push((t, i, 1));
            i += 1;
            continue;
        }
        if c == b']' {
            let mut j = i + 1;
            let mut times = 1;
            if j < b.len() && b[j] == b'x' {
                let k0 = j + 1;
                let mut k = k0;
                while k < b.len() && b[k].is_ascii_digit() {
                    k += 1;
                }
                times = s[k0..k]
                    .parse::<usize>()
                    .ok()
                    .filter(|&t| (1..=1000).contains(&t))
                    .ok_or_else(|| {
                        err(
                            s,
                            i,
                            k - i,
                            "a repeat is ']x' and a count from 1 to 1000, e.g. ]x3",
                        )
                    })?;
                j = k;
            }
            out.push((Tok::Close(times), i, j - i));
            i = j;
            continue;
        }
        let start = i;
        while i < b.len() && !is_special(b[i]) {
            i += 1;
        }
        let text = &s[start..i];
        if i < b.len() && b[i] == b'[' {
            let kind = match text {
                "R" => BlockKind::Residual,
                "I" => BlockKind::Inception,
                _ => {
                    return Err(err(
                        s,
                        start,
                        text.len() + 1,
                        format!(
                            "'{text}[': brackets may only wrap whole tokens; blocks are \
                             R[...] (residual) and I[...|...] (inception)"
                        ),
                    ))
                }
            };
            out.push((Tok::Open(kind), start, text.len() + 1));
            i += 1;
            continue;
        }
        out.push((Tok::Atom(text), start, text.len()));
    }
    Ok(out)
}

/// The deepest nesting of brackets the parser follows (it recurses once
/// per level; 30,000 levels overflowed the stack).
pub(crate) const MAX_DEPTH: usize = 100;
/// The most layer tokens a notation may expand to (repeats included).
pub(crate) const MAX_ATOMS: usize = 100_000;

struct Parser<'a> {
    s: &'a str,
    toks: Vec<(Tok<'a>, usize, usize)>,
    pos: usize,
    /// Brackets open at the current position.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<(Tok<'a>, usize, usize)> {
        self.toks.get(self.pos).copied()
    }

    fn empty_token(&self) -> NnError {
        let at = self.peek().map_or(self.s.len(), |t| t.1);
        err(
            self.s,
            at.min(self.s.len().saturating_sub(1)),
            1,
            "empty token (two '-' in a row, or a trailing '-')",
        )
    }

    /// `item ('-' item)*`, stopping before `]`, `|` or the end.
    fn seq(&mut self) -> Result<Vec<Item<'a>>> {
        let mut items = vec![self.item()?];
        while let Some((Tok::Dash, _, _)) = self.peek() {
            self.pos += 1;
            items.push(self.item()?);
        }
        Ok(items)
    }

    fn item(&mut self) -> Result<Item<'a>> {
        let Some((tok, start, len)) = self.peek() else {
            return Err(self.empty_token());
        };
        match tok {
            Tok::Atom(text) => {
                self.pos += 1;
                if let Some((Tok::Atom(_) | Tok::Open(_), next, _)) = self.peek() {
                    return Err(err(
                        self.s,
                        start,
                        next - start,
                        "tokens are separated by '-'",
                    ));
                }
                Ok(Item::Atom { text, start })
            }
            Tok::Open(kind) => {
                if self.depth >= MAX_DEPTH {
                    return Err(err(
                        self.s,
                        start,
                        len,
                        format!("brackets nested more than {MAX_DEPTH} deep"),
                    ));
                }
                self.depth += 1;
                let block = self.block(kind, start, len);
                self.depth -= 1;
                block
            }
            Tok::Close(_) => Err(err(self.s, start, 1, "']' without a matching '['")),
            Tok::Bar => Err(err(
                self.s,
                start,
                1,
                "'|' separates branches, only inside I[...]",
            )),
            Tok::Dash => Err(self.empty_token()),
        }
    }

    /// The rest of a block whose opening bracket is at `start`.
    fn block(&mut self, kind: BlockKind, start: usize, len: usize) -> Result<Item<'a>> {
        self.pos += 1;
        let mut branches = vec![self.seq()?];
        while let Some((Tok::Bar, at, _)) = self.peek() {
            if kind != BlockKind::Inception {
                return Err(err(
                    self.s,
                    at,
                    1,
                    "'|' separates branches, only inside I[...]",
                ));
            }
            self.pos += 1;
            branches.push(self.seq()?);
        }
        match self.peek() {
            Some((Tok::Close(times), at, l)) => {
                self.pos += 1;
                let block = Item::Block {
                    kind,
                    branches,
                    start,
                    len: at + l - start,
                };
                if times > 1 {
                    // Nested repeats multiply: refused before copying.
                    if block.atoms().saturating_mul(times) > MAX_ATOMS {
                        return Err(err(
                            self.s,
                            start,
                            at + l - start,
                            format!("the repeats make more than {MAX_ATOMS} layers"),
                        ));
                    }
                    // `B]xN`: N copies in a row, as a group.
                    return Ok(Item::Block {
                        kind: BlockKind::Group,
                        branches: vec![vec![block; times]],
                        start,
                        len: at + l - start,
                    });
                }
                Ok(block)
            }
            _ => Err(err(
                self.s,
                start,
                len,
                "unbalanced brackets: a '[' is never closed",
            )),
        }
    }
}

/// Parses the whole notation into its top-level sequence.
pub(crate) fn parse(s: &str) -> Result<Vec<Item<'_>>> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return Err(err(s, 0, s.len(), "no layers"));
    }
    let mut p = Parser {
        s,
        toks,
        pos: 0,
        depth: 0,
    };
    let items = p.seq()?;
    match p.peek() {
        None => Ok(items),
        Some((Tok::Close(_), at, _)) => Err(err(s, at, 1, "']' without a matching '['")),
        Some((_, at, l)) => Err(err(s, at, l, "'|' separates branches, only inside I[...]")),
    }
}
