//! Rebuilds lines of text from glyph positions instead of content-stream order.
//!
//! Glyphs are grouped by writing direction, then into lines by baseline (columns for
//! vertical writing), lines are ordered top to bottom (right to left for vertical
//! writing) and glyphs along each line. A space goes where the gap between two glyphs
//! exceeds a quarter of an em and the PDF drew none.

use super::interp::{Direction, Glyph};
use super::radicals::unify_radical;

/// Baselines closer than this share a line (in em of the larger glyph).
const LINE_TOLERANCE: f32 = 0.45;
/// Gaps wider than this become a space (in em).
const SPACE_GAP: f32 = 0.25;
/// The same between two glyphs of narrow scripts (Latin, digits): word spaces of justified
/// Latin text shrink to about a fifth of an em.
const NARROW_SPACE_GAP: f32 = 0.15;
/// A glyph drawn again this close to the same glyph is a duplicate (fake bold).
const DUPLICATE_DISTANCE: f32 = 0.1;

/// The text of a page: lines separated by `'\n'`.
pub fn lay_out(glyphs: &[Glyph], text: &str) -> String {
    let mut directions: Vec<Direction> = Vec::new();
    for glyph in glyphs {
        if !directions.contains(&glyph.direction) {
            directions.push(glyph.direction);
        }
    }
    let mut out = String::new();
    for direction in directions {
        let mut indices: Vec<usize> = (0..glyphs.len())
            .filter(|&i| glyphs[i].direction == direction)
            .collect();
        indices.sort_by(|&a, &b| glyphs[b].v.total_cmp(&glyphs[a].v).then(a.cmp(&b)));
        let mut line: Vec<usize> = Vec::new();
        let mut reference: Option<&Glyph> = None;
        for i in indices {
            let glyph = &glyphs[i];
            if let Some(first) = reference {
                let tolerance = LINE_TOLERANCE * first.size.max(glyph.size).max(1.0);
                if first.v - glyph.v > tolerance {
                    write_line(&mut line, glyphs, text, &mut out);
                    reference = Some(glyph);
                }
            } else {
                reference = Some(glyph);
            }
            line.push(i);
        }
        write_line(&mut line, glyphs, text, &mut out);
    }
    out
}

/// Orders one line's glyphs along the line and appends its text (and a newline) to `out`.
fn write_line(line: &mut Vec<usize>, glyphs: &[Glyph], text: &str, out: &mut String) {
    line.sort_by(|&a, &b| glyphs[a].u.total_cmp(&glyphs[b].u).then(a.cmp(&b)));
    let mut current = String::new();
    let mut previous: Option<(&Glyph, &str)> = None;
    let mut pending_space = false;
    for &i in line.iter() {
        let glyph = &glyphs[i];
        let piece = text
            .get(glyph.start as usize..glyph.end as usize)
            .unwrap_or_default();
        if piece.trim().is_empty() {
            pending_space = true;
            continue;
        }
        if let Some((last, last_piece)) = previous {
            let em = glyph.size.max(last.size);
            if last_piece == piece && (glyph.u - last.u).abs() < DUPLICATE_DISTANCE * em {
                continue;
            }
            let narrow = last_piece.chars().next_back().is_some_and(is_narrow)
                && piece.chars().next().is_some_and(is_narrow);
            let gap = if narrow { NARROW_SPACE_GAP } else { SPACE_GAP };
            if glyph.u - (last.u + last.width) > gap * em {
                pending_space = true;
            }
        }
        if pending_space && !current.is_empty() {
            current.push(' ');
        }
        pending_space = false;
        current.extend(piece.chars().map(unify_radical));
        previous = Some((glyph, piece));
    }
    let trimmed = current.trim();
    if !trimmed.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(trimmed);
    }
    line.clear();
}

/// Characters of scripts set in proportional, narrow glyphs (not CJK or full-width forms).
fn is_narrow(c: char) -> bool {
    !matches!(c,
        '\u{1100}'..='\u{11FF}'
        | '\u{2E80}'..='\u{A4CF}'
        | '\u{AC00}'..='\u{D7AF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{FE30}'..='\u{FE4F}'
        | '\u{FF00}'..='\u{FF60}'
        | '\u{FFE0}'..='\u{FFE6}'
        | '\u{20000}'..='\u{3FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glyph(u: f32, v: f32, start: u32, end: u32) -> Glyph {
        Glyph {
            u,
            v,
            width: 10.0,
            size: 10.0,
            direction: Direction::Horizontal(0),
            start,
            end,
        }
    }

    #[test]
    fn orders_by_position_and_inserts_spaces() {
        // "ab" on the upper line drawn after "cd" below it, 'b' before 'a', a gap before 'e'.
        let text = "cdbae";
        let glyphs = [
            glyph(0.0, 100.0, 0, 1),
            glyph(10.0, 101.0, 1, 2),
            glyph(10.0, 120.0, 2, 3),
            glyph(0.0, 120.0, 3, 4),
            glyph(40.0, 120.0, 4, 5),
        ];
        assert_eq!(lay_out(&glyphs, text), "ab e\ncd");
    }

    #[test]
    fn vertical_columns_right_to_left() {
        let text = "一二三四";
        let g = |u: f32, v: f32, start: u32| Glyph {
            u,
            v,
            width: 10.0,
            size: 10.0,
            direction: Direction::Vertical,
            start,
            end: start + 3,
        };
        let glyphs = [
            g(-700.0, 100.0, 6),
            g(-690.0, 100.0, 9),
            g(-700.0, 120.0, 0),
            g(-690.0, 120.0, 3),
        ];
        assert_eq!(lay_out(&glyphs, text), "一二\n三四");
    }
}
