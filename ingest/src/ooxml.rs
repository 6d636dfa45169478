//! What DOCX, XLSX and PPTX share: a ZIP package of XML parts, read within limits so that a
//! hostile file (a ZIP bomb, millions of entries, XML nested a million deep) gives an error
//! rather than exhausting memory or the stack.
//!
//! XML is read with `quick-xml`, which never loads DTDs or external entities; references to
//! undeclared entities are dropped.

use std::io::{Cursor, Read};

use quick_xml::events::{BytesStart, Event};

/// Most ZIP entries a package may have.
pub const MAX_ENTRIES: usize = 10_000;
/// Most bytes one part may unpack to.
pub const MAX_PART_BYTES: u64 = 64 * 1024 * 1024;
/// Most bytes all parts together may unpack to.
pub const MAX_PACKAGE_BYTES: u64 = 256 * 1024 * 1024;
/// Deepest XML nesting accepted.
pub const MAX_XML_DEPTH: usize = 256;
/// Most XML elements one part may have.
pub const MAX_XML_ELEMENTS: usize = 4_000_000;

/// Why an office file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OfficeError {
    #[error(
        "it is an OLE compound file: a password-protected file or the old binary format (.doc, .xls, .ppt); remove the password or save it as .docx, .xlsx or .pptx and retry"
    )]
    CompoundFile,
    #[error(
        "it is not a ZIP package ({reason}); the file is damaged or not an Office Open XML file"
    )]
    NotZip { reason: String },
    #[error(
        "it has {entries} ZIP entries, more than the limit of {MAX_ENTRIES}; it is not an ordinary office file"
    )]
    TooManyEntries { entries: usize },
    #[error(
        "part {part} unpacks to more than {limit} bytes (a ZIP bomb?); split the file and retry"
    )]
    PartTooLarge { part: String, limit: u64 },
    #[error(
        "its parts unpack to more than {MAX_PACKAGE_BYTES} bytes in total (a ZIP bomb?); split the file and retry"
    )]
    PackageTooLarge,
    #[error("part {part} could not be unpacked ({reason}); the file is damaged")]
    Unreadable { part: String, reason: String },
    #[error("part {part} is missing; the file is damaged or not a {expected} file")]
    MissingPart {
        part: String,
        expected: &'static str,
    },
    #[error("part {part} is not well-formed XML ({reason}); the file is damaged")]
    Xml { part: String, reason: String },
    #[error(
        "part {part} nests XML elements deeper than {MAX_XML_DEPTH}; it is not an ordinary office file"
    )]
    TooDeep { part: String },
    #[error("part {part} has more than {MAX_XML_ELEMENTS} XML elements; split the file and retry")]
    TooManyElements { part: String },
    #[error("it has more than {limit} {what}; split the file and retry")]
    TooMany { what: &'static str, limit: usize },
    #[error(
        "the workbook could not be read ({reason}); open and save it again in Excel or LibreOffice and retry"
    )]
    Workbook { reason: String },
}

/// The magic bytes of an OLE compound file, the container of encrypted OOXML and legacy formats.
const COMPOUND_FILE_MAGIC: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// An opened ZIP package whose entry count was checked; parts are unpacked on demand within the
/// size limits.
pub struct Package<'bytes> {
    archive: zip::ZipArchive<Cursor<&'bytes [u8]>>,
    unpacked_bytes: u64,
}

impl<'bytes> Package<'bytes> {
    pub fn open(bytes: &'bytes [u8]) -> Result<Self, OfficeError> {
        if bytes.starts_with(&COMPOUND_FILE_MAGIC) {
            return Err(OfficeError::CompoundFile);
        }
        let archive =
            zip::ZipArchive::new(Cursor::new(bytes)).map_err(|error| OfficeError::NotZip {
                reason: error.to_string(),
            })?;
        if archive.len() > MAX_ENTRIES {
            return Err(OfficeError::TooManyEntries {
                entries: archive.len(),
            });
        }
        Ok(Self {
            archive,
            unpacked_bytes: 0,
        })
    }

    /// Unpacks every part once, counting the bytes actually produced (not the sizes the
    /// archive declares, which a ZIP bomb can fake), so that a reader given these bytes
    /// afterwards (calamine) cannot be made to unpack more than the limits.
    pub fn check_all_parts(&mut self) -> Result<(), OfficeError> {
        for index in 0..self.archive.len() {
            let limit = self.remaining_for_part();
            let mut entry =
                self.archive
                    .by_index(index)
                    .map_err(|error| OfficeError::Unreadable {
                        part: format!("#{index}"),
                        reason: error.to_string(),
                    })?;
            let part = entry
                .name()
                .map(|name| name.into_owned())
                .unwrap_or_else(|_| format!("#{index}"));
            let produced = count_within(&mut entry, &part, limit)?;
            drop(entry);
            self.unpacked_bytes += produced;
        }
        Ok(())
    }

    pub fn part_names(&self) -> Vec<String> {
        self.archive
            .file_names()
            .filter_map(|name| name.ok().map(|name| name.into_owned()))
            .collect()
    }

    fn remaining_for_part(&self) -> u64 {
        MAX_PART_BYTES.min(MAX_PACKAGE_BYTES.saturating_sub(self.unpacked_bytes))
    }

    /// A part's text, or `None` when the package has no such part.
    pub fn part(&mut self, name: &str) -> Result<Option<String>, OfficeError> {
        let limit = self.remaining_for_part();
        let mut entry = match self.archive.by_name(name) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(error) => {
                return Err(OfficeError::Unreadable {
                    part: name.to_owned(),
                    reason: error.to_string(),
                });
            }
        };
        if entry.size() > limit {
            return Err(too_large(name, limit));
        }
        let mut bytes = Vec::new();
        (&mut entry)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| OfficeError::Unreadable {
                part: name.to_owned(),
                reason: error.to_string(),
            })?;
        if bytes.len() as u64 > limit {
            return Err(too_large(name, limit));
        }
        self.unpacked_bytes += bytes.len() as u64;
        decode_xml(name, bytes).map(Some)
    }

    /// A part that must exist.
    pub fn required_part(
        &mut self,
        name: &str,
        expected: &'static str,
    ) -> Result<String, OfficeError> {
        self.part(name)?.ok_or_else(|| OfficeError::MissingPart {
            part: name.to_owned(),
            expected,
        })
    }

    /// The relationships of a part (`word/document.xml` → `word/_rels/document.xml.rels`), or
    /// of the package for `""`.
    pub fn relationships(&mut self, part: &str) -> Result<Relationships, OfficeError> {
        let (folder, file) = match part.rsplit_once('/') {
            Some((folder, file)) => (folder, file),
            None => ("", part),
        };
        let rels_name = if folder.is_empty() {
            format!("_rels/{file}.rels")
        } else {
            format!("{folder}/_rels/{file}.rels")
        };
        let Some(xml) = self.part(&rels_name)? else {
            return Ok(Relationships::default());
        };
        let mut relationships = Relationships::default();
        walk_xml(&rels_name, &xml, |event| {
            if let XmlEvent::Start(element) = event
                && local_name(element) == "Relationship"
                && attribute(element, "TargetMode").as_deref() != Some("External")
                && let (Some(id), Some(kind), Some(target)) = (
                    attribute(element, "Id"),
                    attribute(element, "Type"),
                    attribute(element, "Target"),
                )
            {
                relationships.entries.push(Relationship {
                    id,
                    kind,
                    target: resolve_target(folder, &target),
                });
            }
            Ok(())
        })?;
        Ok(relationships)
    }

    /// The package's main part (`word/document.xml`, `ppt/presentation.xml` …), from the package
    /// relationships, or `fallback` when they do not name one.
    pub fn main_part(&mut self, fallback: &str) -> Result<String, OfficeError> {
        Ok(self
            .relationships("")?
            .target_of_kind("/officeDocument")
            .map(str::to_owned)
            .unwrap_or_else(|| fallback.to_owned()))
    }
}

fn too_large(part: &str, limit: u64) -> OfficeError {
    if limit < MAX_PART_BYTES {
        OfficeError::PackageTooLarge
    } else {
        OfficeError::PartTooLarge {
            part: part.to_owned(),
            limit,
        }
    }
}

/// Reads a part to its end, counting bytes, failing past `limit`.
fn count_within(reader: &mut impl Read, part: &str, limit: u64) -> Result<u64, OfficeError> {
    let mut buffer = [0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let read = reader
            .read(&mut buffer)
            .map_err(|error| OfficeError::Unreadable {
                part: part.to_owned(),
                reason: error.to_string(),
            })?;
        if read == 0 {
            return Ok(total);
        }
        total += read as u64;
        if total > limit {
            return Err(too_large(part, limit));
        }
    }
}

/// XML parts are UTF-8 or UTF-16 (with a BOM).
fn decode_xml(part: &str, bytes: Vec<u8>) -> Result<String, OfficeError> {
    if let Some((encoding, bom_len)) = encoding_rs::Encoding::for_bom(&bytes) {
        let (text, had_errors) = encoding.decode_without_bom_handling(&bytes[bom_len..]);
        if !had_errors {
            return Ok(text.into_owned());
        }
    } else if let Ok(text) = String::from_utf8(bytes) {
        return Ok(text);
    }
    Err(OfficeError::Xml {
        part: part.to_owned(),
        reason: "its bytes are not valid UTF-8 or UTF-16".to_owned(),
    })
}

/// `../media/a.png` relative to `word` → `media/a.png`; `/ppt/slides/slide1.xml` → absolute.
fn resolve_target(folder: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        folder.split('/').filter(|part| !part.is_empty()).collect()
    };
    for segment in target.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            segment => parts.push(segment),
        }
    }
    parts.join("/")
}

#[derive(Debug, Clone)]
pub struct Relationship {
    pub id: String,
    /// The relationship type URI.
    pub kind: String,
    /// The target part's name within the package.
    pub target: String,
}

#[derive(Debug, Clone, Default)]
pub struct Relationships {
    entries: Vec<Relationship>,
}

impl Relationships {
    pub fn target(&self, id: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|relationship| relationship.id == id)
            .map(|relationship| relationship.target.as_str())
    }

    /// The first target whose type URI ends with `suffix` (types differ between the
    /// transitional and strict schemas, their last segment does not).
    pub fn target_of_kind(&self, suffix: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|relationship| relationship.kind.ends_with(suffix))
            .map(|relationship| relationship.target.as_str())
    }
}

/// What [`walk_xml`] reports. An empty element (`<a/>`) is reported as a start and an end.
pub enum XmlEvent<'event> {
    Start(&'event BytesStart<'event>),
    /// The local name of the element that ends.
    End(&'event str),
    Text(&'event str),
}

/// Streams a part's XML to `visit`, enforcing the depth and element limits.
pub fn walk_xml(
    part: &str,
    xml: &str,
    mut visit: impl FnMut(XmlEvent<'_>) -> Result<(), OfficeError>,
) -> Result<(), OfficeError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut depth = 0usize;
    let mut elements = 0usize;
    let xml_error = |reason: String| OfficeError::Xml {
        part: part.to_owned(),
        reason,
    };
    let mut enter = |depth: &mut usize| {
        *depth += 1;
        elements += 1;
        if *depth > MAX_XML_DEPTH {
            Err(OfficeError::TooDeep {
                part: part.to_owned(),
            })
        } else if elements > MAX_XML_ELEMENTS {
            Err(OfficeError::TooManyElements {
                part: part.to_owned(),
            })
        } else {
            Ok(())
        }
    };
    loop {
        match reader
            .read_event()
            .map_err(|error| xml_error(error.to_string()))?
        {
            Event::Start(element) => {
                enter(&mut depth)?;
                visit(XmlEvent::Start(&element))?;
            }
            Event::Empty(element) => {
                enter(&mut depth)?;
                visit(XmlEvent::Start(&element))?;
                depth -= 1;
                visit(XmlEvent::End(local_name(&element)))?;
            }
            Event::End(element) => {
                depth = depth.saturating_sub(1);
                visit(XmlEvent::End(element.local_name().into_inner()))?;
            }
            Event::Text(text) => visit(XmlEvent::Text(&text.xml10_content()))?,
            Event::CData(text) => visit(XmlEvent::Text(&text.xml10_content()))?,
            Event::GeneralRef(reference) => {
                let resolved = match reference
                    .resolve_char_ref()
                    .map_err(|error| xml_error(error.to_string()))?
                {
                    Some(ch) => Some(ch.to_string()),
                    None => {
                        quick_xml::escape::resolve_predefined_entity(&reference).map(str::to_owned)
                    }
                };
                if let Some(text) = resolved {
                    visit(XmlEvent::Text(&text))?;
                }
            }
            Event::Eof => return Ok(()),
            Event::Decl(_) | Event::PI(_) | Event::DocType(_) | Event::Comment(_) => {}
        }
    }
}

/// An element's name without its namespace prefix.
pub fn local_name<'element>(element: &'element BytesStart<'_>) -> &'element str {
    element.local_name().into_inner()
}

/// The value of the attribute with this qualified name (`w:val`, `r:id`, `Id`).
pub fn attribute(element: &BytesStart<'_>, name: &str) -> Option<String> {
    element
        .attributes()
        .with_checks(false)
        .flatten()
        .find(|attribute| attribute.key.as_ref() == name)
        .and_then(|attribute| {
            attribute
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
        })
        .map(|value| value.into_owned())
}

/// Whether an on/off property (`<w:b/>`, `<w:vMerge w:val="0"/>`) is on.
pub fn is_on(value: Option<&str>) -> bool {
    !matches!(value, Some("0" | "false" | "off"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relationship_targets_resolve_against_the_part_folder() {
        assert_eq!(
            resolve_target("ppt", "slides/slide1.xml"),
            "ppt/slides/slide1.xml"
        );
        assert_eq!(
            resolve_target("ppt/slides", "../notesSlides/notesSlide1.xml"),
            "ppt/notesSlides/notesSlide1.xml"
        );
        assert_eq!(
            resolve_target("", "/word/document.xml"),
            "word/document.xml"
        );
        assert_eq!(resolve_target("", "word/document.xml"), "word/document.xml");
    }

    #[test]
    fn deep_xml_is_an_error() {
        let xml = "<a>".repeat(MAX_XML_DEPTH + 1);
        let result = walk_xml("deep.xml", &xml, |_| Ok(()));
        assert!(matches!(result, Err(OfficeError::TooDeep { .. })));
    }

    #[test]
    fn entities_resolve_only_when_predefined() {
        let xml = "<!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><a>&amp;&#x3042;&x;</a>";
        let mut text = String::new();
        walk_xml("a.xml", xml, |event| {
            if let XmlEvent::Text(part) = event {
                text.push_str(part);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(text, "&あ");
    }
}
