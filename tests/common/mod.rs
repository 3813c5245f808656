//! Shared helpers for tests that run the real `weft` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// (code, "Kind ns/name") of each JSON message.
    pub fn findings(&self) -> Vec<(String, String)> {
        self.json()
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let r = &m["resource"];
                let ns = r["namespace"].as_str().unwrap_or_default();
                let reference = if ns.is_empty() {
                    format!(
                        "{} {}",
                        r["kind"].as_str().unwrap_or_default(),
                        r["name"].as_str().unwrap_or_default()
                    )
                } else {
                    format!(
                        "{} {ns}/{}",
                        r["kind"].as_str().unwrap_or_default(),
                        r["name"].as_str().unwrap_or_default()
                    )
                };
                (
                    m["code"].as_str().unwrap_or_default().to_string(),
                    reference,
                )
            })
            .collect()
    }
}

pub fn weft<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .expect("the weft binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `weft analyze FLAGS... PATHS...`
pub fn analyze<P: AsRef<Path>>(flags: &[&str], paths: &[P]) -> Run {
    let mut args: Vec<std::ffi::OsString> = vec!["analyze".into()];
    args.extend(flags.iter().map(std::ffi::OsString::from));
    args.extend(paths.iter().map(|p| p.as_ref().as_os_str().to_owned()));
    weft(args)
}

/// Writes `files` (relative path, content) into a fresh temporary directory.
pub fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, content) in files {
        let full = dir.path().join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(&full, content).expect("write file");
    }
    dir
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// 1-based line ranges of the `---`-separated documents of `text`.
pub fn document_ranges(text: &str) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut start = 1;
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim_end() == "---" {
            ranges.push((start, i));
            start = i + 2;
        }
    }
    ranges.push((start, lines.len()));
    ranges
}

pub mod mesh;
pub mod traffic;
