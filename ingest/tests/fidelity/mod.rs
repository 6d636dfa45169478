//! The text fidelity metric of `shared/corpus/README.md`: NFKC both texts, remove all
//! whitespace, then 1 − Levenshtein distance / max(length) over chars. The distance is exact,
//! computed by Ukkonen's banded algorithm with a doubling band (`O(n·d)` time, two rows of
//! memory), so 128 KB texts take well under a second in release mode.

use unicode_normalization::UnicodeNormalization;

/// Normalised form compared by the score: NFKC without whitespace.
fn comparable(text: &str) -> Vec<char> {
    text.nfkc().filter(|c| !c.is_whitespace()).collect()
}

/// Levenshtein distance if it is at most `k`, computed in the band |i − j| ≤ k.
fn levenshtein_within(a: &[char], b: &[char], k: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > k {
        return None;
    }
    let width = 2 * k + 1;
    let inf = usize::MAX / 2;
    // Row i holds columns j = i − k ..= i + k at offsets 0 ..= 2k.
    let mut previous = vec![inf; width];
    let mut current = vec![inf; width];
    for (offset, cell) in previous.iter_mut().enumerate().skip(k) {
        let j = offset - k;
        if j <= b.len() {
            *cell = j;
        }
    }
    for i in 1..=a.len() {
        current.fill(inf);
        for offset in 0..width {
            let Some(j) = (i + offset).checked_sub(k) else {
                continue;
            };
            if j > b.len() {
                break;
            }
            if j == 0 {
                current[offset] = i;
                continue;
            }
            // Same column in the row above is at the same offset; column j is one further.
            let substitute = previous[offset] + usize::from(a[i - 1] != b[j - 1]);
            let delete = previous.get(offset + 1).map_or(inf, |d| d + 1);
            let insert = offset.checked_sub(1).map_or(inf, |left| current[left] + 1);
            current[offset] = substitute.min(delete).min(insert);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    let distance = previous.get(b.len() + k - a.len())?.to_owned();
    (distance <= k).then_some(distance)
}

/// Exact Levenshtein distance over chars.
fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut k = a.len().abs_diff(b.len()).max(64);
    loop {
        if let Some(distance) = levenshtein_within(a, b, k) {
            return distance;
        }
        k *= 2;
    }
}

/// 1 − normalised Levenshtein distance between the comparable forms of two texts, with
/// the distance and the longer length.
pub fn score(extracted: &str, expected: &str) -> (f64, usize, usize) {
    let (a, b) = (comparable(extracted), comparable(expected));
    let longest = a.len().max(b.len());
    if longest == 0 {
        return (1.0, 0, 0);
    }
    let distance = levenshtein(&a, &b);
    (1.0 - distance as f64 / longest as f64, distance, longest)
}

#[test]
fn levenshtein_is_exact() {
    let d = |a: &str, b: &str| {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        levenshtein(&a, &b)
    };
    assert_eq!(d("kitten", "sitting"), 3);
    assert_eq!(d("", "abc"), 3);
    assert_eq!(d("地域DX", "地域ＤＸ支援"), 4);
    let long_a: String = "あいうえお".repeat(200);
    let long_b: String = format!("x{}", "あいうえお".repeat(200).replacen('う', "", 150));
    assert_eq!(d(&long_a, &long_b), 151);
}
