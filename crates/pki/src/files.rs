//! Key and certificate files: created once, atomically, private keys 0600.

use std::io::Write;
use std::path::Path;

use crate::PkiError;

fn io(path: &Path, source: std::io::Error) -> PkiError {
    PkiError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(crate) fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|e| io(path, e))
}

/// Writes `content` to a temporary file in the same directory, then links
/// it into place only if `path` does not exist yet. Returns `false` when
/// another writer got there first (its file is kept).
pub(crate) fn create_new(path: &Path, content: &str, private: bool) -> Result<bool, PkiError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut random = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut random);
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".{name}.{suffix}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(content.as_bytes())?;
        file.sync_all()?;
        // A hard link fails if the target exists: creation is atomic and
        // a concurrent creator's file is never overwritten.
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    result.map_err(|e| io(path, e))
}

/// The file's content, creating it with `make()` (0600) if it is missing.
pub(crate) fn read_or_create(
    path: &Path,
    make: impl FnOnce() -> Result<String, PkiError>,
) -> Result<String, PkiError> {
    match std::fs::read_to_string(path) {
        Ok(text) => return Ok(text),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(path, e)),
        Err(_) => {}
    }
    let content = make()?;
    if create_new(path, &content, true)? {
        Ok(content)
    } else {
        read(path)
    }
}
