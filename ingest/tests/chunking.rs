//! Chunking invariants on the real corpus and on arbitrary text.

use std::path::PathBuf;

use hikitsugi_ingest::{
    Chunk, ChunkOptions, DocumentMetadata, PAGE_SEPARATOR, extract, parse_document,
};
use proptest::prelude::*;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/text")
}

fn corpus_files() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir())
        .expect("../shared/corpus/text must sit beside the repository")
        .map(|entry| {
            let path = entry.unwrap().path();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), 5);
    files
}

fn metadata() -> DocumentMetadata {
    DocumentMetadata {
        title: None,
        owner: "soumu".into(),
        readers: vec!["public".into()],
        kind: "plan".into(),
        date: None,
    }
}

fn chars(text: &str) -> Vec<char> {
    text.chars().collect()
}

fn is_terminal(ch: char) -> bool {
    matches!(ch, '。' | '!' | '?' | '！' | '？' | '\n' | '\u{c}')
}

fn is_closing(ch: char) -> bool {
    matches!(ch, '」' | '』' | ')' | '）' | '】' | '〕' | '"' | '\'')
}

/// Whether position `at` (a char index) is a sentence boundary of `text`.
fn is_boundary(text: &[char], at: usize) -> bool {
    if at == 0 || at >= text.len() {
        return true;
    }
    let mut index = at;
    while index > 0 && (text[index - 1] == ' ' || text[index - 1] == '\t') {
        index -= 1;
    }
    while index > 0 && is_closing(text[index - 1]) {
        index -= 1;
    }
    let latin_full_stop = text[index - 1] == '.' && (index < at || text[at].is_whitespace());
    index == 0
        || is_terminal(text[index - 1])
        || latin_full_stop
        || text[at] == '\n'
        || text[at] == '\u{c}'
}

/// Length of the sentence around char index `at`.
fn sentence_len_around(text: &[char], at: usize) -> usize {
    let mut start = at.min(text.len());
    while start > 0 && !is_terminal(text[start - 1]) {
        start -= 1;
    }
    let mut end = at;
    while end < text.len() && !is_terminal(text[end]) {
        end += 1;
    }
    end - start + 1
}

fn check_chunks(text: &str, chunks: &[Chunk], options: &ChunkOptions) {
    let text_chars = chars(text);
    let page_count = text.split(PAGE_SEPARATOR).count() as u32;
    for chunk in chunks {
        let len = chunk.text.chars().count();
        assert!(
            len <= options.max_chars,
            "chunk {} has {len} chars: {:?}",
            chunk.ordinal,
            chunk.text
        );
        assert!(!chunk.text.trim().is_empty());
        let slice: String = text_chars[chunk.char_start..chunk.char_end]
            .iter()
            .collect();
        assert_eq!(slice, chunk.text, "char range of chunk {}", chunk.ordinal);
        let page_of = |char_index: usize| {
            text_chars[..char_index]
                .iter()
                .filter(|&&ch| ch == PAGE_SEPARATOR)
                .count() as u32
                + 1
        };
        assert_eq!(chunk.page_start, page_of(chunk.char_start));
        assert_eq!(chunk.page_end, page_of(chunk.char_end - 1));
        assert!(chunk.page_start <= chunk.page_end && chunk.page_end <= page_count);
        for cut in [chunk.char_start, chunk.char_end] {
            let longest_fitting = options.max_chars - options.overlap_chars;
            assert!(
                is_boundary(&text_chars, cut)
                    || sentence_len_around(&text_chars, cut) > longest_fitting,
                "chunk {} is cut mid-sentence at {cut}: …{}|{}…",
                chunk.ordinal,
                text_chars[cut.saturating_sub(20)..cut]
                    .iter()
                    .collect::<String>(),
                text_chars[cut..(cut + 20).min(text_chars.len())]
                    .iter()
                    .collect::<String>()
            );
        }
    }
    let ordinals: Vec<u32> = chunks.iter().map(|chunk| chunk.ordinal).collect();
    assert_eq!(ordinals, (0..chunks.len() as u32).collect::<Vec<_>>());
}

#[test]
fn corpus_chunks_respect_limits_sentences_and_ranges() {
    for max_chars in [200, 500, 800] {
        let options = ChunkOptions {
            max_chars,
            overlap_chars: max_chars / 5,
        };
        for (name, bytes) in corpus_files() {
            let document = parse_document(&name, &bytes, metadata(), &options).unwrap();
            assert!(document.chunks.len() > 3, "{name}");
            check_chunks(&document.text, &document.chunks, &options);
            let extracted = extract(&name, &bytes).unwrap().text();
            assert_eq!(
                document.text, extracted,
                "chunks index into what `extract` prints"
            );
        }
    }
}

#[test]
fn every_chunk_of_the_applications_knows_its_prefecture() {
    let (name, bytes) = corpus_files()
        .into_iter()
        .find(|(name, _)| name.starts_with("000_"))
        .unwrap();
    let document = parse_document(&name, &bytes, metadata(), &ChunkOptions::default()).unwrap();
    let prefectures = ["北海道", "山梨県", "京都府", "宮崎県", "沖縄県"];
    let opening_table = document
        .chunks
        .iter()
        .take_while(|chunk| !chunk.text.contains("別添3-1"))
        .count();
    assert!(
        opening_table <= 2,
        "the opening table is at most two chunks"
    );
    let mut seen = Vec::new();
    for chunk in &document.chunks[opening_table..] {
        let top = chunk
            .heading_path
            .first()
            .unwrap_or_else(|| panic!("chunk {} has no heading path", chunk.ordinal));
        let prefecture = prefectures
            .iter()
            .find(|prefecture| top.contains(&format!("({prefecture})")))
            .unwrap_or_else(|| {
                panic!(
                    "chunk {} heading {top:?} names no prefecture",
                    chunk.ordinal
                )
            });
        // The chunk's own text never belongs to another prefecture's application.
        assert!(!chunk.text.contains("別添") || chunk.text.contains(&format!("({prefecture})")));
        if seen.last() != Some(prefecture) {
            seen.push(*prefecture);
        }
    }
    assert_eq!(seen, prefectures, "prefectures in order, each in one run");
}

#[test]
fn shift_jis_and_euc_jp_files_read_the_same_as_utf8() {
    for (name, bytes) in corpus_files() {
        let text = String::from_utf8(bytes).unwrap();
        for encoding in [encoding_rs::SHIFT_JIS, encoding_rs::EUC_JP] {
            // Keep the characters the legacy encoding can represent, so both files say the same.
            let representable: String = text
                .chars()
                .filter(|ch| !encoding.encode(ch.encode_utf8(&mut [0; 4])).2)
                .collect();
            let (encoded, _, unmappable) = encoding.encode(&representable);
            assert!(!unmappable);
            assert_ne!(&encoded[..], representable.as_bytes());
            let expected = extract(&name, representable.as_bytes()).unwrap().text();
            assert_eq!(
                extract(&name, &encoded).unwrap().text(),
                expected,
                "{name} in {}",
                encoding.name()
            );
        }
    }
}

#[test]
fn unsupported_types_name_the_supported_ones() {
    let error = extract("minutes.doc", b"\xD0\xCF\x11\xE0")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(".txt")
            && error.contains(".md")
            && error.contains(".pdf")
            && error.contains(".docx"),
        "{error}"
    );
}

#[test]
fn markdown_headings_become_the_heading_path() {
    let text = "# 事業報告\n\n## 体制\n\n県はDX推進課に担当職員11名を置き、市町村の相談に応じる体制を整えた。\n\n## 成果\n\n相談は300回行い、市町村のDX推進計画の策定を支援した。\n";
    let document = parse_document(
        "report.md",
        text.as_bytes(),
        metadata(),
        &ChunkOptions {
            max_chars: 60,
            overlap_chars: 10,
        },
    )
    .unwrap();
    assert_eq!(document.title, "事業報告");
    let with_body: Vec<&Chunk> = document
        .chunks
        .iter()
        .filter(|chunk| chunk.text.contains("300回"))
        .collect();
    assert_eq!(with_body.len(), 1);
    assert_eq!(with_body[0].heading_path, vec!["事業報告", "成果"]);
}

#[test]
fn numbered_sections_and_the_end_of_a_cut_line_keep_their_own_headings() {
    // A line with no sentence end, longer than a chunk, is cut mid-word; its short end belongs
    // to its own section, not in front of the next section under the same top heading.
    // 「１　総則」-style headings count as headings.
    let long_line = "➢地域社会DX推進体制の構築".repeat(60);
    let text = format!(
        "２．推進におけるポイント\n\n１　リファレンスモデル\n\n{long_line}\n\n２　地方公共団体内の体制構築\n\n庁内原課から1名ずつリーダーを選出する。\n"
    );
    let document = parse_document(
        "model.txt",
        text.as_bytes(),
        metadata(),
        &ChunkOptions::default(),
    )
    .unwrap();
    let with_leaders: Vec<&Chunk> = document
        .chunks
        .iter()
        .filter(|chunk| chunk.text.contains("リーダーを選出"))
        .collect();
    assert_eq!(with_leaders.len(), 1);
    assert_eq!(
        with_leaders[0].heading_path.last().map(String::as_str),
        Some("2 地方公共団体内の体制構築")
    );
    assert!(
        with_leaders[0]
            .text
            .starts_with("2 地方公共団体内の体制構築"),
        "{:?}",
        with_leaders[0].text
    );
    for chunk in &document.chunks {
        if chunk.text.contains("➢") {
            assert_eq!(
                chunk.heading_path.last().map(String::as_str),
                Some("1 リファレンスモデル"),
                "{chunk:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_as_text_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = extract("x.txt", &bytes);
        let _ = extract("x.md", &bytes);
        let _ = parse_document("x.txt", &bytes, metadata(), &ChunkOptions::default());
    }

    #[test]
    fn arbitrary_japanese_text_chunks_keep_their_invariants(
        sentences in proptest::collection::vec("[あ-んア-ン一-龥A-Za-z0-9 ]{1,120}[。！？\n]{0,2}(\n\n|\t|1\\. |\\(1\\)|①)?", 1..60),
        max_chars in 60usize..400,
    ) {
        let text = sentences.concat();
        let options = ChunkOptions { max_chars, overlap_chars: max_chars / 4 };
        let document = parse_document("x.txt", text.as_bytes(), metadata(), &options);
        if let Ok(document) = document {
            check_chunks(&document.text, &document.chunks, &options);
        }
    }
}

/// Headings written as Markdown, one `#` per level, read back as the heading paths of the text.
#[test]
fn headings_written_as_markdown_read_back_as_the_same_paths() {
    let body = "本文はこの節の内容を説明するための四十字ほどの文章です。ここまで。";
    let text = [
        "第1章 背景",
        body,
        "1. 目的",
        body,
        "(1) 課題",
        body,
        "(2) 体制",
        body,
        "2. 方法",
        body,
        "第2章 計画",
        body,
        "■ 方針",
        body,
    ]
    .join("\n");
    let markdown = hikitsugi_ingest::with_markdown_headings(&text, false);
    let headings: Vec<&str> = markdown
        .lines()
        .filter(|line| line.starts_with('#'))
        .collect();
    assert_eq!(
        headings,
        [
            "# 第1章 背景",
            "## 1. 目的",
            "### (1) 課題",
            "### (2) 体制",
            "## 2. 方法",
            "# 第2章 計画",
            "## ■ 方針"
        ]
    );
    assert_eq!(markdown.lines().count(), text.lines().count());
    let options = ChunkOptions {
        max_chars: 50,
        overlap_chars: 0,
    };
    let paths = |text: &str, markdown: bool| -> Vec<Vec<String>> {
        hikitsugi_ingest::chunk_text(text, markdown, &options)
            .unwrap()
            .into_iter()
            .map(|chunk| chunk.heading_path)
            .collect()
    };
    let as_text = paths(&text, false);
    assert_eq!(as_text.len(), 7, "one chunk per section");
    assert_eq!(paths(&markdown, true), as_text);
}
