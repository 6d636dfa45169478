//! Bytes of a text file to a Rust string: BOMs, UTF-8, Shift_JIS/CP932, EUC-JP, CRLF.

use encoding_rs::{EUC_JP, SHIFT_JIS, UTF_8, UTF_16BE, UTF_16LE};

/// Why bytes are not text we can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeFailure {
    Binary,
    UnknownEncoding,
}

impl DecodeFailure {
    pub fn reason(self) -> &'static str {
        match self {
            DecodeFailure::Binary => "it contains NUL bytes, so it looks binary",
            DecodeFailure::UnknownEncoding => "its bytes are invalid in every supported encoding",
        }
    }
}

/// Decodes text bytes, detecting the encoding, and turns CRLF and lone CR into LF.
pub fn decode_text(bytes: &[u8]) -> Result<String, DecodeFailure> {
    let text = if let Some((encoding, bom_len)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, had_errors) = encoding.decode_without_bom_handling(&bytes[bom_len..]);
        if had_errors {
            return Err(DecodeFailure::UnknownEncoding);
        }
        text.into_owned()
    } else {
        if bytes.contains(&0) {
            return Err(DecodeFailure::Binary);
        }
        decode_without_bom(bytes)?
    };
    Ok(normalise_line_endings(&text))
}

fn decode_without_bom(bytes: &[u8]) -> Result<String, DecodeFailure> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(text.to_owned());
    }
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(bytes, true);
    let guess = detector.guess(None, true);
    // The detector may guess any legacy encoding; Japanese documents are Shift_JIS or EUC-JP, and
    // a guess outside those is only accepted when it decodes without errors.
    let candidates = [guess, SHIFT_JIS, EUC_JP];
    for encoding in candidates {
        if encoding == UTF_8 || encoding == UTF_16LE || encoding == UTF_16BE {
            continue;
        }
        let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
        if !had_errors {
            return Ok(text.into_owned());
        }
    }
    Err(DecodeFailure::UnknownEncoding)
}

fn normalise_line_endings(text: &str) -> String {
    if !text.contains('\r') {
        return text.to_owned();
    }
    text.replace("\r\n", "\n").replace('\r', "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "山梨県は伴走支援を受け入れた。\r\nDX推進課に担当職員11名。\n";

    #[test]
    fn utf8_with_and_without_bom_read_the_same() {
        let plain = decode_text(SAMPLE.as_bytes()).unwrap();
        let mut with_bom = vec![0xEF, 0xBB, 0xBF];
        with_bom.extend_from_slice(SAMPLE.as_bytes());
        assert_eq!(decode_text(&with_bom).unwrap(), plain);
        assert_eq!(
            plain,
            "山梨県は伴走支援を受け入れた。\nDX推進課に担当職員11名。\n"
        );
    }

    #[test]
    fn shift_jis_and_euc_jp_read_the_same_as_utf8() {
        let expected = decode_text(SAMPLE.as_bytes()).unwrap();
        for encoding in [SHIFT_JIS, EUC_JP] {
            let (bytes, _, unmappable) = encoding.encode(SAMPLE);
            assert!(!unmappable);
            assert_eq!(
                decode_text(&bytes).unwrap(),
                expected,
                "{}",
                encoding.name()
            );
        }
    }

    #[test]
    fn utf16_with_bom_is_read() {
        let mut bytes = vec![0xFF, 0xFE];
        for unit in SAMPLE.encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(
            decode_text(&bytes).unwrap(),
            decode_text(SAMPLE.as_bytes()).unwrap()
        );
    }

    #[test]
    fn binary_is_refused() {
        assert_eq!(decode_text(b"\x00\x01\x02PK"), Err(DecodeFailure::Binary));
    }
}
