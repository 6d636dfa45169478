//! Sparse (lexical) vectors for Japanese text: BM25 words and character bigrams.
//!
//! Both encoders expect NFKC-normalised text (the caller normalises documents and queries
//! alike) and are pure functions of their input: the same text always gives the same vector,
//! on every platform and in every process, so vectors written by one run can be searched by
//! another (or by a Qdrant server). The IDF half of BM25 is not computed here: the store's
//! sparse vectors use Qdrant's `Modifier::Idf`.

use std::collections::BTreeMap;

use qdrant_edge::TokenizerType;
use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};

use crate::store::SparseVector;

/// A sparse encoder could not be built from its parameters.
#[derive(Debug, thiserror::Error)]
pub enum SparseEncoderError {
    #[error("the BM25 model could not be built: {0}")]
    Bm25(String),
    #[error("invalid parameter {name} = {value}: {reason}")]
    InvalidParameter {
        name: &'static str,
        value: f32,
        reason: &'static str,
    },
}

/// BM25 word vectors, tokenised by qdrant-edge's multilingual tokenizer on its Japanese path
/// (vaporetto word segmentation, Japanese stopwords: particles and the like are dropped).
///
/// qdrant-edge picks the segmenter per string from the script statistics of the whole string
/// (`whatlang`): a string whose most frequent script is Latin goes to charabia's word tokenizer,
/// and a string of kanji only (「伴走支援」) is detected as Chinese and goes to charabia's Chinese
/// segmenter, so a query could be cut into other words than the same text inside a document.
/// [`Bm25Encoder`] makes every string take the Japanese path: when hiragana is not already the
/// most frequent script, it appends `。` followed by enough `の。` pairs for hiragana to become the
/// most frequent script, counting characters as whatlang does. The padding produces only the tokens
/// `の` (a Japanese stopword) and `。` (not alphabetic), which the tokenizer drops before BM25
/// counts anything, so it changes neither the terms nor the document length; everyday Japanese
/// prose (where hiragana is already the most frequent script) is left untouched.
///
/// `EdgeBm25` is `Send + Sync` (checked at compile time below) and its `embed_*` methods take
/// `&self` without any lock: the vaporetto model is a process-wide immutable `LazyLock` and the
/// stopword set is an immutable `Arc`. One instance can be shared by all threads and called
/// concurrently; each call only allocates its own token buffers (the model is loaded on the first
/// call in the process).
#[derive(Debug)]
pub struct Bm25Encoder {
    model: EdgeBm25,
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<EdgeBm25>();
};

impl Bm25Encoder {
    /// A BM25 encoder with qdrant-edge's defaults (k1 = 1.2, b = 0.75, average length 256 tokens),
    /// the multilingual tokenizer and Japanese stopwords.
    pub fn new() -> Result<Self, SparseEncoderError> {
        let config = EdgeBm25Config {
            tokenizer: TokenizerType::Multilingual,
            language: Some("japanese".to_owned()),
            ..EdgeBm25Config::default()
        };
        let model = EdgeBm25::new(config).map_err(|e| SparseEncoderError::Bm25(e.to_string()))?;
        Ok(Self { model })
    }

    /// BM25 term-frequency weights of a chunk's words (sorted, unique indices).
    pub fn encode_document(&self, text: &str) -> SparseVector {
        let vector = self.model.embed_document(&on_japanese_path(text));
        SparseVector {
            indices: vector.indices,
            values: vector.values,
        }
    }

    /// 1.0 for each distinct word of a query (sorted, unique indices).
    pub fn encode_query(&self, text: &str) -> SparseVector {
        let vector = self.model.embed_query(&on_japanese_path(text));
        SparseVector {
            indices: vector.indices,
            values: vector.values,
        }
    }
}

/// `text`, padded if needed so that qdrant-edge's script detection routes it to the Japanese
/// segmenter (see [`Bm25Encoder`]).
fn on_japanese_path(text: &str) -> String {
    let pairs = japanese_path_padding(text);
    if pairs == 0 {
        return text.to_owned();
    }
    let mut padded = String::with_capacity(text.len() + 3 + pairs * 6);
    padded.push_str(text);
    padded.push('。');
    for _ in 0..pairs {
        padded.push_str("の。");
    }
    padded
}

/// How many `の` must be added to `text` for hiragana to be strictly its most frequent script as
/// counted by `whatlang` (which charabia, and so qdrant-edge, uses to pick a segmenter).
///
/// The counts are conservative: hiragana, katakana and han (whatlang's "Mandarin" ranges) are
/// counted exactly, and every other character that is not whitespace, ASCII punctuation or
/// digits (whatlang's "stop" characters), or in a punctuation/symbol block that no whatlang script
/// contains, counts towards one "other" bucket, which bounds every remaining script from above.
/// Over-counting only adds a little padding; it can never leave a string on another path.
fn japanese_path_padding(text: &str) -> usize {
    let (mut hiragana, mut katakana, mut han, mut other) = (0usize, 0usize, 0usize, 0usize);
    for ch in text.chars() {
        match ch {
            '\u{3040}'..='\u{309F}' => hiragana += 1,
            '\u{30A0}'..='\u{30FF}' => katakana += 1,
            '\u{2E80}'..='\u{2E99}'
            | '\u{2E9B}'..='\u{2EF3}'
            | '\u{2F00}'..='\u{2FD5}'
            | '\u{3005}'
            | '\u{3007}'
            | '\u{3021}'..='\u{3029}'
            | '\u{3038}'..='\u{303B}'
            | '\u{3400}'..='\u{4DB5}'
            | '\u{4E00}'..='\u{9FCC}'
            | '\u{F900}'..='\u{FA6D}'
            | '\u{FA70}'..='\u{FAD9}' => han += 1,
            // whatlang's stop characters (ASCII controls, space, digits, punctuation).
            '\u{0000}'..='\u{0040}' | '\u{005B}'..='\u{0060}' | '\u{007B}'..='\u{007E}' => {}
            // General punctuation, CJK symbols and punctuation (apart from the han items above),
            // arrows, mathematical operators, box drawing and geometric shapes: in no script.
            '\u{2000}'..='\u{206F}' | '\u{3000}'..='\u{303F}' | '\u{2190}'..='\u{25FF}' => {}
            ch if ch.is_whitespace() => {}
            _ => other += 1,
        }
    }
    let strongest_other = katakana.max(han).max(other);
    (strongest_other + 1).saturating_sub(hiragana)
}

/// Character-bigram vectors for Japanese, a lexical signal that needs no word segmentation.
///
/// Terms, from NFKC text:
/// - every run of letters that are not ASCII (kanji, kana, and any other script) gives the
///   bigrams of its characters (「伴走支援」 → 伴走, 走支, 支援); a run of one character gives
///   that character;
/// - every run of ASCII letters and digits gives one lowercased term (`DX` → `dx`, `2024`),
///   because character bigrams of Latin words and numbers carry little meaning;
/// - a number directly followed by a letter that is not ASCII also gives the number with that
///   letter (「5名」, 「2011年」, 「28条」, 「1人」): the counter or unit says what is counted, which
///   the number and the letter as separate terms do not;
/// - whitespace, punctuation and symbols separate runs and are dropped.
///
/// Indices are the FNV-1a 32-bit hash of the term's UTF-8 bytes: stable across versions,
/// platforms and processes. Terms whose hashes collide are counted as one term. Document values
/// are BM25's term-frequency saturation `tf·(k1+1) / (tf + k1·(1 − b + b·len/avg_len))` with
/// k1 = 1.2, b = 0.75 and `len` the number of terms in the text (about its number of characters
/// for Japanese); query values are 1.0 per distinct term. The IDF part is the store's `Modifier::Idf`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BigramEncoder {
    avg_len: f32,
}

impl Default for BigramEncoder {
    /// An encoder for chunks of about 300 characters.
    fn default() -> Self {
        Self {
            avg_len: Self::DEFAULT_AVG_LEN,
        }
    }
}

impl BigramEncoder {
    /// BM25 term-frequency saturation.
    pub const K1: f32 = 1.2;
    /// BM25 length normalisation.
    pub const B: f32 = 0.75;
    /// Default average document length, in terms (≈ characters of Japanese text).
    pub const DEFAULT_AVG_LEN: f32 = 300.0;

    /// An encoder for documents whose average length is `avg_len` terms (≈ characters).
    pub fn new(avg_len: f32) -> Result<Self, SparseEncoderError> {
        if !avg_len.is_finite() || avg_len <= 0.0 {
            return Err(SparseEncoderError::InvalidParameter {
                name: "avg_len",
                value: avg_len,
                reason: "must be finite and positive",
            });
        }
        Ok(Self { avg_len })
    }

    /// BM25 term-frequency weights of the text's bigrams and words (sorted, unique indices).
    pub fn encode_document(&self, text: &str) -> SparseVector {
        let counts = term_counts(text);
        let len = counts.values().sum::<u32>() as f32;
        let norm = Self::K1 * (1.0 - Self::B + Self::B * len / self.avg_len);
        let (indices, values) = counts
            .into_iter()
            .map(|(index, tf)| {
                let tf = tf as f32;
                (index, tf * (Self::K1 + 1.0) / (tf + norm))
            })
            .unzip();
        SparseVector { indices, values }
    }

    /// 1.0 for each distinct bigram or word of a query (sorted, unique indices).
    pub fn encode_query(&self, text: &str) -> SparseVector {
        let indices: Vec<u32> = term_counts(text).into_keys().collect();
        let values = vec![1.0; indices.len()];
        SparseVector { indices, values }
    }
}

/// Term index → number of occurrences, ordered by index.
fn term_counts(text: &str) -> BTreeMap<u32, u32> {
    let mut counts = BTreeMap::new();
    for_each_term(text, |term| {
        *counts.entry(fnv1a_32(term.as_bytes())).or_insert(0) += 1
    });
    counts
}

/// Calls `emit` with every term of `text` (see [`BigramEncoder`]), in text order.
fn for_each_term(text: &str, mut emit: impl FnMut(&str)) {
    let mut ascii_word = String::new();
    let mut counted = String::new();
    let mut run: Vec<char> = Vec::new();
    let mut term = String::new();
    let mut end_run = |run: &mut Vec<char>, emit: &mut dyn FnMut(&str)| {
        if let [single] = run.as_slice() {
            term.clear();
            term.push(*single);
            emit(&term);
        }
        for pair in run.windows(2) {
            term.clear();
            term.extend(pair);
            emit(&term);
        }
        run.clear();
    };

    for ch in text.chars() {
        if ch.is_ascii_alphanumeric() {
            end_run(&mut run, &mut emit);
            ascii_word.push(ch.to_ascii_lowercase());
            continue;
        }
        if !ascii_word.is_empty() {
            emit(&ascii_word);
            let number = &ascii_word[ascii_word
                .trim_end_matches(|c: char| c.is_ascii_digit())
                .len()..];
            if !number.is_empty() && ch.is_alphanumeric() {
                counted.clear();
                counted.push_str(number);
                counted.push(ch);
                emit(&counted);
            }
            ascii_word.clear();
        }
        if ch.is_alphanumeric() {
            run.push(ch);
        } else {
            end_run(&mut run, &mut emit);
        }
    }
    end_run(&mut run, &mut emit);
    if !ascii_word.is_empty() {
        emit(&ascii_word);
    }
}

/// 32-bit FNV-1a: a fixed, platform-independent hash.
fn fnv1a_32(bytes: &[u8]) -> u32 {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bm25() -> Bm25Encoder {
        Bm25Encoder::new().expect("BM25 model")
    }

    fn bm25_id(token: &str) -> u32 {
        // The id of a one-word query, so the tests do not depend on the hash function itself.
        let v = bm25().encode_query(token);
        assert_eq!(v.indices.len(), 1, "{token} should be a single token");
        v.indices[0]
    }

    #[test]
    fn kanji_only_query_and_document_share_word_ids() {
        let encoder = bm25();
        let query = encoder.encode_query("伴走支援");
        let document = encoder.encode_document("山梨県は伴走支援を受け入れた。");
        let (bansou, shien) = (bm25_id("伴走"), bm25_id("支援"));
        for id in [bansou, shien] {
            assert!(query.indices.contains(&id), "query {query:?} lacks {id}");
            assert!(
                document.indices.contains(&id),
                "document {document:?} lacks {id}"
            );
        }
        assert_eq!(
            query.indices.len(),
            2,
            "伴走支援 should give exactly 伴走 and 支援: {query:?}"
        );
        // Also as a document, and as a query with the rest of the sentence.
        assert_eq!(encoder.encode_document("伴走支援").indices, query.indices);
        let sentence = encoder.encode_query("山梨県は伴走支援を受け入れた。");
        assert_eq!(sentence.indices, document.indices);
    }

    #[test]
    fn padding_is_only_added_when_hiragana_does_not_dominate() {
        assert_eq!(japanese_path_padding("これはテストです"), 0);
        assert_eq!(japanese_path_padding("伴走支援"), 5);
        assert_eq!(japanese_path_padding("DX推進の API Gateway"), 12);
        assert_eq!(japanese_path_padding(""), 1);
    }

    #[test]
    fn padding_adds_no_terms_and_keeps_document_length() {
        let encoder = bm25();
        let text = "山梨県が伴走支援を受け入れる体制は、これから整えていきます。";
        assert_eq!(japanese_path_padding(text), 0);
        let mut padded = format!("{text}。");
        for _ in 0..40 {
            padded.push_str("の。");
        }
        assert_eq!(
            encoder.encode_document(&padded),
            encoder.encode_document(text)
        );
        assert_eq!(encoder.encode_query(&padded), encoder.encode_query(text));
    }

    #[test]
    fn latin_heavy_text_takes_the_japanese_path() {
        let encoder = bm25();
        // On the Latin path charabia would drop the Japanese words or cut them differently;
        // on the Japanese path 設定 is a word of its own, as in Japanese prose.
        let v = encoder.encode_query("API Gateway Configuration の設定");
        assert!(v.indices.contains(&bm25_id("設定")), "{v:?}");
        assert!(v.indices.contains(&bm25_id("api")), "{v:?}");
    }

    #[test]
    fn bm25_vectors_are_sorted_and_unique() {
        let encoder = bm25();
        for text in [
            "",
            "。、",
            "伴走支援の伴走支援",
            "山梨県は伴走支援を受け入れた。",
        ] {
            for v in [encoder.encode_document(text), encoder.encode_query(text)] {
                assert!(v.indices.windows(2).all(|w| w[0] < w[1]), "{text}: {v:?}");
                assert_eq!(v.indices.len(), v.values.len());
            }
        }
    }

    #[test]
    fn fnv1a_matches_reference_values() {
        assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn bigram_terms() {
        let h = |t: &str| fnv1a_32(t.as_bytes());
        let mut expected: Vec<u32> = ["伴走", "走支", "支援", "dx", "2024", "県"]
            .iter()
            .map(|t| h(t))
            .collect();
        expected.sort_unstable();
        let v = BigramEncoder::default().encode_query("伴走支援、DX 2024。県");
        assert_eq!(v.indices, expected);
        let mut counted: Vec<u32> = ["職員", "5", "5名", "名", "r7", "7は", "は"]
            .iter()
            .map(|t| h(t))
            .collect();
        counted.sort_unstable();
        assert_eq!(
            BigramEncoder::default()
                .encode_query("職員5名、R7は")
                .indices,
            counted
        );
        assert!(v.values.iter().all(|&x| x == 1.0));
        assert_eq!(
            BigramEncoder::default().encode_query("DX"),
            BigramEncoder::default().encode_query("dx")
        );
        assert!(
            BigramEncoder::default()
                .encode_query(" 、。 ")
                .indices
                .is_empty()
        );
    }

    #[test]
    fn bigram_document_values_follow_bm25_saturation() {
        let encoder = BigramEncoder::new(4.0).expect("valid avg_len");
        // 支援支援: terms 支援, 援支, 支援 → len 3, tf(支援) = 2, tf(援支) = 1.
        let v = encoder.encode_document("支援支援");
        let norm = 1.2 * (1.0 - 0.75 + 0.75 * 3.0 / 4.0);
        let weight = |tf: f32| tf * 2.2 / (tf + norm);
        let by_index: BTreeMap<u32, f32> = v
            .indices
            .iter()
            .copied()
            .zip(v.values.iter().copied())
            .collect();
        assert_eq!(by_index.len(), 2);
        assert!((by_index[&fnv1a_32("支援".as_bytes())] - weight(2.0)).abs() < 1e-6);
        assert!((by_index[&fnv1a_32("援支".as_bytes())] - weight(1.0)).abs() < 1e-6);
        assert!(v.indices.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn bigram_encoder_rejects_bad_avg_len() {
        for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert!(BigramEncoder::new(bad).is_err());
        }
    }
}
