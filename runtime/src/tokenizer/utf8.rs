//! Streams decoded token bytes as text without splitting a UTF-8 character:
//! bytes of an unfinished character wait for the next token; invalid bytes
//! become U+FFFD.

/// Incremental UTF-8 decoder over token bytes.
#[derive(Default, Clone)]
pub struct Utf8Stream {
    pending: [u8; 4],
    len: usize,
}

const REPLACEMENT: &str = "\u{FFFD}";

impl Utf8Stream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; calls `out` with every complete piece of text.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut dyn FnMut(&str)) {
        while let Some((&b, rest)) = bytes.split_first() {
            if self.len > 0 {
                // Complete the pending character one byte at a time.
                if b & 0xC0 != 0x80 {
                    self.len = 0;
                    out(REPLACEMENT);
                    continue;
                }
                if let Some(slot) = self.pending.get_mut(self.len) {
                    *slot = b;
                }
                self.len += 1;
                bytes = rest;
                let need = char_len(self.pending.first().copied().unwrap_or(0));
                if self.len >= need {
                    match core::str::from_utf8(crate::bytes::prefix(&self.pending, need)) {
                        Ok(s) => out(s),
                        Err(_) => out(REPLACEMENT),
                    }
                    self.len = 0;
                }
                continue;
            }
            match core::str::from_utf8(bytes) {
                Ok(s) => {
                    out(s);
                    return;
                }
                Err(e) => {
                    let (good, rest) = bytes.split_at(e.valid_up_to());
                    if let Ok(s) = core::str::from_utf8(good) {
                        if !s.is_empty() {
                            out(s);
                        }
                    }
                    match e.error_len() {
                        Some(bad) => {
                            out(REPLACEMENT);
                            bytes = crate::bytes::suffix(rest, bad);
                        }
                        None => {
                            // An unfinished character at the end: keep it.
                            let k = rest.len().min(4);
                            for (p, r) in self.pending.iter_mut().zip(rest) {
                                *p = *r;
                            }
                            self.len = k;
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: an unfinished character becomes U+FFFD.
    pub fn finish(&mut self, out: &mut dyn FnMut(&str)) {
        if self.len > 0 {
            self.len = 0;
            out(REPLACEMENT);
        }
    }
}

fn char_len(first: u8) -> usize {
    match first {
        0xF0..=0xF7 => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}
