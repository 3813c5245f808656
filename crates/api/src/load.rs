//! Loading resources from files, directories and standard input.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use crate::resource::{DecodeOptions, Resource, decode_document};
use crate::yaml::parse_documents;

/// A problem that keeps (part of) an input from loading at all.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LoadError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("{file}:{line}: {message}")]
    Parse {
        file: String,
        line: usize,
        message: String,
    },
}

/// Everything loaded from a set of inputs.
#[derive(Debug, Default)]
pub struct Loaded {
    pub resources: Vec<Resource>,
    pub errors: Vec<LoadError>,
}

const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// Loads files and directories (recursively, `.yaml`, `.yml`, `.json`); `-` is
/// standard input. Files named explicitly are read whatever their extension.
pub fn load_paths(paths: &[PathBuf], opts: &DecodeOptions) -> Loaded {
    let mut loaded = Loaded::default();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            match std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
                Ok(_) => load_text(&text, "-", opts, &mut loaded),
                Err(e) => loaded.errors.push(LoadError::Read {
                    path: "-".into(),
                    message: e.to_string(),
                }),
            }
            continue;
        }
        let mut files = Vec::new();
        if let Err(e) = collect_files(path, true, &mut files) {
            loaded.errors.push(LoadError::Read {
                path: path.display().to_string(),
                message: e.to_string(),
            });
        }
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(text) => load_text(&text, &file.display().to_string(), opts, &mut loaded),
                Err(e) => loaded.errors.push(LoadError::Read {
                    path: file.display().to_string(),
                    message: e.to_string(),
                }),
            }
        }
    }
    loaded
}

fn collect_files(path: &Path, explicit: bool, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            // Hidden entries (e.g. Kubernetes' `..data` symlinks) are skipped.
            let hidden = entry
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if !hidden {
                collect_files(&entry, false, out)?;
            }
        }
    } else if explicit
        || path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
    {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Loads every document of one text; bad documents become errors, the rest load.
pub fn load_text(text: &str, file: &str, opts: &DecodeOptions, loaded: &mut Loaded) {
    let file: Arc<str> = file.into();
    for doc in parse_documents(text) {
        match doc {
            Ok(doc) => match decode_document(doc.value, &file, doc.start_line, doc.lines, opts) {
                Ok(resources) => loaded.resources.extend(resources),
                Err(message) => loaded.errors.push(LoadError::Parse {
                    file: file.to_string(),
                    line: doc.start_line,
                    message,
                }),
            },
            Err(e) => loaded.errors.push(LoadError::Parse {
                file: file.to_string(),
                line: e.line,
                message: e.message,
            }),
        }
    }
}
