//! The file source: every resource under a directory, kept per file so that a
//! file that stops parsing or validating keeps its last good resources.
//!
//! Change detection is a rescan: files named by the watcher are always
//! re-read, the others only when their size, mtime or inode changed, and a
//! file is decoded again only when its text differs from what we last saw.
//! Rescanning (rather than trusting event paths alone) copes with renames,
//! deleted directories and Kubernetes' `..data` symlink swaps the same way.

mod watch;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use tracing::{debug, warn};
use weft_api::load::{LoadError, Loaded, load_text};
use weft_api::resource::{DecodeOptions, Resource};

pub use self::watch::{Debounce, Watcher};
use crate::error::ControlError;

const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// A file rejected as a whole; `problems` are `file:line: message` lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub file: PathBuf,
    pub problems: Vec<String>,
}

/// What one scan found.
#[derive(Clone, Debug, Default)]
pub struct ScanReport {
    /// Whether the set of served resources changed.
    pub changed: bool,
    /// Files that failed this scan (their previous resources stay).
    pub rejected: Vec<Rejection>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

struct FileEntry {
    stamp: Option<Stamp>,
    /// The text last read, good or bad, so an unchanged file is not decoded again.
    text: String,
    /// The resources of the last version that loaded cleanly.
    resources: Vec<Arc<Resource>>,
}

/// Every resource under `root` (recursively; `.yaml`, `.yml`, `.json`;
/// hidden entries skipped), by file.
pub struct FileSource {
    root: PathBuf,
    opts: DecodeOptions,
    files: BTreeMap<PathBuf, FileEntry>,
}

impl FileSource {
    pub fn new(root: impl Into<PathBuf>, opts: DecodeOptions) -> FileSource {
        FileSource {
            root: root.into(),
            opts,
            files: BTreeMap::new(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Rescans the directory. `touched` names files that must be re-read
    /// whatever their metadata says (the watcher's event paths).
    pub fn scan(&mut self, touched: &HashSet<PathBuf>) -> Result<ScanReport, ControlError> {
        let mut paths = Vec::new();
        collect_files(&self.root, &mut paths).map_err(|source| ControlError::ConfigDir {
            path: self.root.clone(),
            source,
        })?;
        let mut report = ScanReport::default();
        let present: HashSet<&PathBuf> = paths.iter().collect();
        let before = self.files.len();
        self.files.retain(|path, entry| {
            let keep = present.contains(path);
            if !keep && !entry.resources.is_empty() {
                debug!(file = %path.display(), "file removed; dropping its resources");
            }
            keep
        });
        report.changed |= self.files.len() != before;
        for path in &paths {
            self.scan_file(path, touched.contains(path), &mut report);
        }
        Ok(report)
    }

    fn scan_file(&mut self, path: &Path, touched: bool, report: &mut ScanReport) {
        let stamp = stamp(path);
        if let Some(entry) = self.files.get(path)
            && !touched
            && stamp.is_some()
            && entry.stamp == stamp
        {
            return;
        }
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                // Vanished between listing and reading, or unreadable: a
                // later event or scan settles it; keep what we had.
                report
                    .rejected
                    .push(reject(path, vec![format!("{}: {e}", path.display())]));
                return;
            }
        };
        if let Some(entry) = self.files.get_mut(path)
            && entry.text == text
        {
            entry.stamp = stamp;
            return;
        }
        let (resources, problems) = decode_file(path, &text, &self.opts);
        let entry = self.files.entry(path.to_path_buf()).or_insert(FileEntry {
            stamp: None,
            text: String::new(),
            resources: Vec::new(),
        });
        entry.stamp = stamp;
        entry.text = text;
        if problems.is_empty() {
            entry.resources = resources.into_iter().map(Arc::new).collect();
            report.changed = true;
        } else {
            report.rejected.push(reject(path, problems));
        }
    }

    /// The served resources: the last good version of every file, in path
    /// order. A resource defined again in a later file (same kind, namespace
    /// and name) is ignored, as a second `kubectl create` would fail.
    pub fn resources(&self) -> Vec<Arc<Resource>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for r in self.files.values().flat_map(|f| f.resources.iter()) {
            if let Some(kind) = r.kind
                && !seen.insert((kind, r.meta.namespace.as_str(), r.meta.name.as_str()))
            {
                warn!(
                    "{}: {} is already defined in an earlier file; ignoring this one",
                    r.origin,
                    r.reference()
                );
                continue;
            }
            out.push(r.clone());
        }
        out
    }
}

fn reject(path: &Path, problems: Vec<String>) -> Rejection {
    for p in &problems {
        warn!("{p}");
    }
    warn!(
        file = %path.display(),
        "config file rejected; its previously loaded resources stay in effect"
    );
    Rejection {
        file: path.to_path_buf(),
        problems,
    }
}

/// Decodes one file; any problem (syntax, decoding, schema violation) makes
/// the whole file bad, as Istio's webhook would refuse the `kubectl apply`.
fn decode_file(path: &Path, text: &str, opts: &DecodeOptions) -> (Vec<Resource>, Vec<String>) {
    let mut loaded = Loaded::default();
    load_text(text, &path.display().to_string(), opts, &mut loaded);
    let mut problems: Vec<String> = loaded
        .errors
        .iter()
        .map(|e| match e {
            LoadError::Read { path, message } => format!("{path}: {message}"),
            LoadError::Parse {
                file,
                line,
                message,
            } => format!("{file}:{line}: {message}"),
        })
        .collect();
    for r in &loaded.resources {
        for v in &r.violations {
            problems.push(format!(
                "{}: {}: {}",
                r.origin_of(&v.path),
                r.reference(),
                v
            ));
        }
    }
    (loaded.resources, problems)
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode,
    })
}

/// Config files under `dir`, sorted; hidden entries (`.git`, `..data`) skipped.
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        if is_hidden(&entry) {
            continue;
        }
        // A broken symlink or a file removed meanwhile is simply not there.
        let Ok(meta) = std::fs::metadata(&entry) else {
            continue;
        };
        if meta.is_dir() {
            // An unreadable subdirectory should not hide the rest.
            if let Err(e) = collect_files(&entry, out) {
                warn!(dir = %entry.display(), "cannot read config directory: {e}");
            }
        } else if is_config_file(&entry) {
            out.push(entry);
        }
    }
    Ok(())
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

pub(crate) fn is_config_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// One-shot load of a directory (bad files logged and skipped).
pub fn load(dir: &Path, opts: &DecodeOptions) -> Result<Vec<Arc<Resource>>, ControlError> {
    let mut source = FileSource::new(dir, opts.clone());
    source.scan(&HashSet::new())?;
    Ok(source.resources())
}

#[cfg(test)]
mod tests;
