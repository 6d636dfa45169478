//! A content-stream interpreter that records where each glyph lands.
//!
//! It follows the graphics state (`cm`, `q`/`Q`), the text state and text matrices, Form
//! XObjects (`Do`) and `/ActualText` marked content; it draws nothing.

use std::collections::HashMap;
use std::rc::Rc;

use lopdf::content::Content;
use lopdf::{Dictionary, Document, Object, ObjectId};

use super::font::{Font, Lookup, deref, number};

/// Decompressed size allowed for the content of one page or Form XObject.
pub const CONTENT_LIMIT: usize = 64 << 20;
/// Nesting of Form XObjects followed.
const MAX_FORM_DEPTH: usize = 12;
/// Operators interpreted per page, Form XObjects included.
const MAX_OPERATIONS: usize = 4_000_000;
/// Glyphs recorded per page.
const MAX_GLYPHS: usize = 1_000_000;
/// Bytes of text recorded per page.
const MAX_TEXT: usize = 16 << 20;
/// Bytes of Form XObject content decompressed per page.
const MAX_FORM_CONTENT: usize = 256 << 20;
/// Characters of one `/ActualText` kept.
const MAX_ACTUAL_TEXT: usize = 1024;
/// Depth of the `q` stack and of marked content followed.
const MAX_STACK: usize = 1024;

/// Writing direction of a glyph in device space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Horizontal text whose baseline is rotated by `n` × 90° counter-clockwise.
    Horizontal(u8),
    /// Vertical writing, top to bottom.
    Vertical,
}

/// One glyph in a frame where its line runs along `u` and lines stack along `v`
/// (a larger `v` comes first: higher on the page, or further right for vertical text).
#[derive(Debug, Clone, Copy)]
pub struct Glyph {
    /// Position along the line.
    pub u: f32,
    /// Position of the line (baseline, or column centre for vertical writing).
    pub v: f32,
    /// Advance along the line.
    pub width: f32,
    /// Em size in device units.
    pub size: f32,
    /// Writing direction.
    pub direction: Direction,
    /// Byte range of the glyph's text in [`PageGlyphs::text`].
    pub start: u32,
    /// End of that byte range.
    pub end: u32,
}

/// Everything the interpreter collected from one page.
#[derive(Debug, Default)]
pub struct PageGlyphs {
    /// Glyphs in content-stream order.
    pub glyphs: Vec<Glyph>,
    /// The text of all glyphs, back to back.
    pub text: String,
    /// A font whose codes could not be turned into text, if any glyph used one.
    pub unknown_font: Option<String>,
    /// Glyphs of such fonts (left out of `glyphs`).
    pub unknown: usize,
}

/// Fonts loaded so far, shared by the pages of one document.
#[derive(Default)]
pub struct FontCache {
    fonts: HashMap<FontKey, Rc<Font>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum FontKey {
    Object(ObjectId),
    /// A font dictionary written inline, keyed by its address in the (immutable) document.
    Inline(usize),
}

#[derive(Debug, Clone, Copy)]
struct Matrix([f64; 6]);

impl Matrix {
    const IDENTITY: Matrix = Matrix([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);

    /// `self` applied first, then `other`.
    fn then(&self, other: &Matrix) -> Matrix {
        let [a, b, c, d, e, f] = self.0;
        let [oa, ob, oc, od, oe, of] = other.0;
        Matrix([
            a * oa + b * oc,
            a * ob + b * od,
            c * oa + d * oc,
            c * ob + d * od,
            e * oa + f * oc + oe,
            e * ob + f * od + of,
        ])
    }

    fn translate(tx: f64, ty: f64) -> Matrix {
        Matrix([1.0, 0.0, 0.0, 1.0, tx, ty])
    }

    fn from_operands(doc: &Document, operands: &[Object]) -> Option<Matrix> {
        let mut m = [0.0; 6];
        if operands.len() < 6 {
            return None;
        }
        for (slot, operand) in m.iter_mut().zip(operands) {
            *slot = number(doc, Some(operand))?;
        }
        Some(Matrix(m))
    }
}

#[derive(Clone)]
struct GraphicsState {
    ctm: Matrix,
    font: Option<Rc<Font>>,
    font_size: f64,
    char_spacing: f64,
    word_spacing: f64,
    horizontal_scale: f64,
    leading: f64,
}

impl GraphicsState {
    fn new(ctm: Matrix) -> Self {
        GraphicsState {
            ctm,
            font: None,
            font_size: 0.0,
            char_spacing: 0.0,
            word_spacing: 0.0,
            horizontal_scale: 1.0,
            leading: 0.0,
        }
    }
}

/// Placement of a glyph before its text is known.
#[derive(Debug, Clone, Copy)]
struct Placement {
    u: f64,
    v: f64,
    width: f64,
    size: f64,
    direction: Direction,
}

/// An `/ActualText` span being collected: its glyphs are replaced by its text.
struct Span {
    text: String,
    placement: Option<Placement>,
    end_u: f64,
}

/// Interprets the content of one page.
pub struct Interpreter<'a> {
    doc: &'a Document,
    fonts: &'a mut FontCache,
    state: GraphicsState,
    stack: Vec<GraphicsState>,
    skipped_pushes: usize,
    text_matrix: Matrix,
    line_matrix: Matrix,
    forms: Vec<ObjectId>,
    marked: Vec<Option<Span>>,
    operations: usize,
    form_content: usize,
    page_box: Option<[f64; 4]>,
    out: PageGlyphs,
}

impl<'a> Interpreter<'a> {
    /// An interpreter for a page whose visible area is `page_box` (`[x0, y0, x1, y1]`).
    pub fn new(doc: &'a Document, fonts: &'a mut FontCache, page_box: Option<[f64; 4]>) -> Self {
        Interpreter {
            doc,
            fonts,
            state: GraphicsState::new(Matrix::IDENTITY),
            stack: Vec::new(),
            skipped_pushes: 0,
            text_matrix: Matrix::IDENTITY,
            line_matrix: Matrix::IDENTITY,
            forms: Vec::new(),
            marked: Vec::new(),
            operations: 0,
            form_content: 0,
            page_box,
            out: PageGlyphs::default(),
        }
    }

    /// Runs a page's content and returns the glyphs, or why the content could not be read.
    pub fn run_page(
        mut self,
        content: &[u8],
        resources: Option<&'a Dictionary>,
    ) -> Result<PageGlyphs, String> {
        self.run(content, resources, 0)?;
        while let Some(span) = self.marked.pop() {
            self.close_span(span);
        }
        Ok(self.out)
    }

    fn run(
        &mut self,
        content: &[u8],
        resources: Option<&'a Dictionary>,
        depth: usize,
    ) -> Result<(), String> {
        for operation in Content::decode_iter(content) {
            let operation = operation.map_err(|e| format!("content stream: {e}"))?;
            self.operations += 1;
            if self.operations > MAX_OPERATIONS
                || self.out.glyphs.len() > MAX_GLYPHS
                || self.out.text.len() > MAX_TEXT
                || self.form_content > MAX_FORM_CONTENT
            {
                return Err("page too complex".to_string());
            }
            self.apply(&operation.operator, &operation.operands, resources, depth)?;
        }
        Ok(())
    }

    fn num(&self, operands: &[Object], i: usize) -> Option<f64> {
        number(self.doc, operands.get(i))
    }

    fn apply(
        &mut self,
        operator: &str,
        operands: &[Object],
        resources: Option<&'a Dictionary>,
        depth: usize,
    ) -> Result<(), String> {
        match operator {
            "q" => {
                if self.stack.len() < MAX_STACK {
                    self.stack.push(self.state.clone());
                } else {
                    self.skipped_pushes += 1;
                }
            }
            "Q" => {
                if self.skipped_pushes > 0 {
                    self.skipped_pushes -= 1;
                } else if let Some(state) = self.stack.pop() {
                    self.state = state;
                }
            }
            "cm" => {
                if let Some(m) = Matrix::from_operands(self.doc, operands) {
                    self.state.ctm = m.then(&self.state.ctm);
                }
            }
            "BT" => {
                self.text_matrix = Matrix::IDENTITY;
                self.line_matrix = Matrix::IDENTITY;
            }
            "Tc" => self.set(operands, |s, v| s.char_spacing = v),
            "Tw" => self.set(operands, |s, v| s.word_spacing = v),
            "Tz" => self.set(operands, |s, v| s.horizontal_scale = v / 100.0),
            "TL" => self.set(operands, |s, v| s.leading = v),
            "Tf" => {
                if let Some(size) = self.num(operands, 1) {
                    self.state.font_size = size;
                }
                if let Some(Object::Name(name)) = operands.first() {
                    self.state.font = Some(self.font(resources, name));
                }
            }
            "Td" | "TD" => {
                if let (Some(tx), Some(ty)) = (self.num(operands, 0), self.num(operands, 1)) {
                    if operator == "TD" {
                        self.state.leading = -ty;
                    }
                    self.next_line(tx, ty);
                }
            }
            "Tm" => {
                if let Some(m) = Matrix::from_operands(self.doc, operands) {
                    self.text_matrix = m;
                    self.line_matrix = m;
                }
            }
            "T*" => self.next_line(0.0, -self.state.leading),
            "Tj" => self.show_operand(operands.first()),
            "'" => {
                self.next_line(0.0, -self.state.leading);
                self.show_operand(operands.first());
            }
            "\"" => {
                self.set(operands, |s, v| s.word_spacing = v);
                if let Some(v) = self.num(operands, 1) {
                    self.state.char_spacing = v;
                }
                self.next_line(0.0, -self.state.leading);
                self.show_operand(operands.get(2));
            }
            "TJ" => {
                if let Some(Object::Array(items)) = operands.first() {
                    for item in items {
                        match item {
                            Object::String(bytes, _) => self.show(bytes),
                            other => {
                                if let Some(adjust) = number(self.doc, Some(other)) {
                                    self.adjust(adjust);
                                }
                            }
                        }
                    }
                }
            }
            "Do" => {
                if let Some(Object::Name(name)) = operands.first() {
                    self.form(resources, name, depth)?;
                }
            }
            "BMC" => self.push_marked(None),
            "BDC" => {
                let span = self
                    .actual_text(resources, operands.get(1))
                    .map(|text| Span {
                        text,
                        placement: None,
                        end_u: 0.0,
                    });
                self.push_marked(span);
            }
            "EMC" => {
                if let Some(span) = self.marked.pop() {
                    self.close_span(span);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn set(&mut self, operands: &[Object], apply: impl FnOnce(&mut GraphicsState, f64)) {
        if let Some(v) = self.num(operands, 0) {
            apply(&mut self.state, v);
        }
    }

    fn next_line(&mut self, tx: f64, ty: f64) {
        self.line_matrix = Matrix::translate(tx, ty).then(&self.line_matrix);
        self.text_matrix = self.line_matrix;
    }

    fn font(&mut self, resources: Option<&'a Dictionary>, name: &[u8]) -> Rc<Font> {
        let doc = self.doc;
        let entry = resources
            .and_then(|r| deref(doc, r.get(b"Font").ok()))
            .and_then(|fonts| fonts.as_dict().ok())
            .and_then(|fonts| fonts.get(name).ok());
        let key = match entry {
            Some(Object::Reference(id)) => Some(FontKey::Object(*id)),
            Some(Object::Dictionary(dict)) => {
                Some(FontKey::Inline(std::ptr::from_ref(dict) as usize))
            }
            _ => None,
        };
        let dict = deref(doc, entry).and_then(|o| o.as_dict().ok());
        match (key, dict) {
            (Some(key), Some(dict)) => Rc::clone(
                self.fonts
                    .fonts
                    .entry(key)
                    .or_insert_with(|| Rc::new(Font::load(doc, dict))),
            ),
            _ => Rc::new(Font::missing(&format!(
                "{} (missing)",
                String::from_utf8_lossy(name)
            ))),
        }
    }

    fn show_operand(&mut self, operand: Option<&Object>) {
        if let Some(Object::String(bytes, _)) = operand {
            self.show(bytes);
        }
    }

    /// A `TJ` number: moves the next glyph back by `adjust` thousandths of the font size.
    fn adjust(&mut self, adjust: f64) {
        let vertical = self.state.font.as_ref().is_some_and(|f| f.vertical);
        let shift = -adjust / 1000.0 * self.state.font_size;
        let step = if vertical {
            Matrix::translate(0.0, shift)
        } else {
            Matrix::translate(shift * self.state.horizontal_scale, 0.0)
        };
        self.text_matrix = step.then(&self.text_matrix);
    }

    fn show(&mut self, bytes: &[u8]) {
        let font = match &self.state.font {
            Some(font) => Rc::clone(font),
            None => Rc::new(Font::missing("(no font selected)")),
        };
        let size = self.state.font_size;
        let scale = self.state.horizontal_scale;
        let mut rest = bytes;
        while !rest.is_empty() {
            let (code, len) = font.code_space.next_code(rest);
            let Some(tail) = rest.get(len.max(1)..) else {
                break;
            };
            rest = tail;
            // The rise (`Ts`) is left out of the placement on purpose: superscripts and
            // subscripts stay on the line they belong to.
            let m = self.text_matrix.then(&self.state.ctm);
            let width = font.width(code, len);
            let placement = if font.vertical {
                let advance = font.vertical_advance() * size;
                Placement {
                    u: -m.0[5],
                    v: m.0[4],
                    width: advance * m.0[2].hypot(m.0[3]),
                    size: size.abs() * font.em * m.0[0].hypot(m.0[1]),
                    direction: Direction::Vertical,
                }
            } else {
                horizontal_placement(&m, width * size * scale, size * font.em)
            };
            self.glyph(&font, code, len, placement);
            let spacing = self.state.char_spacing
                + if len == 1 && code == 32 {
                    self.state.word_spacing
                } else {
                    0.0
                };
            self.text_matrix = if font.vertical {
                Matrix::translate(0.0, -(font.vertical_advance() * size + spacing))
            } else {
                Matrix::translate((width * size + spacing) * scale, 0.0)
            }
            .then(&self.text_matrix);
        }
    }

    fn glyph(&mut self, font: &Font, code: u32, len: usize, placement: Placement) {
        let finite = [placement.u, placement.v, placement.width, placement.size]
            .iter()
            .all(|x| x.is_finite());
        if !finite || !self.on_page(&placement) {
            return;
        }
        if let Some(span) = self.marked.iter_mut().flatten().next() {
            match span.placement {
                None => {
                    span.placement = Some(placement);
                    span.end_u = placement.u + placement.width;
                }
                Some(_) => span.end_u = span.end_u.max(placement.u + placement.width),
            }
            return;
        }
        let start = self.out.text.len();
        match font.text(code, len, &mut self.out.text) {
            Lookup::Mapped | Lookup::Unmapped => {}
            Lookup::Unknown => {
                self.out.unknown += 1;
                if self.out.unknown_font.is_none() {
                    self.out.unknown_font = Some(font.name.clone());
                }
                return;
            }
        }
        self.record(placement, start);
    }

    fn record(&mut self, p: Placement, start: usize) {
        let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(self.out.text.len()))
        else {
            return;
        };
        self.out.glyphs.push(Glyph {
            u: p.u as f32,
            v: p.v as f32,
            width: p.width as f32,
            size: p.size as f32,
            direction: p.direction,
            start,
            end,
        });
    }

    /// Whether a glyph's origin lies on the page (with a margin); hidden off-page text is dropped.
    fn on_page(&self, p: &Placement) -> bool {
        let Some([x0, y0, x1, y1]) = self.page_box else {
            return true;
        };
        let (x, y) = match p.direction {
            Direction::Vertical => (p.v, -p.u),
            Direction::Horizontal(quarter) => match quarter {
                1 => (-p.v, p.u),
                2 => (-p.u, -p.v),
                3 => (p.v, -p.u),
                _ => (p.u, p.v),
            },
        };
        let (mx, my) = ((x1 - x0) * 0.1, (y1 - y0) * 0.1);
        x >= x0 - mx && x <= x1 + mx && y >= y0 - my && y <= y1 + my
    }

    fn push_marked(&mut self, span: Option<Span>) {
        if self.marked.len() < MAX_STACK {
            self.marked.push(span);
        }
    }

    fn close_span(&mut self, span: Option<Span>) {
        let Some(Span {
            text,
            placement: Some(mut placement),
            end_u,
        }) = span
        else {
            return;
        };
        placement.width = (end_u - placement.u).max(0.0);
        let start = self.out.text.len();
        self.out.text.push_str(&text);
        self.record(placement, start);
    }

    /// The `/ActualText` of a `BDC` property list (inline, or named in `/Properties`).
    fn actual_text(
        &self,
        resources: Option<&'a Dictionary>,
        properties: Option<&Object>,
    ) -> Option<String> {
        let doc = self.doc;
        let dict = match properties? {
            Object::Name(name) => resources
                .and_then(|r| deref(doc, r.get(b"Properties").ok()))
                .and_then(|p| p.as_dict().ok())
                .and_then(|p| deref(doc, p.get(name).ok())),
            other => deref(doc, Some(other)),
        }?
        .as_dict()
        .ok()?;
        let text = deref(doc, dict.get(b"ActualText").ok())?;
        lopdf::decode_text_string(text)
            .ok()
            .map(|t| t.chars().take(MAX_ACTUAL_TEXT).collect())
    }

    fn form(
        &mut self,
        resources: Option<&'a Dictionary>,
        name: &[u8],
        depth: usize,
    ) -> Result<(), String> {
        let doc = self.doc;
        let entry = resources
            .and_then(|r| deref(doc, r.get(b"XObject").ok()))
            .and_then(|x| x.as_dict().ok())
            .and_then(|x| x.get(name).ok());
        let id = match entry {
            Some(Object::Reference(id)) => Some(*id),
            _ => None,
        };
        if depth >= MAX_FORM_DEPTH || id.is_some_and(|id| self.forms.contains(&id)) {
            return Ok(());
        }
        let Some(stream) = deref(doc, entry).and_then(|o| o.as_stream().ok()) else {
            return Ok(());
        };
        if stream.dict.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Form".as_slice()) {
            return Ok(());
        }
        let content = stream
            .decompressed_content_with_limit(CONTENT_LIMIT)
            .map_err(|e| format!("form XObject: {e}"))?;
        self.form_content = self.form_content.saturating_add(content.len());
        let matrix = deref(doc, stream.dict.get(b"Matrix").ok())
            .and_then(|o| o.as_array().ok())
            .and_then(|a| Matrix::from_operands(doc, a))
            .unwrap_or(Matrix::IDENTITY);
        let form_resources = deref(doc, stream.dict.get(b"Resources").ok())
            .and_then(|o| o.as_dict().ok())
            .or(resources);

        let saved = (
            self.state.clone(),
            self.stack.len(),
            self.skipped_pushes,
            self.text_matrix,
            self.line_matrix,
        );
        self.state.ctm = matrix.then(&self.state.ctm);
        if let Some(id) = id {
            self.forms.push(id);
        }
        let result = self.run(&content, form_resources, depth + 1);
        if id.is_some() {
            self.forms.pop();
        }
        let (state, stack_len, skipped, text_matrix, line_matrix) = saved;
        self.state = state;
        self.stack.truncate(stack_len);
        self.skipped_pushes = skipped;
        self.text_matrix = text_matrix;
        self.line_matrix = line_matrix;
        result
    }
}

/// Frame of a horizontal glyph whose text space maps to device space by `m`.
fn horizontal_placement(m: &Matrix, advance: f64, size: f64) -> Placement {
    let [a, b, c, d, x, y] = m.0;
    let quarter = if a.abs() >= b.abs() {
        if a >= 0.0 { 0 } else { 2 }
    } else if b > 0.0 {
        1
    } else {
        3
    };
    let (u, v) = match quarter {
        1 => (y, -x),
        2 => (-x, -y),
        3 => (-y, x),
        _ => (x, y),
    };
    Placement {
        u,
        v,
        width: advance.abs() * a.hypot(b),
        size: size.abs() * c.hypot(d),
        direction: Direction::Horizontal(quarter),
    }
}
