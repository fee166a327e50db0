//! Validation and expanded-size accounting of `bplist00` documents: the
//! trailer, the offset table and every object reference are checked, and
//! depth, node count and decoded bytes are totalled for the document as
//! expanded (a shared reference counts each time it is used) without
//! expanding it, against [`Limits`].

use super::PlistError;
use crate::wire::Limits;

fn malformed(offset: usize, reason: &'static str) -> PlistError {
    PlistError::Malformed { offset, reason }
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// Expanded totals of one object (itself and everything it references).
#[derive(Clone, Copy, Default)]
struct Totals {
    nodes: u64,
    decoded: u64,
    depth: u64,
}

#[derive(Clone, Copy)]
enum State {
    Unvisited,
    OnStack,
    Done(Totals),
}

struct Doc<'a> {
    b: &'a [u8],
    offsets: Vec<u64>,
    ref_size: usize,
    table_start: usize,
}

/// A parsed object header: own totals and the range of child references.
struct Object {
    own_decoded: u64,
    container: bool,
    /// Byte range of the child reference list, and the number of refs.
    refs_at: usize,
    refs: usize,
}

pub(super) fn check(b: &[u8], limits: &Limits) -> Result<(), PlistError> {
    if !b.starts_with(b"bplist00") {
        return Err(malformed(0, "unsupported binary plist version"));
    }
    if b.len() < 8 + 32 + 1 {
        return Err(PlistError::Truncated { offset: b.len() });
    }
    let t = b.len() - 32;
    let trailer = b.get(t..).unwrap_or_default();
    let field = |r: std::ops::Range<usize>| trailer.get(r).map(be).unwrap_or(0);
    let offset_size = field(6..7) as usize;
    let ref_size = field(7..8) as usize;
    let num_objects = field(8..16);
    let top = field(16..24);
    let table = field(24..32);
    if !matches!(offset_size, 1 | 2 | 3 | 4 | 8) || !matches!(ref_size, 1 | 2 | 3 | 4 | 8) {
        return Err(malformed(t + 6, "bad offset or reference size"));
    }
    let table_len = num_objects
        .checked_mul(offset_size as u64)
        .ok_or(malformed(t + 8, "object count overflows"))?;
    let table_end = table
        .checked_add(table_len)
        .ok_or(malformed(t + 24, "offset table overflows"))?;
    if table < 8 || table_end > t as u64 {
        return Err(malformed(t + 24, "offset table outside the document"));
    }
    if top >= num_objects {
        return Err(malformed(t + 16, "top object out of range"));
    }
    let table = table as usize;
    let offsets: Vec<u64> = b
        .get(table..table_end as usize)
        .unwrap_or_default()
        .chunks_exact(offset_size)
        .map(be)
        .collect();
    let doc = Doc {
        b,
        offsets,
        ref_size,
        table_start: table,
    };
    let totals = doc.walk(top as usize, limits)?;
    if totals.decoded > limits.max_decoded_bytes as u64 {
        return Err(PlistError::DecodedTooLarge {
            max: limits.max_decoded_bytes,
        });
    }
    Ok(())
}

impl Doc<'_> {
    fn byte(&self, at: usize) -> Result<u8, PlistError> {
        if at >= self.table_start {
            return Err(malformed(at, "object runs into the offset table"));
        }
        self.b
            .get(at)
            .copied()
            .ok_or(PlistError::Truncated { offset: at })
    }

    /// Check that `len` bytes from `at` lie before the offset table.
    fn span(&self, at: usize, len: u64) -> Result<(), PlistError> {
        let end = (at as u64).checked_add(len);
        match end {
            Some(end) if end <= self.table_start as u64 => Ok(()),
            _ => Err(malformed(at, "object runs past the object area")),
        }
    }

    /// A length field: the low nibble, or a following integer object when it is 0xF.
    fn length(&self, at: usize, nibble: u8) -> Result<(u64, usize), PlistError> {
        if nibble != 0x0F {
            return Ok((u64::from(nibble), at + 1));
        }
        let marker = self.byte(at + 1)?;
        if marker >> 4 != 0x1 || marker & 0x0F > 3 {
            return Err(malformed(at + 1, "bad length integer"));
        }
        let n = 1usize << (marker & 0x0F);
        self.span(at + 2, n as u64)?;
        let v = be(self.b.get(at + 2..at + 2 + n).unwrap_or_default());
        Ok((v, at + 2 + n))
    }

    fn object(&self, index: usize) -> Result<Object, PlistError> {
        let off = *self
            .offsets
            .get(index)
            .ok_or(malformed(0, "object reference out of range"))?;
        if off < 8 || off >= self.table_start as u64 {
            return Err(malformed(0, "object offset out of range"));
        }
        let at = off as usize;
        let marker = self.byte(at)?;
        let (kind, nibble) = (marker >> 4, marker & 0x0F);
        let leaf = |own_decoded: u64| Object {
            own_decoded,
            container: false,
            refs_at: 0,
            refs: 0,
        };
        Ok(match kind {
            0x0 if nibble == 0x8 || nibble == 0x9 => leaf(0),
            0x1 if nibble <= 4 => {
                self.span(at + 1, 1 << nibble)?;
                leaf(0)
            }
            0x2 if nibble == 2 || nibble == 3 => {
                self.span(at + 1, 1 << nibble)?;
                leaf(0)
            }
            0x3 if nibble == 3 => {
                self.span(at + 1, 8)?;
                leaf(0)
            }
            0x4 | 0x5 => {
                let (len, start) = self.length(at, nibble)?;
                self.span(start, len)?;
                leaf(len)
            }
            0x6 => {
                let (len, start) = self.length(at, nibble)?;
                let bytes = len
                    .checked_mul(2)
                    .ok_or(malformed(at, "string length overflows"))?;
                self.span(start, bytes)?;
                // Up to three UTF-8 bytes per UTF-16 unit.
                leaf(len.saturating_mul(3))
            }
            0x8 if nibble < 8 => {
                self.span(at + 1, u64::from(nibble) + 1)?;
                leaf(0)
            }
            0xA | 0xD => {
                let (len, start) = self.length(at, nibble)?;
                let refs = if kind == 0xD {
                    len.checked_mul(2)
                        .ok_or(malformed(at, "dictionary length overflows"))?
                } else {
                    len
                };
                let bytes = refs
                    .checked_mul(self.ref_size as u64)
                    .ok_or(malformed(at, "container length overflows"))?;
                self.span(start, bytes)?;
                Object {
                    own_decoded: 0,
                    container: true,
                    refs_at: start,
                    refs: refs as usize,
                }
            }
            _ => return Err(malformed(at, "unsupported object type")),
        })
    }

    fn child(&self, obj: &Object, i: usize) -> Result<usize, PlistError> {
        let at = obj.refs_at + i * self.ref_size;
        let r = be(self.b.get(at..at + self.ref_size).unwrap_or_default());
        if r >= self.offsets.len() as u64 {
            return Err(malformed(at, "object reference out of range"));
        }
        Ok(r as usize)
    }

    /// Depth-first, memoised walk from `top`, bounded by the limits.
    fn walk(&self, top: usize, limits: &Limits) -> Result<Totals, PlistError> {
        let mut state = vec![State::Unvisited; self.offsets.len()];
        // (object index, parsed object, next child, accumulated totals)
        let mut stack: Vec<(usize, Object, usize, Totals)> = Vec::new();
        let max_nodes = limits.max_nodes as u64;
        let max_decoded = limits.max_decoded_bytes as u64;
        let mut pending = Some(top);
        loop {
            if let Some(index) = pending.take() {
                match state.get(index).copied() {
                    Some(State::Unvisited) => {}
                    Some(State::OnStack) => {
                        return Err(malformed(0, "reference cycle"));
                    }
                    Some(State::Done(t)) => {
                        self.finish_child(&mut stack, t, limits)?;
                        continue;
                    }
                    None => return Err(malformed(0, "object reference out of range")),
                }
                let obj = self.object(index)?;
                let own = Totals {
                    nodes: 1,
                    decoded: obj.own_decoded,
                    depth: u64::from(obj.container),
                };
                if obj.container {
                    if stack.iter().filter(|f| f.1.container).count() >= limits.max_depth {
                        return Err(PlistError::TooDeep {
                            max: limits.max_depth,
                        });
                    }
                    if let Some(s) = state.get_mut(index) {
                        *s = State::OnStack;
                    }
                    stack.push((index, obj, 0, own));
                } else {
                    if let Some(s) = state.get_mut(index) {
                        *s = State::Done(own);
                    }
                    if stack.is_empty() {
                        return Ok(own);
                    }
                    self.finish_child(&mut stack, own, limits)?;
                }
                continue;
            }
            let Some(frame) = stack.last_mut() else {
                return Err(malformed(0, "empty walk"));
            };
            if frame.2 < frame.1.refs {
                let child = self.child(&frame.1, frame.2)?;
                frame.2 += 1;
                pending = Some(child);
                continue;
            }
            let Some((index, _, _, totals)) = stack.pop() else {
                return Err(malformed(0, "empty walk"));
            };
            if totals.nodes > max_nodes {
                return Err(PlistError::TooManyNodes {
                    max: limits.max_nodes,
                });
            }
            if totals.decoded > max_decoded {
                return Err(PlistError::DecodedTooLarge {
                    max: limits.max_decoded_bytes,
                });
            }
            if let Some(s) = state.get_mut(index) {
                *s = State::Done(totals);
            }
            if stack.is_empty() {
                return Ok(totals);
            }
            self.finish_child(&mut stack, totals, limits)?;
        }
    }

    /// Add a finished child's totals to the frame on top of the stack.
    fn finish_child(
        &self,
        stack: &mut [(usize, Object, usize, Totals)],
        child: Totals,
        limits: &Limits,
    ) -> Result<(), PlistError> {
        let Some(frame) = stack.last_mut() else {
            return Ok(());
        };
        let t = &mut frame.3;
        t.nodes = t.nodes.saturating_add(child.nodes);
        t.decoded = t.decoded.saturating_add(child.decoded);
        t.depth = t.depth.max(child.depth.saturating_add(1));
        if t.nodes > limits.max_nodes as u64 {
            return Err(PlistError::TooManyNodes {
                max: limits.max_nodes,
            });
        }
        if t.decoded > limits.max_decoded_bytes as u64 {
            return Err(PlistError::DecodedTooLarge {
                max: limits.max_decoded_bytes,
            });
        }
        if t.depth > limits.max_depth as u64 {
            return Err(PlistError::TooDeep {
                max: limits.max_depth,
            });
        }
        Ok(())
    }
}
