//! A SentencePiece Unigram tokenizer model that holds its vocabulary in a finite-state transducer.
//!
//! `tokenizers`' own `Unigram` finds the pieces that start at a position with a trie that keeps a
//! hash map in every node: for multilingual-e5's 250 002 pieces that trie is 213 MB resident
//! (heaptrack). This model finds them in an [`fst::Map`] of piece → id (a few megabytes) and
//! otherwise tokenizes exactly as `tokenizers`' `Unigram` (0.23) does in its default mode: the
//! Viterbi best path over the pieces' scores, a character no piece covers scored as the unknown
//! piece (the lowest score minus 10), and consecutive unknown characters fused into one token.
//! The normalizer, pre-tokenizer, post-processor and truncation stay `tokenizers`' own (see
//! [`CompactTokenizer`]); a test compares every encoding with `tokenizers`' on the real model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fst::raw::Output;
use serde::Deserialize;
use tokenizers::models::unigram::UnigramTrainer;
use tokenizers::{
    DecoderWrapper, Model, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, Token,
    TokenizerImpl,
};

/// A tokenizer of `tokenizer.json` whose model is a [`CompactUnigram`].
pub type CompactTokenizer = TokenizerImpl<
    CompactUnigram,
    NormalizerWrapper,
    PreTokenizerWrapper,
    PostProcessorWrapper,
    DecoderWrapper,
>;

/// `tokenizers`' penalty on the unknown piece, below the lowest piece score.
const UNKNOWN_PENALTY: f64 = 10.0;

/// A Unigram model as `tokenizer.json` describes it (`"model": {"type": "Unigram", …}`).
#[derive(Deserialize)]
#[serde(try_from = "UnigramFile")]
pub struct CompactUnigram {
    /// Each distinct piece's id; a piece listed twice maps to its last id, as in `tokenizers`.
    ids: fst::Map<Vec<u8>>,
    /// Each id's score.
    scores: Vec<f64>,
    /// Every piece, concatenated in id order, and where each one ends in it.
    text: String,
    ends: Vec<u32>,
    unknown_id: u32,
    unknown_score: f64,
}

#[derive(Deserialize)]
struct UnigramFile {
    #[serde(rename = "type")]
    kind: String,
    unk_id: Option<u32>,
    vocab: Vec<(String, f64)>,
    #[serde(default)]
    byte_fallback: bool,
}

impl TryFrom<UnigramFile> for CompactUnigram {
    type Error = String;

    fn try_from(file: UnigramFile) -> Result<Self, String> {
        if file.kind != "Unigram" {
            return Err(format!("the model is {}, not Unigram", file.kind));
        }
        if file.byte_fallback {
            return Err("Unigram models with byte_fallback are not supported".to_owned());
        }
        let unknown_id = file
            .unk_id
            .ok_or_else(|| "the Unigram model has no unk_id".to_owned())?;
        if unknown_id as usize >= file.vocab.len() {
            return Err(format!(
                "the Unigram model's unk_id {unknown_id} is outside its {} pieces",
                file.vocab.len()
            ));
        }
        let mut sorted: Vec<(&[u8], u64)> = file
            .vocab
            .iter()
            .enumerate()
            .map(|(id, (piece, _))| (piece.as_bytes(), id as u64))
            .collect();
        // Sorted by piece, then id; of equal pieces the last (highest id) wins.
        sorted.sort_unstable();
        sorted.reverse();
        sorted.dedup_by_key(|(piece, _)| *piece);
        sorted.reverse();
        let ids = fst::Map::from_iter(sorted).map_err(|e| e.to_string())?;
        let mut text = String::new();
        let mut ends = Vec::with_capacity(file.vocab.len());
        let mut scores = Vec::with_capacity(file.vocab.len());
        for (piece, score) in &file.vocab {
            text.push_str(piece);
            ends.push(
                u32::try_from(text.len()).map_err(|_| "the vocabulary is too large".to_owned())?,
            );
            scores.push(*score);
        }
        let lowest = scores.iter().copied().fold(f64::INFINITY, f64::min);
        Ok(Self {
            ids,
            scores,
            text,
            ends,
            unknown_id,
            unknown_score: lowest - UNKNOWN_PENALTY,
        })
    }
}

/// The best path found so far to one byte position.
#[derive(Clone, Copy)]
struct BestPath {
    score: f64,
    /// Where its last piece starts; `None` while no path reaches the position.
    last_start: Option<usize>,
    last_id: u32,
}

impl CompactUnigram {
    fn piece(&self, id: u32) -> Option<&str> {
        let id = id as usize;
        let end = *self.ends.get(id)? as usize;
        let start = if id == 0 {
            0
        } else {
            self.ends[id - 1] as usize
        };
        Some(&self.text[start..end])
    }

    /// Calls `found(length, id)` for every piece that `bytes` starts with, shortest first.
    fn prefixes(&self, bytes: &[u8], mut found: impl FnMut(usize, u32)) {
        let fst = self.ids.as_fst();
        let mut node = fst.root();
        let mut output = Output::zero();
        for (at, &byte) in bytes.iter().enumerate() {
            let Some(index) = node.find_input(byte) else {
                return;
            };
            let transition = node.transition(index);
            output = output.cat(transition.out);
            node = fst.node(transition.addr);
            if node.is_final() {
                found(at + 1, output.cat(node.final_output()).value() as u32);
            }
        }
    }

    /// The pieces of the best path through `sentence`, as (start, end, id) in order, with
    /// consecutive unknown characters fused.
    fn best_path(&self, sentence: &str) -> Vec<(usize, usize, u32)> {
        let unreached = BestPath {
            score: 0.0,
            last_start: None,
            last_id: 0,
        };
        let mut best = vec![unreached; sentence.len() + 1];
        for (start, character) in sentence.char_indices() {
            let here = best[start].score;
            let char_len = character.len_utf8();
            let mut offer = |end: usize, score: f64, id: u32| {
                let target = &mut best[end];
                let candidate = here + score;
                if target.last_start.is_none() || candidate > target.score {
                    *target = BestPath {
                        score: candidate,
                        last_start: Some(start),
                        last_id: id,
                    };
                }
            };
            let mut covers_the_character = false;
            self.prefixes(&sentence.as_bytes()[start..], |length, id| {
                offer(start + length, self.scores[id as usize], id);
                covers_the_character |= length == char_len;
            });
            if !covers_the_character {
                offer(start + char_len, self.unknown_score, self.unknown_id);
            }
        }
        let mut pieces = Vec::new();
        let mut end = sentence.len();
        while end > 0 {
            let BestPath {
                last_start,
                last_id,
                ..
            } = best[end];
            // Every character boundary is reached: each character is a piece or unknown.
            let start = last_start.unwrap_or(0);
            match pieces.last_mut() {
                Some((fused_start, _, id))
                    if last_id == self.unknown_id && *id == self.unknown_id =>
                {
                    *fused_start = start;
                }
                _ => pieces.push((start, end, last_id)),
            }
            end = start;
        }
        pieces.reverse();
        pieces
    }
}

impl Model for CompactUnigram {
    /// Never used: this model is only read from `tokenizer.json`, never trained.
    type Trainer = UnigramTrainer;

    fn tokenize(&self, sentence: &str) -> tokenizers::Result<Vec<Token>> {
        Ok(self
            .best_path(sentence)
            .into_iter()
            .map(|(start, end, id)| {
                let text = &sentence[start..end];
                // A fused run of unknown characters keeps the unknown id unless it is a piece.
                let id = if id == self.unknown_id {
                    self.ids.get(text).map_or(id, |id| id as u32)
                } else {
                    id
                };
                Token::new(id, text.to_owned(), (start, end))
            })
            .collect())
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).map(|id| id as u32)
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.piece(id).map(str::to_owned)
    }

    fn get_vocab(&self) -> HashMap<String, u32> {
        (0..self.ends.len() as u32)
            .filter_map(|id| {
                let piece = self.piece(id)?;
                (self.token_to_id(piece) == Some(id)).then(|| (piece.to_owned(), id))
            })
            .collect()
    }

    fn get_vocab_size(&self) -> usize {
        self.ends.len()
    }

    fn save(&self, _folder: &Path, _prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        Err("the compact Unigram model is read-only".into())
    }

    fn get_trainer(&self) -> UnigramTrainer {
        UnigramTrainer::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(pieces: &[(&str, f64)], unk_id: u32) -> CompactUnigram {
        CompactUnigram::try_from(UnigramFile {
            kind: "Unigram".to_owned(),
            unk_id: Some(unk_id),
            vocab: pieces
                .iter()
                .map(|(piece, score)| ((*piece).to_owned(), *score))
                .collect(),
            byte_fallback: false,
        })
        .unwrap()
    }

    fn pieces(model: &CompactUnigram, sentence: &str) -> Vec<String> {
        model
            .tokenize(sentence)
            .unwrap()
            .into_iter()
            .map(|token| token.value)
            .collect()
    }

    #[test]
    fn takes_the_best_scoring_path_and_fuses_unknown_characters() {
        // The example of `tokenizers`' `Unigram::encode`.
        let model = model(
            &[
                ("<unk>", 0.0),
                ("a", 0.0),
                ("b", 0.0),
                ("c", 0.0),
                ("d", 0.0),
                ("cd", 1.0),
                ("ab", 2.0),
                ("abc", 5.0),
                ("abcd", 10.0),
            ],
            0,
        );
        assert_eq!(
            pieces(&model, "abcdacdxx"),
            ["abcd", "a", "cd", "xx"].map(str::to_owned)
        );
        let tokens = model.tokenize("abcdacdxx").unwrap();
        assert_eq!(
            tokens.iter().map(|t| t.id).collect::<Vec<_>>(),
            [8, 1, 5, 0]
        );
        assert_eq!(tokens[3].offsets, (7, 9));
        assert!(model.tokenize("").unwrap().is_empty());
    }

    #[test]
    fn a_piece_listed_twice_is_its_last_id_and_multibyte_characters_stay_whole() {
        let model = model(
            &[
                ("<unk>", 0.0),
                ("引", -1.0),
                ("継", -1.0),
                ("引", -2.0),
                ("引継ぎ", -0.5),
            ],
            0,
        );
        assert_eq!(model.token_to_id("引"), Some(3));
        assert_eq!(model.id_to_token(1).as_deref(), Some("引"));
        assert_eq!(model.get_vocab_size(), 5);
        assert_eq!(model.get_vocab().len(), 4);
        assert_eq!(pieces(&model, "引継ぎ"), ["引継ぎ"]);
        let tokens = model.tokenize("引継と引").unwrap();
        let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
        assert_eq!(ids, [3, 2, 0, 3]);
        assert_eq!(tokens[2].offsets, (6, 9));
    }

    #[test]
    fn refuses_what_it_cannot_tokenize_as_tokenizers_does() {
        let file = |unk_id, byte_fallback| UnigramFile {
            kind: "Unigram".to_owned(),
            unk_id,
            vocab: vec![("<unk>".to_owned(), 0.0)],
            byte_fallback,
        };
        assert!(CompactUnigram::try_from(file(None, false)).is_err());
        assert!(CompactUnigram::try_from(file(Some(1), false)).is_err());
        assert!(CompactUnigram::try_from(file(Some(0), true)).is_err());
    }

    /// Every text of the eval sets and the corpus, and some awkward ones, encode to the same
    /// tokens, ids and offsets as with `tokenizers`' own Unigram on the real model.
    #[test]
    fn encodes_as_tokenizers_does_on_the_real_model() {
        let cache_dir = crate::setup::default_cache_dir().unwrap();
        let paths =
            crate::setup::ensure_model(&cache_dir, &|line| eprintln!("setup: {line}")).unwrap();
        let json = std::fs::read(paths.model_dir.join("tokenizer.json")).unwrap();
        let theirs = tokenizers::Tokenizer::from_bytes(&json).unwrap();
        let ours: CompactTokenizer = serde_json::from_slice(&json).unwrap();
        assert_eq!(ours.get_vocab_size(true), theirs.get_vocab_size(true));

        let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
        let mut texts: Vec<String> = [
            "query: 山梨県の伴走支援の体制",
            "</s> <s> <pad> special tokens in text <mask>",
            "絵文字😀と私用領域\u{e000}と結合文字が\u{3099}と制御文字\u{7}と𠮷野家",
            "全角ＡＢＣ１２３と半角ｶﾀｶﾅ、丸数字①②、㈱と㌔",
            "  leading and   repeated   spaces\tand\ttabs\n\nnewlines  ",
            "",
        ]
        .map(str::to_owned)
        .to_vec();
        for set in ["seed", "jsquad", "jaquad", "lawqa"] {
            for file in ["questions.jsonl", "contexts.jsonl"] {
                let Ok(lines) = std::fs::read_to_string(shared.join("eval").join(set).join(file))
                else {
                    continue;
                };
                for line in lines.lines() {
                    let record: serde_json::Value = serde_json::from_str(line).unwrap();
                    for field in ["question", "text"] {
                        if let Some(text) = record[field].as_str() {
                            texts.push(text.to_owned());
                        }
                    }
                }
            }
        }
        for entry in std::fs::read_dir(shared.join("corpus/text")).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            texts.extend(text.split("\n\n").map(str::to_owned));
        }
        assert!(texts.len() > 3000, "{} texts", texts.len());
        for text in &texts {
            let ours = ours.encode(text.as_str(), true).unwrap();
            let theirs = theirs.encode(text.as_str(), true).unwrap();
            assert_eq!(ours.get_ids(), theirs.get_ids(), "{text:.40}");
            assert_eq!(ours.get_tokens(), theirs.get_tokens(), "{text:.40}");
            assert_eq!(ours.get_offsets(), theirs.get_offsets(), "{text:.40}");
        }
    }
}
