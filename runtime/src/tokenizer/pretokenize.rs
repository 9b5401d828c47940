//! Splits text into the chunks BPE merges within. Shared by BPE training and
//! encoding so the two can never disagree.
//!
//! Rules: every ASCII digit is a chunk of its own (numbers are read digit by
//! digit, or arithmetic breaks); a word is an optional single leading space and
//! a run of letters (ASCII letters and all non-ASCII bytes); punctuation runs
//! likewise; other whitespace runs stand alone. No chunk is longer than
//! [`MAX_CHUNK`] bytes, which keeps encoding linear in the input.

/// Longest chunk: longer runs are cut.
pub const MAX_CHUNK: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Digit,
    Word,
    Punct,
    Space,
}

fn class(b: u8) -> Class {
    if b.is_ascii_digit() {
        Class::Digit
    } else if b.is_ascii_alphabetic() || b >= 0x80 {
        Class::Word
    } else if b.is_ascii_whitespace() || b < 0x20 || b == 0x7f {
        Class::Space
    } else {
        Class::Punct
    }
}

/// Iterator over the chunks of a byte string; together they are the input.
#[derive(Clone)]
pub struct Chunks<'a> {
    text: &'a [u8],
}

pub fn chunks(text: &[u8]) -> Chunks<'_> {
    Chunks { text }
}

fn run_end(t: &[u8], from: usize, c: Class) -> usize {
    let mut j = from;
    while j < MAX_CHUNK && t.get(j).is_some_and(|&b| class(b) == c) {
        j += 1;
    }
    j
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let t = self.text;
        let first = *t.first()?;
        let attaches = |b: u8| matches!(class(b), Class::Word | Class::Punct);
        let end = match class(first) {
            Class::Digit => 1,
            Class::Word | Class::Punct => run_end(t, 1, class(first)),
            Class::Space => {
                if let (b' ', Some(&next)) = (first, t.get(1).filter(|&&b| attaches(b))) {
                    run_end(t, 2, class(next))
                } else {
                    let mut j = run_end(t, 1, Class::Space);
                    // Leave a final space to lead the word after it.
                    if j > 1
                        && t.get(j - 1) == Some(&b' ')
                        && t.get(j).is_some_and(|&b| attaches(b))
                    {
                        j -= 1;
                    }
                    j
                }
            }
        };
        let (chunk, rest) = t.split_at(end.clamp(1, t.len()));
        self.text = rest;
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> heapless::Vec<&[u8], 64> {
        chunks(s.as_bytes()).collect()
    }

    #[test]
    fn digits_stand_alone_and_words_keep_their_space() {
        let c = split("add 123+45 =  x\n");
        let want: [&[u8]; 11] = [
            b"add", b" ", b"1", b"2", b"3", b"+", b"4", b"5", b" =", b" ", b" x",
        ];
        assert_eq!(&c[..11], &want[..]);
        assert_eq!(c[11], b"\n");
    }

    #[test]
    fn chunks_cover_input_and_are_bounded() {
        let s = "a".repeat(100) + "  \t\n!!!! ünïcödé 9";
        let total: usize = chunks(s.as_bytes())
            .map(|c| {
                assert!(!c.is_empty() && c.len() <= MAX_CHUNK);
                c.len()
            })
            .sum();
        assert_eq!(total, s.len());
    }
}
