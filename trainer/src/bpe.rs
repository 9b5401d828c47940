//! Byte-level BPE training, and the tokenizer file of a run directory.
//!
//! Training splits text with the runtime's own pretokenizer
//! ([`runtime::tokenizer::pretokenize::chunks`]), so merges never cross a
//! chunk boundary, digits never merge (every digit is a chunk of its own), and
//! the runtime's encoder sees exactly the pieces training saw. Merges are
//! learned over distinct chunks weighted by how often they occur, with
//! incremental pair counts: each merge only revisits the chunks that contain
//! its pair. The most frequent pair wins; ties go to the smallest
//! `(left, right)`, so training is deterministic.
//!
//! Ids: specials `0..8`, bytes `8..264`, merge of rank `r` is
//! `special::FIRST_MERGE + r` (see `runtime::format`).

use anyhow::{bail, Context};
use runtime::format::{special, TokenizerData};
use runtime::tokenizer::{pretokenize, Tokenizer};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::Path;

/// Smallest vocabulary: the special tokens and the 256 bytes.
pub const BASE_VOCAB: usize = special::FIRST_MERGE as usize;

type Pair = (u32, u32);

/// Accumulates chunk counts from any number of texts, then learns merges.
/// Use it to stream a corpus without holding it in memory; [`train_bpe`] is
/// the one-call form.
#[derive(Default, Debug, Clone)]
pub struct BpeTrainer {
    chunk_counts: HashMap<Vec<u8>, u64>,
}

impl BpeTrainer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts the chunks of `text`.
    pub fn add_text(&mut self, text: &str) {
        for chunk in pretokenize::chunks(text.as_bytes()) {
            // Single bytes can take part in no merge.
            if chunk.len() > 1 {
                *self.chunk_counts.entry(chunk.to_vec()).or_insert(0) += 1;
            }
        }
    }

    /// Number of distinct chunks seen (of two bytes or more).
    pub fn distinct_chunks(&self) -> usize {
        self.chunk_counts.len()
    }

    /// Learns up to `vocab_size - 264` merges, in rank order. Stops early when
    /// no pair occurs twice: a merge seen once would only fit the corpus'
    /// noise, so the vocabulary may come out smaller than asked.
    pub fn train(&self, vocab_size: usize) -> anyhow::Result<Vec<(u32, u32)>> {
        if vocab_size < BASE_VOCAB {
            bail!("vocab size {vocab_size} is below {BASE_VOCAB} (8 special tokens + 256 bytes)");
        }
        if vocab_size > u32::MAX as usize {
            bail!("vocab size {vocab_size} does not fit token ids (u32)");
        }
        let n_merges = vocab_size - BASE_VOCAB;

        // Distinct chunks in a fixed order: HashMap order must not leak into
        // the result (it only affects the order of commutative count updates,
        // but sorting keeps the whole run reproducible to inspect).
        let mut chunks: Vec<(&Vec<u8>, u64)> =
            self.chunk_counts.iter().map(|(k, &v)| (k, v)).collect();
        chunks.sort_unstable();
        let mut words: Vec<Vec<u32>> = chunks
            .iter()
            .map(|(c, _)| c.iter().map(|&b| special::FIRST_BYTE + b as u32).collect())
            .collect();
        let counts: Vec<i64> = chunks.iter().map(|&(_, n)| n as i64).collect();

        let mut pair_counts: HashMap<Pair, i64> = HashMap::new();
        let mut where_: HashMap<Pair, HashSet<u32>> = HashMap::new();
        for (w, ids) in words.iter().enumerate() {
            for p in ids.windows(2) {
                let pair = (p[0], p[1]);
                *pair_counts.entry(pair).or_insert(0) += counts[w];
                where_.entry(pair).or_default().insert(w as u32);
            }
        }
        // Max-heap on (count, smallest pair); entries go stale as counts
        // change and are checked against `pair_counts` when popped.
        let mut heap: BinaryHeap<(i64, Reverse<Pair>)> =
            pair_counts.iter().map(|(&p, &c)| (c, Reverse(p))).collect();

        let mut merges = Vec::with_capacity(n_merges);
        while merges.len() < n_merges {
            let Some((count, Reverse(pair))) = heap.pop() else {
                break;
            };
            let current = pair_counts.get(&pair).copied().unwrap_or(0);
            if current != count {
                if current > 0 {
                    heap.push((current, Reverse(pair)));
                }
                continue;
            }
            if count < 2 {
                break;
            }
            let new_id = special::FIRST_MERGE + merges.len() as u32;
            merges.push(pair);

            let mut affected: Vec<u32> = where_
                .remove(&pair)
                .unwrap_or_default()
                .into_iter()
                .collect();
            affected.sort_unstable();
            let mut touched: HashSet<Pair> = HashSet::new();
            for w in affected {
                let wi = w as usize;
                let c = counts[wi];
                let old = &words[wi];
                let merged = merge_word(old, pair, new_id);
                if merged.len() == old.len() {
                    continue; // stale index entry: the pair is gone from this chunk
                }
                for p in old.windows(2) {
                    *pair_counts.entry((p[0], p[1])).or_insert(0) -= c;
                }
                for p in merged.windows(2) {
                    let q = (p[0], p[1]);
                    *pair_counts.entry(q).or_insert(0) += c;
                    where_.entry(q).or_default().insert(w);
                    touched.insert(q);
                }
                words[wi] = merged;
            }
            pair_counts.remove(&pair);
            // Pairs whose count grew need a fresh heap entry; shrunk ones are
            // fixed lazily when their stale entry is popped.
            let mut touched: Vec<Pair> = touched.into_iter().collect();
            touched.sort_unstable();
            for q in touched {
                if let Some(&c) = pair_counts.get(&q) {
                    if c > 0 {
                        heap.push((c, Reverse(q)));
                    }
                }
            }
        }
        Ok(merges)
    }
}

/// Replaces every non-overlapping occurrence of `pair`, left to right (the
/// order the runtime's encoder applies a merge in).
fn merge_word(ids: &[u32], pair: Pair, new_id: u32) -> Vec<u32> {
    let mut out = Vec::with_capacity(ids.len());
    let mut i = 0;
    while i < ids.len() {
        if i + 1 < ids.len() && (ids[i], ids[i + 1]) == pair {
            out.push(new_id);
            i += 2;
        } else {
            out.push(ids[i]);
            i += 1;
        }
    }
    out
}

/// Learns merges from `texts` (see [`BpeTrainer::train`]); `vocab_size`
/// counts the 8 specials, the 256 bytes and the merges.
pub fn train_bpe<I>(texts: I, vocab_size: usize) -> anyhow::Result<Vec<(u32, u32)>>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut t = BpeTrainer::new();
    for text in texts {
        t.add_text(text.as_ref());
    }
    t.train(vocab_size)
}

/// Checks that merge `r` combines only bytes or earlier merges, and that no
/// pair repeats (the runtime's binary search needs unique pairs).
pub fn validate_merges(merges: &[(u32, u32)]) -> anyhow::Result<()> {
    let mut seen = HashSet::with_capacity(merges.len());
    for (r, &(l, rt)) in merges.iter().enumerate() {
        let limit = special::FIRST_MERGE + r as u32;
        for id in [l, rt] {
            if id < special::FIRST_BYTE || id >= limit {
                bail!("merge {r} ({l}, {rt}) refers to token {id}: only bytes and earlier merges may be merged");
            }
        }
        if !seen.insert((l, rt)) {
            bail!("merge {r} ({l}, {rt}) repeats an earlier merge");
        }
    }
    Ok(())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TokenizerFile {
    merges: Vec<(u32, u32)>,
}

/// Writes `tokenizer.json` (`{"merges": [[left, right], ...]}` in rank order)
/// through a temporary file and a rename, so a reader never sees half a file.
pub fn save_tokenizer(path: &Path, merges: &[(u32, u32)]) -> anyhow::Result<()> {
    validate_merges(merges)?;
    let json = serde_json::to_string(&TokenizerFile {
        merges: merges.to_vec(),
    })?;
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file path", path.display()))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, json + "\n")
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("{}: cannot rename to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// Reads and checks a `tokenizer.json` written by [`save_tokenizer`].
pub fn load_tokenizer(path: &Path) -> anyhow::Result<Vec<(u32, u32)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    parse_tokenizer(&text, &path.display().to_string())
}

/// [`load_tokenizer`] of the text of a file called `name` (for messages).
pub fn parse_tokenizer(text: &str, name: &str) -> anyhow::Result<Vec<(u32, u32)>> {
    let file: TokenizerFile =
        serde_json::from_str(text).with_context(|| format!("{name}: not a tokenizer file"))?;
    validate_merges(&file.merges).with_context(|| format!("{name}: bad merges"))?;
    Ok(file.merges)
}

/// The byte tables a blob carries for a byte-level BPE (`TokenizerData::ByteBpe`),
/// owned, for encoding and decoding on the training side with the runtime's
/// own code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedTokenizer {
    /// `(left u32 LE, right u32 LE)` per merge, in rank order.
    pub merges: Vec<u8>,
    /// Ranks (u32 LE) sorted by `(left, right)`.
    pub index: Vec<u8>,
    pub vocab_size: u32,
}

impl OwnedTokenizer {
    pub fn from_merges(merges: &[(u32, u32)]) -> Self {
        let mut bytes = Vec::with_capacity(merges.len() * 8);
        for &(l, r) in merges {
            bytes.extend_from_slice(&l.to_le_bytes());
            bytes.extend_from_slice(&r.to_le_bytes());
        }
        let mut ranks: Vec<u32> = (0..merges.len() as u32).collect();
        ranks.sort_by_key(|&r| merges[r as usize]);
        let index = ranks.iter().flat_map(|r| r.to_le_bytes()).collect();
        Self {
            merges: bytes,
            index,
            vocab_size: BASE_VOCAB as u32 + merges.len() as u32,
        }
    }

    /// The blob's tokenizer section for these tables.
    pub fn data(&self) -> TokenizerData<'_> {
        TokenizerData::ByteBpe {
            merges: &self.merges,
            merge_index: &self.index,
        }
    }

    pub fn tokenizer(&self) -> Tokenizer<'_> {
        Tokenizer::new(self.data(), self.vocab_size)
    }

    /// Token ids of `text` (no special tokens).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        // Every byte is at most one token.
        let mut out = vec![0u32; text.len()];
        let n = self
            .tokenizer()
            .encode(text.as_bytes(), &mut out)
            .unwrap_or(0);
        out.truncate(n);
        out
    }

    /// Text of `ids`; special tokens appear as their names (`<think>`),
    /// invalid UTF-8 as U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let tok = self.tokenizer();
        let mut bytes = Vec::new();
        let mut prev = None;
        for &id in ids {
            tok.decode(prev, id, &mut |b| bytes.extend_from_slice(b));
            prev = Some(id);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        let mut v = Vec::new();
        for i in 0..300u32 {
            v.push(format!(
                "Mia has {} apples. She buys {} more. How many apples does Mia have now? {}+{}={}",
                i % 97,
                i * 7 % 40,
                i,
                i * 3,
                i * 4
            ));
            v.push(format!(
                "<think>{}+{}+0={:02}</think> thé café ünïcödé ☕ {i}",
                i % 10,
                i % 7,
                i % 10 + i % 7
            ));
        }
        v
    }

    #[test]
    fn training_is_deterministic() {
        let c = corpus();
        let a = train_bpe(&c, 400).unwrap();
        let b = train_bpe(c.iter().rev(), 400).unwrap();
        assert_eq!(a, b, "merges must not depend on text order");
        assert!(!a.is_empty());
    }

    #[test]
    fn vocab_size_is_respected() {
        let c = corpus();
        for v in [264, 265, 300, 512] {
            let m = train_bpe(&c, v).unwrap();
            assert!(BASE_VOCAB + m.len() <= v);
            validate_merges(&m).unwrap();
        }
        assert!(train_bpe(&c, 264).unwrap().is_empty());
        assert!(train_bpe(&c, 263).is_err());
        // A small corpus runs out of pairs seen twice before a large vocab fills.
        let m = train_bpe(["abab abab"], 10_000).unwrap();
        assert!(m.len() < 10);
    }

    #[test]
    fn encode_decode_round_trips_and_digits_stay_single() {
        let c = corpus();
        let merges = train_bpe(&c, 512).unwrap();
        let tok = OwnedTokenizer::from_merges(&merges);
        let probe = [
            "Mia has 12 apples. She buys 30 more.",
            "7+9+0=16 4+8+1=13 3+5+1=09",
            "thé café ünïcödé ☕ and something unseen: zzzq 0123456789",
            "",
            "  \n\t  spaces ",
        ];
        for text in c.iter().map(String::as_str).chain(probe) {
            let ids = tok.encode(text);
            assert_eq!(tok.decode(&ids), text);
            assert!(ids
                .iter()
                .all(|&id| id >= special::FIRST_BYTE && id < tok.vocab_size));
            // Each digit is one token of its own: the digit's byte token.
            let digits: usize = text.bytes().filter(u8::is_ascii_digit).count();
            let digit_tokens = ids
                .iter()
                .filter(|&&id| (FIRST_DIGIT..FIRST_DIGIT + 10).contains(&id))
                .count();
            assert_eq!(digits, digit_tokens, "{text}");
        }
        // Frequent words did merge: the sentence takes far fewer tokens than bytes.
        let s = "Mia has 12 apples. She buys 30 more.";
        assert!(tok.encode(s).len() < s.len() / 2, "{:?}", tok.encode(s));
    }

    const FIRST_DIGIT: u32 = special::FIRST_BYTE + b'0' as u32;

    #[test]
    fn no_merge_crosses_a_chunk_or_involves_specials() {
        let merges = train_bpe(corpus(), 600).unwrap();
        let tok = OwnedTokenizer::from_merges(&merges);
        for (r, _) in merges.iter().enumerate() {
            let text = tok.decode(&[special::FIRST_MERGE + r as u32]);
            assert_eq!(
                pretokenize::chunks(text.as_bytes()).count(),
                1,
                "merge {r} spans chunks: {text:?}"
            );
            assert!(
                !text.bytes().any(|b| b.is_ascii_digit()),
                "merge {r} holds a digit: {text:?}"
            );
        }
    }

    /// The textbook algorithm: recount every pair after every merge.
    fn naive(texts: &[String], vocab_size: usize) -> Vec<Pair> {
        let mut words: Vec<(Vec<u32>, i64)> = Vec::new();
        for t in texts {
            for c in pretokenize::chunks(t.as_bytes()) {
                words.push((
                    c.iter().map(|&b| special::FIRST_BYTE + b as u32).collect(),
                    1,
                ));
            }
        }
        let mut merges = Vec::new();
        while BASE_VOCAB + merges.len() < vocab_size {
            let mut counts: HashMap<Pair, i64> = HashMap::new();
            for (w, c) in &words {
                for p in w.windows(2) {
                    *counts.entry((p[0], p[1])).or_insert(0) += c;
                }
            }
            let Some((&pair, &n)) = counts.iter().max_by_key(|(&p, &n)| (n, Reverse(p))) else {
                break;
            };
            if n < 2 {
                break;
            }
            let id = special::FIRST_MERGE + merges.len() as u32;
            merges.push(pair);
            for (w, _) in &mut words {
                *w = merge_word(w, pair, id);
            }
        }
        merges
    }

    #[test]
    fn incremental_counts_match_the_naive_algorithm() {
        let c = corpus();
        assert_eq!(train_bpe(&c, 450).unwrap(), naive(&c, 450));
        let odd: Vec<String> = ["aaaa aaa aa a", "abababab abba", "aaab baaa"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(train_bpe(&odd, 300).unwrap(), naive(&odd, 300));
    }

    #[test]
    fn tokenizer_file_round_trips() {
        let merges = train_bpe(corpus(), 400).unwrap();
        let dir = std::env::temp_dir().join(format!("bpe-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokenizer.json");
        save_tokenizer(&path, &merges).unwrap();
        assert_eq!(load_tokenizer(&path).unwrap(), merges);
        assert!(!dir.join("tokenizer.json.tmp").exists());
        std::fs::write(&path, "{\"merges\": [[300, 8]]}").unwrap();
        assert!(
            load_tokenizer(&path).is_err(),
            "a merge of a later token is rejected"
        );
        std::fs::write(&path, "{\"merges\": [[8, 9], [8, 9]]}").unwrap();
        assert!(
            load_tokenizer(&path).is_err(),
            "a repeated merge is rejected"
        );
        std::fs::write(&path, "{\"merges\": [[2, 9]]}").unwrap();
        assert!(
            load_tokenizer(&path).is_err(),
            "a merge of a special token is rejected"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
