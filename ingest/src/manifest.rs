//! The metadata manifest (`hikitsugi.toml`) of a corpus folder: who owns each document and who
//! may read it.

use std::ops::Range;

use globset::{Glob, GlobMatcher};
use serde::Deserialize;
use toml::Spanned;

use crate::error::ManifestError;

/// The file name looked for in a corpus folder.
pub const MANIFEST_FILE: &str = "hikitsugi.toml";

/// Metadata of one document, as the manifest gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentMetadata {
    /// `None` when neither the manifest nor the defaults give one: the first heading is used.
    pub title: Option<String>,
    pub owner: String,
    /// Org ids, group ids or `public`. The owner is added when the document is stored.
    pub readers: Vec<String>,
    pub kind: String,
    pub date: Option<String>,
}

/// A parsed, validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    path: String,
    defaults: Defaults,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Default)]
struct Defaults {
    line: usize,
    owner: Option<String>,
    readers: Option<Vec<String>>,
    kind: Option<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    matcher: GlobMatcher,
    line: usize,
    title: Option<String>,
    owner: Option<String>,
    readers: Option<Vec<String>>,
    kind: Option<String>,
    date: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    defaults: Option<Spanned<RawDefaults>>,
    #[serde(default)]
    documents: Vec<Spanned<RawEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    owner: Option<Spanned<String>>,
    readers: Option<Spanned<Vec<String>>>,
    kind: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    path: Spanned<String>,
    title: Option<Spanned<String>>,
    owner: Option<Spanned<String>>,
    readers: Option<Spanned<Vec<String>>>,
    kind: Option<Spanned<String>>,
    date: Option<Spanned<String>>,
}

const DEFAULT_KIND: &str = "document";

impl Manifest {
    /// Parses a manifest; `path` only names it in error messages.
    pub fn parse(source: &str, path: &str) -> Result<Self, ManifestError> {
        let raw: RawManifest = toml::from_str(source).map_err(|error| match error.span() {
            Some(span) => ManifestError::Invalid {
                path: path.to_owned(),
                line: line_of(source, span.start),
                message: error.message().to_owned(),
            },
            None => ManifestError::Syntax {
                path: path.to_owned(),
                message: error.message().to_owned(),
            },
        })?;
        let invalid = |span: Range<usize>, message: String| ManifestError::Invalid {
            path: path.to_owned(),
            line: line_of(source, span.start),
            message,
        };
        let defaults = match raw.defaults {
            None => Defaults::default(),
            Some(defaults) => {
                let line = line_of(source, defaults.span().start);
                let defaults = defaults.into_inner();
                Defaults {
                    line,
                    owner: defaults
                        .owner
                        .map(|owner| validate_id(owner, "owner", &invalid))
                        .transpose()?,
                    readers: defaults
                        .readers
                        .map(|readers| validate_readers(readers, &invalid))
                        .transpose()?,
                    kind: defaults
                        .kind
                        .map(|kind| validate_id(kind, "kind", &invalid))
                        .transpose()?,
                }
            }
        };
        let mut entries = Vec::with_capacity(raw.documents.len());
        for entry in raw.documents {
            let entry_span = entry.span();
            let entry = entry.into_inner();
            let pattern_span = entry.path.span();
            let glob = Glob::new(entry.path.get_ref()).map_err(|error| {
                invalid(
                    pattern_span.clone(),
                    format!("invalid path pattern: {error}"),
                )
            })?;
            let owner = entry
                .owner
                .map(|owner| validate_id(owner, "owner", &invalid))
                .transpose()?;
            if owner.is_none() && defaults.owner.is_none() {
                return Err(invalid(
                    entry_span,
                    format!(
                        "no owner for {:?}: set `owner` here or in [defaults]",
                        entry.path.get_ref()
                    ),
                ));
            }
            let date = entry
                .date
                .map(|date| validate_date(date, &invalid))
                .transpose()?;
            entries.push(Entry {
                matcher: glob.compile_matcher(),
                line: line_of(source, pattern_span.start),
                title: entry
                    .title
                    .map(Spanned::into_inner)
                    .map(|title| title.trim().to_owned()),
                owner,
                readers: entry
                    .readers
                    .map(|readers| validate_readers(readers, &invalid))
                    .transpose()?,
                kind: entry
                    .kind
                    .map(|kind| validate_id(kind, "kind", &invalid))
                    .transpose()?,
                date,
            });
        }
        Ok(Self {
            path: path.to_owned(),
            defaults,
            entries,
        })
    }

    /// Refuses owners and readers that `is_known` does not accept (`public` is always
    /// accepted), naming the first one and its line.
    pub fn check_ids(&self, is_known: impl Fn(&str) -> bool) -> Result<(), ManifestError> {
        let sections = std::iter::once((
            self.defaults.line,
            self.defaults.owner.as_ref(),
            self.defaults.readers.as_ref(),
        ))
        .chain(
            self.entries
                .iter()
                .map(|entry| (entry.line, entry.owner.as_ref(), entry.readers.as_ref())),
        );
        for (line, owner, readers) in sections {
            let ids = owner.into_iter().chain(readers.into_iter().flatten());
            if let Some(unknown) = ids
                .filter(|id| *id != crate::PUBLIC_READER)
                .find(|id| !is_known(id))
            {
                return Err(ManifestError::Invalid {
                    path: self.path.clone(),
                    line,
                    message: format!(
                        "{unknown:?} is neither an organisation nor a group of the configuration: add it to [[organisations]] or [[groups]], or correct the manifest"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Metadata for a document id (its path relative to the corpus folder): the first entry whose
    /// pattern matches, completed by the defaults. `None` when nothing gives it an owner.
    pub fn metadata_for(&self, doc_id: &str) -> Option<DocumentMetadata> {
        let entry = self
            .entries
            .iter()
            .find(|entry| entry.matcher.is_match(doc_id));
        let owner = entry
            .and_then(|entry| entry.owner.clone())
            .or_else(|| self.defaults.owner.clone())?;
        let readers = entry
            .and_then(|entry| entry.readers.clone())
            .or_else(|| self.defaults.readers.clone())
            .unwrap_or_default();
        Some(DocumentMetadata {
            title: entry.and_then(|entry| entry.title.clone()),
            owner,
            readers,
            kind: entry
                .and_then(|entry| entry.kind.clone())
                .or_else(|| self.defaults.kind.clone())
                .unwrap_or_else(|| DEFAULT_KIND.to_owned()),
            date: entry.and_then(|entry| entry.date.clone()),
        })
    }

    /// Line numbers of entries that match none of the given document ids: usually a typo.
    pub fn unmatched_entries<'a>(
        &self,
        doc_ids: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Vec<usize> {
        self.entries
            .iter()
            .filter(|entry| {
                !doc_ids
                    .clone()
                    .into_iter()
                    .any(|id| entry.matcher.is_match(id))
            })
            .map(|entry| entry.line)
            .collect()
    }
}

fn line_of(source: &str, byte_offset: usize) -> usize {
    source.as_bytes()[..byte_offset.min(source.len())]
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count()
        + 1
}

/// Whether an owner, reader or kind id is well formed: non-empty ASCII letters, digits, `-`,
/// `_`, `.` or `:`.
pub fn is_valid_id(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.' | ':'))
}

fn validate_id(
    value: Spanned<String>,
    what: &str,
    invalid: &impl Fn(Range<usize>, String) -> ManifestError,
) -> Result<String, ManifestError> {
    let span = value.span();
    let value = value.into_inner();
    if is_valid_id(&value) {
        Ok(value)
    } else {
        Err(invalid(
            span,
            format!(
                "{what} {value:?} must be a non-empty id of ASCII letters, digits, '-', '_', '.' or ':'"
            ),
        ))
    }
}

fn validate_readers(
    readers: Spanned<Vec<String>>,
    invalid: &impl Fn(Range<usize>, String) -> ManifestError,
) -> Result<Vec<String>, ManifestError> {
    let span = readers.span();
    readers
        .into_inner()
        .into_iter()
        .map(|reader| validate_id(Spanned::new(span.clone(), reader), "reader", invalid))
        .collect()
}

fn validate_date(
    date: Spanned<String>,
    invalid: &impl Fn(Range<usize>, String) -> ManifestError,
) -> Result<String, ManifestError> {
    let span = date.span();
    let date = date.into_inner();
    let parts: Vec<&str> = date.split('-').collect();
    let digits = |part: &str, len: usize| {
        part.len() == len && part.bytes().all(|byte| byte.is_ascii_digit())
    };
    let valid = match parts.as_slice() {
        [year] => digits(year, 4),
        [year, month] => digits(year, 4) && digits(month, 2),
        [year, month, day] => digits(year, 4) && digits(month, 2) && digits(day, 2),
        _ => false,
    };
    if valid {
        Ok(date)
    } else {
        Err(invalid(
            span,
            format!("date {date:?} must be YYYY, YYYY-MM or YYYY-MM-DD"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
[defaults]
owner = "soumu"
readers = ["public"]
kind = "manual"

[[documents]]
path = "003_*.txt"
title = "和歌山県 実績報告書"
owner = "pref-wakayama"
readers = ["pref-wakayama"]
kind = "report"
date = "2025-02"
"#;

    #[test]
    fn entries_match_by_glob_and_defaults_fill_the_rest() {
        let manifest = Manifest::parse(MANIFEST, "hikitsugi.toml").unwrap();
        let wakayama = manifest.metadata_for("003_f10a30ba901d5c79.txt").unwrap();
        assert_eq!(wakayama.owner, "pref-wakayama");
        assert_eq!(wakayama.readers, vec!["pref-wakayama"]);
        assert_eq!(wakayama.title.as_deref(), Some("和歌山県 実績報告書"));
        assert_eq!(wakayama.date.as_deref(), Some("2025-02"));
        let other = manifest.metadata_for("001_x.txt").unwrap();
        assert_eq!(
            (other.owner.as_str(), other.kind.as_str(), other.title),
            ("soumu", "manual", None)
        );
        assert_eq!(other.readers, vec!["public"]);
        assert_eq!(manifest.unmatched_entries(["001_x.txt"]), vec![8]);
    }

    #[test]
    fn errors_name_the_line() {
        let bad_reader =
            MANIFEST.replace(r#"readers = ["pref-wakayama"]"#, r#"readers = ["和歌山"]"#);
        let error = Manifest::parse(&bad_reader, "m.toml")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("m.toml, line 11:"), "{error}");

        let unknown_field = MANIFEST.replace("kind = \"report\"", "knd = \"report\"");
        let error = Manifest::parse(&unknown_field, "m.toml")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 12") && error.contains("knd"),
            "{error}"
        );

        let bad_date = MANIFEST.replace("2025-02", "R7.2");
        assert!(
            Manifest::parse(&bad_date, "m.toml")
                .unwrap_err()
                .to_string()
                .contains("line 13")
        );
    }

    #[test]
    fn an_entry_without_any_owner_is_refused() {
        let error = Manifest::parse("[[documents]]\npath = \"a.txt\"\n", "m.toml")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 1") && error.contains("owner"),
            "{error}"
        );
    }
}
