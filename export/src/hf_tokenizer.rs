//! thinkling's byte-level BPE as the vocabulary of other ecosystems: the
//! Hugging Face `tokenizers` file (`tokenizer.json`) and the token strings,
//! types and merges a GGUF file carries.
//!
//! Token strings use GPT-2's byte-to-character map (every byte becomes one
//! printable character, the space `Ġ`), the convention both Hugging Face's
//! `ByteLevel` and llama.cpp's `gpt2` vocabulary decode. The eight special
//! tokens keep their ids and names (`<think>` is id 4 everywhere).

use anyhow::{bail, Result};
use runtime::format::special;
use runtime::tokenizer::pretokenize::MAX_CHUNK;
use serde_json::{json, Value};
use std::collections::HashMap;

/// What a token is, in GGUF's `tokenizer.ggml.token_type` numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Normal = 1,
    Control = 3,
    /// An id past the last merge: the model has a row for it, no text maps to it.
    Unused = 5,
}

/// The vocabulary in the byte-level string form, one entry per model id.
#[derive(Clone, Debug, PartialEq)]
pub struct ByteLevelVocab {
    pub tokens: Vec<String>,
    pub kinds: Vec<TokenKind>,
    /// Merges in rank order as pairs of token strings.
    pub merges: Vec<(String, String)>,
}

/// GPT-2's byte-to-character map: printable Latin-1 bytes stand for
/// themselves, the other 68 bytes for U+0100 onwards in byte order.
pub fn byte_chars() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut next = 0x100u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        out[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next).unwrap_or('\u{FFFD}');
            next += 1;
            c
        };
    }
    out
}

/// Name given to id `id` past the last merge (it has an embedding row but
/// no text). Its characters cannot come out of a merge: no thinkling chunk
/// mixes punctuation and letters.
fn unused_name(id: usize) -> String {
    format!("<unused{id}>")
}

/// Every id's string, kind and the merges, for `vocab_size` ids.
pub fn byte_level_vocab(merges: &[(u32, u32)], vocab_size: usize) -> Result<ByteLevelVocab> {
    let first_merge = special::FIRST_MERGE as usize;
    if first_merge + merges.len() > vocab_size {
        bail!(
            "the tokenizer has {} merges ({} tokens) but the model's vocab is {vocab_size}",
            merges.len(),
            first_merge + merges.len()
        );
    }
    let chars = byte_chars();
    let mut tokens: Vec<String> = special::NAMES.iter().map(|s| s.to_string()).collect();
    let mut kinds = vec![TokenKind::Control; tokens.len()];
    for c in chars {
        tokens.push(c.to_string());
        kinds.push(TokenKind::Normal);
    }
    let mut merge_strings = Vec::with_capacity(merges.len());
    for (r, &(l, rt)) in merges.iter().enumerate() {
        let id = first_merge + r;
        let side = |t: u32| -> Result<String> {
            match tokens.get(t as usize) {
                Some(s) if t >= special::FIRST_BYTE && (t as usize) < id => Ok(s.clone()),
                _ => bail!(
                    "merge {r} ({l}, {rt}) refers to token {t}: only bytes and earlier merges may be merged"
                ),
            }
        };
        let (a, b) = (side(l)?, side(rt)?);
        tokens.push(format!("{a}{b}"));
        kinds.push(TokenKind::Normal);
        merge_strings.push((a, b));
    }
    // A string→id map (Hugging Face's vocab, llama.cpp's token lookup) can
    // give a string one id only; two merges spelling the same bytes would
    // make the exported tokenizer pick other ids than thinkling's.
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(tokens.len());
    for (id, t) in tokens.iter().enumerate() {
        if let Some(first) = seen.insert(t.as_str(), id) {
            bail!(
                "tokens {first} and {id} both spell {:?}: a byte-level vocabulary gives each string one id",
                decode_string(t)
            );
        }
    }
    for id in tokens.len()..vocab_size {
        tokens.push(unused_name(id));
        kinds.push(TokenKind::Unused);
    }
    Ok(ByteLevelVocab {
        tokens,
        kinds,
        merges: merge_strings,
    })
}

/// The bytes a byte-level token string stands for (for messages).
fn decode_string(s: &str) -> String {
    let chars = byte_chars();
    let bytes: Vec<u8> = s
        .chars()
        .filter_map(|c| chars.iter().position(|&m| m == c).map(|b| b as u8))
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A regex character class of the byte-level characters of the bytes `keep` accepts.
fn class(keep: impl Fn(u8) -> bool) -> String {
    let chars = byte_chars();
    let mut cps: Vec<u32> = (0..=255u8)
        .filter(|&b| keep(b))
        .map(|b| chars[b as usize] as u32)
        .collect();
    cps.sort_unstable();
    let mut out = String::from("[");
    let mut i = 0;
    while i < cps.len() {
        let mut j = i;
        while j + 1 < cps.len() && cps[j + 1] == cps[j] + 1 {
            j += 1;
        }
        out += &format!("\\x{{{:X}}}", cps[i]);
        if j > i {
            out += &format!("-\\x{{{:X}}}", cps[j]);
        }
        i = j + 1;
    }
    out.push(']');
    out
}

/// thinkling's pretokenizer (`runtime::tokenizer::pretokenize`) as one regex
/// over byte-level characters, one character per byte so that the chunk
/// length cap counts bytes. Alternatives in the order the pretokenizer
/// decides: a space leading a word or punctuation run; a whitespace run that
/// leaves its last space to the word after it; any other whitespace run; a
/// digit; a word run; a punctuation run.
pub fn pretokenizer_regex() -> String {
    // The byte classes of `pretokenize::class`.
    let digit = |b: u8| b.is_ascii_digit();
    let word = |b: u8| b.is_ascii_alphabetic() || b >= 0x80;
    let space = |b: u8| !word(b) && (b.is_ascii_whitespace() || b < 0x20 || b == 0x7f);
    let punct = |b: u8| !digit(b) && !word(b) && !space(b);
    let attaches = |b: u8| word(b) || punct(b);
    let (d, w, p, s, a) = (
        class(digit),
        class(word),
        class(punct),
        class(space),
        class(attaches),
    );
    let sp = format!("\\x{{{:X}}}", byte_chars()[b' ' as usize] as u32);
    let (n, n1) = (MAX_CHUNK, MAX_CHUNK - 1);
    format!(
        "{sp}(?:{w}{{1,{n1}}}|{p}{{1,{n1}}})|{s}{{1,{n1}}}(?={sp}{a})|{s}{{1,{n}}}|{d}|{w}{{1,{n}}}|{p}{{1,{n}}}"
    )
}

/// The prompt template of an exported model: `<bos>`, the prompt text as
/// is, then `<think>` so that the model starts reasoning, as thinkling's own
/// engine does. No roles or turn markers: thinkling is not a chat model.
pub const PROMPT_TEMPLATE: &str = "{{ bos_token }}{% for message in messages %}{{ message['content'] }}{% endfor %}{% if add_generation_prompt %}<think>{% endif %}";

/// `tokenizer.json` in the Hugging Face `tokenizers` format.
pub fn tokenizer_json(v: &ByteLevelVocab) -> Value {
    let added: Vec<Value> = special::NAMES
        .iter()
        .enumerate()
        .map(|(id, name)| {
            json!({
                "id": id, "content": name, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true
            })
        })
        .collect();
    let vocab: serde_json::Map<String, Value> = v
        .tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.clone(), json!(id)))
        .collect();
    // "a b" strings rather than pairs: every tokenizers version reads them,
    // and byte-level strings never hold a plain space.
    let merges: Vec<String> = v.merges.iter().map(|(a, b)| format!("{a} {b}")).collect();
    let byte_level = json!({
        "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false
    });
    let bos = special::NAMES[special::BOS as usize];
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        // Bytes to characters first, then the split, so that the split sees
        // one character per byte.
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                byte_level,
                {
                    "type": "Split",
                    "pattern": { "Regex": pretokenizer_regex() },
                    "behavior": "Isolated",
                    "invert": false
                }
            ]
        },
        // Like a Llama tokenizer: `<bos>` first when special tokens are asked for.
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                { "SpecialToken": { "id": bos, "type_id": 0 } },
                { "Sequence": { "id": "A", "type_id": 0 } }
            ],
            "pair": [
                { "SpecialToken": { "id": bos, "type_id": 0 } },
                { "Sequence": { "id": "A", "type_id": 0 } },
                { "Sequence": { "id": "B", "type_id": 1 } }
            ],
            "special_tokens": {
                bos: { "id": bos, "ids": [special::BOS], "tokens": [bos] }
            }
        },
        "decoder": byte_level,
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": null,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": false,
            "byte_fallback": false,
            "ignore_merges": false,
            "vocab": vocab,
            "merges": merges
        }
    })
}

/// `tokenizer_config.json`: the special tokens' roles and the prompt template.
pub fn tokenizer_config_json(max_seq_len: usize) -> Value {
    let name = |id: u32| special::NAMES[id as usize];
    let added: serde_json::Map<String, Value> = special::NAMES
        .iter()
        .enumerate()
        .map(|(id, n)| {
            (
                id.to_string(),
                json!({
                    "content": n, "lstrip": false, "normalized": false,
                    "rstrip": false, "single_word": false, "special": true
                }),
            )
        })
        .collect();
    json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": name(special::BOS),
        "eos_token": name(special::EOS),
        "pad_token": name(special::PAD),
        "unk_token": name(special::UNK),
        "additional_special_tokens": special::NAMES[special::THINK as usize..].to_vec(),
        "added_tokens_decoder": added,
        "add_bos_token": true,
        "add_eos_token": false,
        "clean_up_tokenization_spaces": false,
        "model_max_length": max_seq_len,
        "chat_template": PROMPT_TEMPLATE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_chars_are_distinct_and_printable() {
        let c = byte_chars();
        let set: std::collections::HashSet<char> = c.iter().copied().collect();
        assert_eq!(set.len(), 256);
        assert_eq!(c[b' ' as usize], 'Ġ');
        assert_eq!(c[b'\n' as usize], 'Ċ');
        assert_eq!(c[b'a' as usize], 'a');
        assert!(c.iter().all(|ch| !ch.is_whitespace() && !ch.is_control()));
    }

    #[test]
    fn vocab_spells_merges_and_refuses_duplicates() {
        let a = special::FIRST_BYTE + b'a' as u32;
        let b = special::FIRST_BYTE + b' ' as u32;
        let v = byte_level_vocab(&[(b, a), (264, a)], 270).unwrap();
        assert_eq!(v.tokens[264], "Ġa");
        assert_eq!(v.tokens[265], "Ġaa");
        assert_eq!(v.tokens[269], "<unused269>");
        assert_eq!(v.kinds[4], TokenKind::Control);
        assert_eq!(v.merges[1], ("Ġa".to_string(), "a".to_string()));
        // (" a", "a") and (" ", "aa") spell the same bytes.
        let e = byte_level_vocab(&[(b, a), (a, a), (264, a), (b, 265)], 270)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\" aa\""), "{e}");
        let e = byte_level_vocab(&[(b, a)], 264).unwrap_err().to_string();
        assert!(e.contains("vocab is 264"), "{e}");
    }
}
