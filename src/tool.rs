//! Running the external programs some formats need (LibreOffice, pdftoppm, tesseract): found on
//! `PATH`, run without input under a time limit, and their last line of error output kept to say
//! why they failed.

use std::io::{Read, Seek};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

/// The first of `names` found as a file in a directory of `PATH`.
pub fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// How a program that ran to its end finished.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// Its last non-empty line on standard error, or "no output".
    pub last_error_line: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("did not start: {0}")]
    Start(std::io::Error),
    /// The program was killed at the time limit.
    #[error("did not finish within {} s", .0.as_secs().max(1))]
    TimedOut(Duration),
}

/// Runs `command` with no input and its output discarded, killing it at `timeout`. Standard error
/// goes to an anonymous file rather than a pipe, so a program that writes much there never blocks.
pub fn run(command: &mut Command, timeout: Duration) -> Result<Finished, RunError> {
    let mut stderr = tempfile::tempfile().map_err(RunError::Start)?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr.try_clone().map_err(RunError::Start)?)
        .spawn()
        .map_err(RunError::Start)?;
    let status = match child.wait_timeout(timeout) {
        Ok(Some(status)) => status,
        Ok(None) | Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RunError::TimedOut(timeout));
        }
    };
    let mut errors = String::new();
    if stderr.rewind().is_ok() {
        let _ = stderr.read_to_string(&mut errors);
    }
    let last_error_line = errors
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .unwrap_or("no output")
        .to_owned();
    Ok(Finished {
        status,
        last_error_line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_error_line_is_kept_and_a_hanging_program_is_stopped() {
        let finished = run(
            Command::new("sh").args(["-c", "echo first >&2; echo 'why it failed' >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .expect("ran");
        assert_eq!(finished.status.code(), Some(3));
        assert_eq!(finished.last_error_line, "why it failed");
        let started = std::time::Instant::now();
        let error = run(Command::new("sleep").arg("30"), Duration::from_millis(200))
            .expect_err("timed out");
        assert!(matches!(error, RunError::TimedOut(_)), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(on_path(&["no-such-program-here", "sh"]).is_some());
    }
}
