//! Rebuilds lines of text from glyph positions instead of content-stream order.
//!
//! Glyphs are grouped by writing direction, then into lines by baseline (columns for
//! vertical writing), lines are ordered top to bottom (right to left for vertical
//! writing) and glyphs along each line. A space goes where the gap between two glyphs
//! exceeds a quarter of an em and the PDF drew none.
//!
//! Pages set in several columns are read column by column with a recursive XY-cut over
//! the lines: a region of lines is cut where a gutter (whitespace along the lines'
//! stacking direction) runs through a band of consecutive lines, the band is read one
//! side after the other, and the lines crossing the gutter (a full-width title, a
//! footer) are read where they stand. A gutter is only taken when the text on both sides
//! looks like running text: several lines, a width of some ems, and most lines filling
//! their side. So the cells of a table, a table of contents with its page numbers, or a
//! label and its value stay on one line — at the price of reading a two-column page
//! whose columns hold only short lines across both columns.
//!
//! The same cut works in the frame of vertical writing, where lines are columns and the
//! along-line axis runs down the page: a gutter there is a horizontal band between two
//! blocks (段), and the upper block is read first. Producers that set vertical writing
//! with a horizontal font (Chromium, LibreOffice) draw each upright glyph on its own and
//! rotate runs of Latin letters a quarter turn; such pages are recognised by their
//! glyphs following each other down the page, and are moved into the vertical frame.

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

/// Narrowest gutter between columns (in em of the region's median glyph): Chromium's
/// default column gap is one em.
const MIN_GUTTER: f32 = 0.75;
/// Fewest lines a column holds on each side of a gutter.
const MIN_COLUMN_LINES: usize = 3;
/// Narrowest column (in em).
const MIN_COLUMN_WIDTH: f32 = 8.0;
/// Least width of the narrower column over the wider one.
const MIN_COLUMN_RATIO: f32 = 0.4;
/// A line fills its column when it ends this close to the column's far edge (in em).
const FULL_LINE_SLACK: f32 = 2.5;
/// Least share of each column's lines that fill it.
const MIN_FULL_SHARE: f32 = 0.5;
/// Coverage levels tried per region: gutters crossed by up to five lines (titles, headers,
/// footers, captions across the columns).
const MAX_LEVELS: usize = 6;
/// Gutter candidates tried per region, from the lowest coverage up.
const MAX_CANDIDATES: usize = 16;
/// Nesting of cuts followed; deeper regions are read line by line.
const MAX_DEPTH: usize = 8;

/// Top of an upright glyph's em box above its baseline (in em; IPA and Noto CJK fonts).
const ASCENT: f32 = 0.88;
/// Middle of a glyph's em box above its baseline (in em): (ascent − descent) / 2.
const MIDDLE: f32 = 0.38;
/// Range of the step down the page between two glyphs stacked in a column (in em).
const STACK_STEP: (f32, f32) = (0.8, 1.3);
/// Fewest stacked glyph pairs that make a page vertical.
const MIN_STACKED: usize = 4;

/// The text of a page: lines separated by `'\n'`.
pub fn lay_out(glyphs: &[Glyph], text: &str) -> String {
    let glyphs = orient(glyphs);
    let mut groups: Vec<(Direction, Vec<usize>)> = Vec::new();
    for (i, glyph) in glyphs.iter().enumerate() {
        match groups.iter_mut().find(|(d, _)| *d == glyph.direction) {
            Some((_, indices)) => indices.push(i),
            None => groups.push((glyph.direction, vec![i])),
        }
    }
    let mut page = Page {
        glyphs: &glyphs,
        text,
        out: String::new(),
    };
    for (_, indices) in groups {
        page.region(indices, 0);
    }
    page.out
}

/// How the second of two stream-consecutive glyphs follows the first.
#[derive(PartialEq)]
enum Step {
    /// Next along a horizontal line.
    Along,
    /// One em further down, as upright glyphs in a vertical column.
    Down,
    /// Anything else (a new line, a jump).
    Other,
}

fn step(a: &Glyph, b: &Glyph) -> Step {
    if a.direction != Direction::Horizontal(0) || b.direction != a.direction {
        return Step::Other;
    }
    let em = a.size.max(b.size).max(f32::EPSILON);
    let (du, dv) = ((b.u - a.u) / em, (a.v - b.v) / em);
    if du.abs() < 0.3 && (STACK_STEP.0..=STACK_STEP.1).contains(&dv) {
        Step::Down
    } else if dv.abs() < 0.1 && du > 0.0 && du < 2.0 {
        Step::Along
    } else {
        Step::Other
    }
}

/// Glyphs in the frame they are read in. On a page whose upright horizontal glyphs mostly
/// follow each other down the page, those not in a horizontal run move into the vertical
/// frame (line position: column centre; along the line: top of the em box, one em each).
/// On a page with vertical text, glyphs rotated a quarter turn clockwise (Latin letters
/// set sideways) join it, centred on their column.
fn orient(glyphs: &[Glyph]) -> Vec<Glyph> {
    let steps: Vec<Step> = glyphs.windows(2).map(|w| step(&w[0], &w[1])).collect();
    let down = steps.iter().filter(|s| **s == Step::Down).count();
    let along = steps.iter().filter(|s| **s == Step::Along).count();
    let stacked = down >= MIN_STACKED && down > along;
    let vertical = stacked || glyphs.iter().any(|g| g.direction == Direction::Vertical);
    let in_run = |i: usize| {
        (i > 0 && steps[i - 1] == Step::Along) || steps.get(i).is_some_and(|s| *s == Step::Along)
    };
    glyphs
        .iter()
        .enumerate()
        .map(|(i, &g)| match g.direction {
            Direction::Horizontal(0) if stacked && !in_run(i) => Glyph {
                u: -(g.v + ASCENT * g.size),
                v: g.u + g.width / 2.0,
                width: g.size,
                direction: Direction::Vertical,
                ..g
            },
            Direction::Horizontal(3) if vertical => Glyph {
                v: g.v + MIDDLE * g.size,
                direction: Direction::Vertical,
                ..g
            },
            _ => g,
        })
        .collect()
}

/// Glyphs sharing a baseline, in order along the line.
struct Line {
    glyphs: Vec<usize>,
    /// Stretches along the line covered by visible glyphs, gaps narrower than a gutter
    /// closed, in order.
    spans: Vec<(f32, f32)>,
}

/// A run of consecutive lines of a region, read as one.
struct Band {
    lines: usize,
    /// Where the band splits into two columns read one after the other, if it does.
    gutter: Option<f32>,
}

struct Page<'a> {
    glyphs: &'a [Glyph],
    text: &'a str,
    out: String,
}

impl Page<'_> {
    fn piece(&self, i: usize) -> &str {
        let glyph = &self.glyphs[i];
        self.text
            .get(glyph.start as usize..glyph.end as usize)
            .unwrap_or_default()
    }

    fn visible(&self, i: usize) -> bool {
        !self.piece(i).trim().is_empty()
    }

    /// Reads the glyphs `indices` (of one direction) as a region of the page.
    fn region(&mut self, indices: Vec<usize>, depth: usize) {
        let mut sizes: Vec<f32> = indices
            .iter()
            .filter(|&&i| self.visible(i))
            .map(|&i| self.glyphs[i].size)
            .collect();
        let middle = sizes.len() / 2;
        let em = match sizes.get(middle) {
            Some(_) => *sizes.select_nth_unstable_by(middle, f32::total_cmp).1,
            None => 0.0,
        }
        .max(1.0);
        let lines = self.lines(indices, em);
        self.read(lines, em, depth);
    }

    /// Groups glyphs into lines by baseline, ordered from the first line to the last.
    fn lines(&self, mut indices: Vec<usize>, em: f32) -> Vec<Line> {
        let glyphs = self.glyphs;
        indices.sort_by(|&a, &b| glyphs[b].v.total_cmp(&glyphs[a].v).then(a.cmp(&b)));
        let mut lines = Vec::new();
        let mut line: Vec<usize> = Vec::new();
        let mut reference: Option<&Glyph> = None;
        for i in indices {
            let glyph = &glyphs[i];
            if let Some(first) = reference {
                let tolerance = LINE_TOLERANCE * first.size.max(glyph.size).max(1.0);
                if first.v - glyph.v > tolerance {
                    lines.push(self.line(std::mem::take(&mut line), em));
                    reference = Some(glyph);
                }
            } else {
                reference = Some(glyph);
            }
            line.push(i);
        }
        if !line.is_empty() {
            lines.push(self.line(line, em));
        }
        lines
    }

    fn line(&self, mut glyphs: Vec<usize>, em: f32) -> Line {
        let all = self.glyphs;
        glyphs.sort_by(|&a, &b| all[a].u.total_cmp(&all[b].u).then(a.cmp(&b)));
        let mut spans: Vec<(f32, f32)> = Vec::new();
        for &i in glyphs.iter().filter(|&&i| self.visible(i)) {
            let (start, end) = (all[i].u, all[i].u + all[i].width.max(0.0));
            match spans.last_mut() {
                Some(last) if start - last.1 < MIN_GUTTER * em => last.1 = last.1.max(end),
                _ => spans.push((start, end)),
            }
        }
        Line { glyphs, spans }
    }

    /// Writes `lines` in reading order, cutting them into columns where they have some.
    fn read(&mut self, lines: Vec<Line>, em: f32, depth: usize) {
        let bands = if depth < MAX_DEPTH {
            cut(&lines, em)
        } else {
            None
        };
        let Some(bands) = bands else {
            for line in &lines {
                self.write_line(&line.glyphs);
            }
            return;
        };
        let mut lines = lines.into_iter();
        for band in bands {
            let band_lines: Vec<Line> = lines.by_ref().take(band.lines).collect();
            match band.gutter {
                Some(gutter) => {
                    let (first, second): (Vec<usize>, Vec<usize>) = band_lines
                        .iter()
                        .flat_map(|line| line.glyphs.iter().copied())
                        .partition(|&i| {
                            let glyph = &self.glyphs[i];
                            glyph.u + glyph.width / 2.0 < gutter
                        });
                    self.region(first, depth + 1);
                    self.region(second, depth + 1);
                }
                None => self.read(band_lines, em, depth + 1),
            }
        }
    }

    /// Appends one line's text (and a newline) to the output.
    fn write_line(&mut self, line: &[usize]) {
        let mut current = String::new();
        let mut previous: Option<(&Glyph, &str)> = None;
        let mut pending_space = false;
        for &i in line {
            let glyph = &self.glyphs[i];
            let piece = self.piece(i);
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
            if !self.out.is_empty() {
                self.out.push('\n');
            }
            self.out.push_str(trimmed);
        }
    }
}

/// Bands of `lines` with at least one of them in two columns, if a gutter makes any.
///
/// Gutters are sought where the fewest lines cover the along-line axis: first where no
/// line does (a gutter through the whole region), then where only a few do (a title or
/// a footer across the columns), each between text on both sides.
fn cut(lines: &[Line], em: f32) -> Option<Vec<Band>> {
    if lines.len() < MIN_COLUMN_LINES {
        return None;
    }
    let profile = coverage(lines);
    let (lo, hi) = (profile.first()?.0, profile.last()?.1);
    let mut levels: Vec<usize> = profile
        .iter()
        .map(|s| s.2)
        .filter(|&count| count <= lines.len() / 2)
        .collect();
    levels.sort_unstable();
    levels.dedup();
    levels.truncate(MAX_LEVELS);
    let mut tried = 0;
    for level in levels {
        let mut start: Option<f32> = None;
        for (i, &(from, to, count)) in profile.iter().enumerate() {
            if count > level {
                continue;
            }
            let begin = *start.get_or_insert(from);
            if profile.get(i + 1).is_some_and(|next| next.2 <= level) {
                continue;
            }
            start = None;
            if begin <= lo || to >= hi || to - begin < MIN_GUTTER * em {
                continue;
            }
            if tried == MAX_CANDIDATES {
                return None;
            }
            tried += 1;
            if let Some(bands) = bands(lines, (begin + to) / 2.0, em) {
                return Some(bands);
            }
        }
    }
    None
}

/// How many lines cover each stretch of the along-line axis: `(from, to, lines)` in order,
/// from the first glyph to the end of the last.
fn coverage(lines: &[Line]) -> Vec<(f32, f32, usize)> {
    let mut events: Vec<(f32, bool)> = lines
        .iter()
        .flat_map(|line| line.spans.iter())
        .flat_map(|&(start, end)| [(start, true), (end, false)])
        .collect();
    // Openings first where a span starts as another ends, so the count never drops below zero.
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut profile = Vec::new();
    let mut count = 0usize;
    for pair in events.windows(2) {
        let [(at, opens), (next, _)] = pair else {
            continue;
        };
        count = if *opens {
            count + 1
        } else {
            count.saturating_sub(1)
        };
        if next > at {
            profile.push((*at, *next, count));
        }
    }
    profile
}

/// Splits `lines` into bands at the lines that cross the gutter at `middle`; the bands
/// between them whose two sides read as columns are split there.
fn bands(lines: &[Line], middle: f32, em: f32) -> Option<Vec<Band>> {
    let core = (
        middle - MIN_GUTTER * em / 2.0,
        middle + MIN_GUTTER * em / 2.0,
    );
    let crosses = |line: &Line| line.spans.iter().any(|&(s, e)| s < core.1 && e > core.0);
    let mut bands: Vec<Band> = Vec::new();
    let mut start = 0;
    while start < lines.len() {
        let crossing = crosses(&lines[start]);
        let end = (start + 1..lines.len())
            .find(|&i| crosses(&lines[i]) != crossing)
            .unwrap_or(lines.len());
        let gutter = (!crossing && columns(&lines[start..end], middle, em)).then_some(middle);
        match bands.last_mut() {
            Some(last) if last.gutter.is_none() && gutter.is_none() => last.lines += end - start,
            _ => bands.push(Band {
                lines: end - start,
                gutter,
            }),
        }
        start = end;
    }
    bands.iter().any(|b| b.gutter.is_some()).then_some(bands)
}

/// Whether the text of `lines` on each side of `middle` is running text in a column.
fn columns(lines: &[Line], middle: f32, em: f32) -> bool {
    let mut widths = [0.0f32; 2];
    for (side, width) in widths.iter_mut().enumerate() {
        let extents: Vec<(f32, f32)> = lines
            .iter()
            .filter_map(|line| {
                let mut spans = line
                    .spans
                    .iter()
                    .filter(|(s, e)| ((s + e) / 2.0 < middle) == (side == 0));
                let first = spans.next()?;
                Some((first.0, spans.next_back().unwrap_or(first).1))
            })
            .collect();
        let lo = extents.iter().map(|e| e.0).fold(f32::INFINITY, f32::min);
        let hi = extents
            .iter()
            .map(|e| e.1)
            .fold(f32::NEG_INFINITY, f32::max);
        let full = extents
            .iter()
            .filter(|e| e.1 >= hi - FULL_LINE_SLACK * em)
            .count();
        *width = hi - lo;
        if extents.len() < MIN_COLUMN_LINES
            || *width < MIN_COLUMN_WIDTH * em
            || (full as f32) < MIN_FULL_SHARE * extents.len() as f32
        {
            return false;
        }
    }
    widths[0].min(widths[1]) >= MIN_COLUMN_RATIO * widths[0].max(widths[1])
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

    /// Glyphs one em (10 units) wide, each string drawn from `(u, v)` along the line,
    /// in the order given, and the text they index.
    fn runs(runs: &[(f32, f32, &str)]) -> (Vec<Glyph>, String) {
        let mut text = String::new();
        let mut glyphs = Vec::new();
        for &(u, v, run) in runs {
            for (k, c) in run.chars().enumerate() {
                let start = text.len() as u32;
                text.push(c);
                glyphs.push(glyph(u + 10.0 * k as f32, v, start, text.len() as u32));
            }
        }
        (glyphs, text)
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

    #[test]
    fn two_columns_under_a_full_width_title_are_read_one_after_the_other() {
        // A 27-em title across both 13-em columns (a 1-em gutter), the columns drawn row
        // by row across the page as a content stream may do.
        let left = [
            "左一行目あいうえおかきくけ",
            "左二行目あいうえおかきくけ",
            "左三行目あいうえおかきくけ",
            "左四行目あいうえお",
        ];
        let right = [
            "右一行目あいうえおかきくけ",
            "右二行目あいうえおかきくけ",
            "右三行目あいうえおかきくけ",
            "右四行目あいう",
        ];
        let mut drawn = vec![(
            0.0,
            800.0,
            "表題表題表題表題表題表題表題表題表題表題表題表題表題",
        )];
        for (row, (l, r)) in left.iter().zip(&right).enumerate() {
            let v = 780.0 - 15.0 * row as f32;
            drawn.push((0.0, v, l));
            drawn.push((140.0, v, r));
        }
        let (glyphs, text) = runs(&drawn);
        let expected = [&[drawn[0].2][..], &left, &right].concat().join("\n");
        assert_eq!(lay_out(&glyphs, &text), expected);
    }

    #[test]
    fn a_table_row_with_far_apart_cells_stays_one_line() {
        let rows = [
            ["項目", "担当", "期限"],
            ["研修会", "県", "六月"],
            ["相談会", "市町", "九月"],
            ["出前講座", "県", "随時"],
        ];
        let mut drawn = Vec::new();
        for (row, cells) in rows.iter().enumerate() {
            let v = 700.0 - 20.0 * row as f32;
            for (column, cell) in cells.iter().enumerate() {
                drawn.push((150.0 * column as f32, v, *cell));
            }
        }
        let (glyphs, text) = runs(&drawn);
        assert_eq!(
            lay_out(&glyphs, &text),
            "項目 担当 期限\n研修会 県 六月\n相談会 市町 九月\n出前講座 県 随時"
        );
    }

    #[test]
    fn single_column_text_with_a_ragged_edge_keeps_its_order() {
        // Short lines leave whitespace on the right that lines further down fill.
        let lines = [
            "一行目あいうえおかきくけこさしすせそ",
            "二行目あいう",
            "三行目あいうえおかき",
            "四行目あいうえおかきくけこさしすせそ",
            "五行目あ",
        ];
        let drawn: Vec<(f32, f32, &str)> = lines
            .iter()
            .enumerate()
            .map(|(row, line)| (0.0, 700.0 - 15.0 * row as f32, *line))
            .collect();
        let (glyphs, text) = runs(&drawn);
        assert_eq!(lay_out(&glyphs, &text), lines.join("\n"));
    }

    /// Upright glyphs of a horizontal font stacked one em apart in columns of `rows`,
    /// the first column at the right, as Chromium and LibreOffice set vertical writing.
    fn stacked(columns: &[&str], rows: usize, top: f32) -> (Vec<Glyph>, String) {
        let mut text = String::new();
        let mut glyphs = Vec::new();
        for (column, chars) in columns.iter().enumerate() {
            for (k, c) in chars.chars().enumerate() {
                let start = text.len() as u32;
                text.push(c);
                let (x, y) = (500.0 - 15.0 * column as f32, top - 10.0 * (k % rows) as f32);
                glyphs.push(glyph(x, y, start, text.len() as u32));
            }
        }
        (glyphs, text)
    }

    #[test]
    fn horizontal_glyphs_stacked_in_columns_are_read_top_down_right_to_left() {
        let (glyphs, text) = stacked(&["縦書きの一行目", "二行目です", "三行目"], 8, 700.0);
        assert_eq!(
            lay_out(&glyphs, &text),
            "縦書きの一行目\n二行目です\n三行目"
        );
    }

    #[test]
    fn latin_rotated_sideways_stays_in_its_column() {
        // "地域社会DX推進体制" in one column: the Latin letters drawn a quarter turn
        // clockwise, their baseline left of the column centre, after the fourth em.
        let (mut glyphs, mut text) = stacked(&["地域社会"], 10, 700.0);
        for (k, c) in ['D', 'X'].into_iter().enumerate() {
            let start = text.len() as u32;
            text.push(c);
            glyphs.push(Glyph {
                u: -(700.0 - 40.0 + ASCENT * 10.0) + 6.0 * k as f32,
                v: 505.0 - MIDDLE * 10.0,
                width: 6.0,
                size: 10.0,
                direction: Direction::Horizontal(3),
                start,
                end: start + 1,
            });
        }
        let (rest, rest_text) = stacked(&["推進体制"], 10, 700.0 - 52.0);
        let offset = text.len() as u32;
        text.push_str(&rest_text);
        glyphs.extend(rest.into_iter().map(|g| Glyph {
            start: g.start + offset,
            end: g.end + offset,
            ..g
        }));
        assert_eq!(lay_out(&glyphs, &text), "地域社会DX推進体制");
    }

    #[test]
    fn vertical_blocks_are_read_upper_block_first() {
        // Two blocks (段) of four 10-em columns, the lower block drawn first.
        let upper = [
            "上段一行目あいうえお",
            "上段二行目あいうえお",
            "上段三行目あいうえお",
            "上段四行目あい",
        ];
        let lower = [
            "下段一行目あいうえお",
            "下段二行目あいうえお",
            "下段三行目あいうえお",
            "下段四行目",
        ];
        let (mut glyphs, mut text) = stacked(&lower, 10, 500.0);
        let (top, top_text) = stacked(&upper, 10, 700.0);
        let offset = text.len() as u32;
        text.push_str(&top_text);
        glyphs.extend(top.into_iter().map(|g| Glyph {
            start: g.start + offset,
            end: g.end + offset,
            ..g
        }));
        assert_eq!(lay_out(&glyphs, &text), [upper, lower].concat().join("\n"));
    }
}
