//! Legacy and OpenDocument office files (.doc, .xls, .ppt, .rtf, .odt, .ods, .odp), converted to
//! their Office Open XML form with LibreOffice (`soffice --headless --convert-to`) so that the
//! ingest crate's DOCX, XLSX and PPTX readers read them. Each conversion runs in a temporary
//! directory of its own (the input, the output and a LibreOffice profile, so that conversions never
//! share a profile lock), under a time limit; the directory is removed afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::tool::{self, RunError};

/// A file type that LibreOffice converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Legacy {
    /// The extension it is read from, lowercase.
    pub extension: &'static str,
    /// The extension it is converted to (`docx`, `xlsx`, `pptx`).
    pub target: &'static str,
    /// The Debian package whose LibreOffice component converts it.
    pub package: &'static str,
    /// How a file of this type begins.
    signature: Signature,
}

/// The first bytes of a file of each family, checked before LibreOffice sees it: LibreOffice
/// reads bytes it does not recognise as plain text, so a damaged or misnamed file would go in as
/// garbage rather than fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signature {
    /// The compound file (OLE2) container of .doc, .xls and .ppt.
    CompoundFile,
    Rtf,
    /// OpenDocument files are ZIP archives.
    Zip,
}

impl Signature {
    fn magic(self) -> &'static [u8] {
        match self {
            Self::CompoundFile => &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1],
            Self::Rtf => br"{\rtf",
            Self::Zip => b"PK\x03\x04",
        }
    }
}

const LEGACY: &[Legacy] = &[
    Legacy {
        extension: "doc",
        target: "docx",
        package: "libreoffice-writer",
        signature: Signature::CompoundFile,
    },
    Legacy {
        extension: "rtf",
        target: "docx",
        package: "libreoffice-writer",
        signature: Signature::Rtf,
    },
    Legacy {
        extension: "odt",
        target: "docx",
        package: "libreoffice-writer",
        signature: Signature::Zip,
    },
    Legacy {
        extension: "xls",
        target: "xlsx",
        package: "libreoffice-calc",
        signature: Signature::CompoundFile,
    },
    Legacy {
        extension: "ods",
        target: "xlsx",
        package: "libreoffice-calc",
        signature: Signature::Zip,
    },
    Legacy {
        extension: "ppt",
        target: "pptx",
        package: "libreoffice-impress",
        signature: Signature::CompoundFile,
    },
    Legacy {
        extension: "odp",
        target: "pptx",
        package: "libreoffice-impress",
        signature: Signature::Zip,
    },
];

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(
        "{path}: .{extension} files are read through LibreOffice, which is not installed: install the Debian package {package} (apt-get install {package}), or save the file as .{target}"
    )]
    Missing {
        path: String,
        extension: &'static str,
        target: &'static str,
        package: &'static str,
    },
    #[error(
        "{path}: its contents are not those of a .{extension} file (it does not begin as one does); check that it opens in its application and save it again, or save it as .{target}"
    )]
    NotThatFormat {
        path: String,
        extension: &'static str,
        target: &'static str,
    },
    #[error(
        "{path}: LibreOffice did not convert it within {seconds} s; save it as .{target} and add that file instead"
    )]
    TimedOut {
        path: String,
        seconds: u64,
        target: &'static str,
    },
    #[error(
        "{path}: LibreOffice could not convert it ({reason}); check that the file opens in LibreOffice, or save it as .{target}"
    )]
    Failed {
        path: String,
        reason: String,
        target: &'static str,
    },
}

/// The conversion a file needs, from its name; `None` for every other file.
pub fn legacy_format(path: &str) -> Option<Legacy> {
    let extension = Path::new(path)
        .extension()?
        .to_string_lossy()
        .to_lowercase();
    LEGACY
        .iter()
        .find(|legacy| legacy.extension == extension)
        .copied()
}

/// `bytes` of a `legacy` file named `path`, converted; with `soffice` found on `PATH`.
pub fn convert(
    legacy: Legacy,
    path: &str,
    bytes: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, ConvertError> {
    if !bytes.starts_with(legacy.signature.magic()) {
        return Err(ConvertError::NotThatFormat {
            path: path.to_owned(),
            extension: legacy.extension,
            target: legacy.target,
        });
    }
    convert_using(
        tool::on_path(&["soffice", "libreoffice"]),
        legacy,
        path,
        bytes,
        timeout,
    )
}

fn convert_using(
    soffice: Option<PathBuf>,
    legacy: Legacy,
    path: &str,
    bytes: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, ConvertError> {
    let soffice = soffice.ok_or_else(|| ConvertError::Missing {
        path: path.to_owned(),
        extension: legacy.extension,
        target: legacy.target,
        package: legacy.package,
    })?;
    convert_with(&soffice, legacy, path, bytes, timeout)
}

fn convert_with(
    soffice: &Path,
    legacy: Legacy,
    path: &str,
    bytes: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, ConvertError> {
    let failed = |reason: String| ConvertError::Failed {
        path: path.to_owned(),
        reason,
        target: legacy.target,
    };
    let work =
        tempfile::tempdir().map_err(|error| failed(format!("no temporary directory: {error}")))?;
    let input = work.path().join(format!("input.{}", legacy.extension));
    std::fs::write(&input, bytes)
        .map_err(|error| failed(format!("cannot write a temporary file: {error}")))?;
    let out_dir = work.path().join("out");
    let profile = format!("file://{}", work.path().join("profile").display());
    let finished = tool::run(
        Command::new(soffice)
            .arg(format!("-env:UserInstallation={profile}"))
            .args([
                "--headless",
                "--norestore",
                "--nologo",
                "--nolockcheck",
                "--convert-to",
            ])
            .arg(legacy.target)
            .arg("--outdir")
            .arg(&out_dir)
            .arg(&input),
        timeout,
    )
    .map_err(|error| match error {
        RunError::Start(error) => failed(format!("{} did not start: {error}", soffice.display())),
        RunError::TimedOut(_) => ConvertError::TimedOut {
            path: path.to_owned(),
            seconds: timeout.as_secs().max(1),
            target: legacy.target,
        },
    })?;
    let output = out_dir.join(format!("input.{}", legacy.target));
    match std::fs::read(&output) {
        Ok(converted) if finished.status.success() && !converted.is_empty() => Ok(converted),
        _ => Err(failed(format!(
            "{}: {}",
            finished.status, finished.last_error_line
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_formats_are_known_by_extension_whatever_the_case() {
        let doc = legacy_format("議事録/第3回.DOC").expect("a legacy format");
        assert_eq!((doc.target, doc.package), ("docx", "libreoffice-writer"));
        assert_eq!(legacy_format("予算.ods").map(|l| l.target), Some("xlsx"));
        assert_eq!(legacy_format("説明.ppt").map(|l| l.target), Some("pptx"));
        assert_eq!(legacy_format("計画.docx"), None);
        assert_eq!(legacy_format("README"), None);
    }

    #[test]
    fn a_file_that_does_not_begin_as_its_type_does_is_refused_before_libreoffice() {
        let doc = legacy_format("a.doc").expect("a legacy format");
        let error = convert(
            doc,
            "a.doc",
            "これはテキストです".as_bytes(),
            Duration::from_secs(1),
        )
        .expect_err("not a compound file");
        assert!(
            matches!(
                error,
                ConvertError::NotThatFormat {
                    extension: "doc",
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().starts_with("a.doc: "), "{error}");
        let odt = legacy_format("a.odt").expect("a legacy format");
        let error = convert(odt, "a.odt", br"{\rtf1 hello}", Duration::from_secs(1))
            .expect_err("an RTF named .odt");
        assert!(
            matches!(error, ConvertError::NotThatFormat { .. }),
            "{error}"
        );
    }

    #[test]
    fn without_libreoffice_the_error_names_the_package_to_install() {
        let legacy = legacy_format("見積.xls").expect("a legacy format");
        let error = convert_using(None, legacy, "見積.xls", b"x", Duration::from_secs(1))
            .expect_err("no converter");
        let message = error.to_string();
        assert!(
            message.starts_with("見積.xls: ")
                && message.contains("apt-get install libreoffice-calc"),
            "{message}"
        );
    }

    #[test]
    fn a_converter_that_writes_nothing_is_a_failure_naming_the_file() {
        let legacy = legacy_format("a.doc").expect("a legacy format");
        let error = convert_with(
            Path::new("/bin/true"),
            legacy,
            "a.doc",
            b"x",
            Duration::from_secs(5),
        )
        .expect_err("no output");
        assert!(matches!(error, ConvertError::Failed { .. }), "{error}");
        assert!(error.to_string().starts_with("a.doc: "), "{error}");
    }

    /// A one-heading, one-paragraph OpenDocument text, as LibreOffice and other suites save it.
    fn odt(heading: &str, paragraph: &str) -> Vec<u8> {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("mimetype", stored).expect("an entry");
        zip.write_all(b"application/vnd.oasis.opendocument.text")
            .expect("written");
        zip.start_file("META-INF/manifest.xml", stored)
            .expect("an entry");
        zip.write_all(br#"<?xml version="1.0" encoding="UTF-8"?>
<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">
<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.text"/>
<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>
</manifest:manifest>"#).expect("written");
        zip.start_file("content.xml", stored).expect("an entry");
        let content = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">
<office:body><office:text><text:h text:outline-level="1">{heading}</text:h><text:p>{paragraph}</text:p></office:text></office:body>
</office:document-content>"#
        );
        zip.write_all(content.as_bytes()).expect("written");
        zip.finish().expect("a zip").into_inner()
    }

    #[test]
    #[ignore = "needs LibreOffice: apt-get install libreoffice-writer (or libreoffice-writer-nogui)"]
    fn an_opendocument_text_is_read_through_libreoffice() {
        let metadata = hikitsugi_ingest::DocumentMetadata {
            title: None,
            owner: "pref-hyogo".to_owned(),
            readers: vec!["pref-hyogo".to_owned()],
            kind: "minutes".to_owned(),
            date: None,
        };
        let document = crate::index::parse_bytes(
            "議事録.odt",
            "議事録.odt",
            &odt(
                "第1回 推進会議",
                "共同調達の進め方について、各市町の担当者と意見を交換した。",
            ),
            metadata,
            &crate::index::ReadOptions::default(),
        )
        .expect("converted and read");
        assert_eq!(document.format, hikitsugi_ingest::Format::Docx);
        assert!(
            document.text.contains("共同調達の進め方について"),
            "{}",
            document.text
        );
        assert!(
            document
                .chunks
                .iter()
                .any(|chunk| chunk.heading_path.iter().any(|h| h.contains("推進会議"))),
            "the heading is kept: {:?}",
            document.chunks
        );
    }

    #[test]
    fn a_converter_that_hangs_is_stopped_at_the_time_limit() {
        let dir = tempfile::tempdir().expect("a directory");
        let hanging = dir.path().join("soffice");
        std::fs::write(&hanging, "#!/bin/sh\nsleep 30\n").expect("a script");
        let mut permissions = std::fs::metadata(&hanging).expect("metadata").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&hanging, permissions).expect("executable");
        let legacy = legacy_format("a.xls").expect("a legacy format");
        let started = std::time::Instant::now();
        let error = convert_with(&hanging, legacy, "a.xls", b"x", Duration::from_millis(300))
            .expect_err("timed out");
        assert!(matches!(error, ConvertError::TimedOut { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
