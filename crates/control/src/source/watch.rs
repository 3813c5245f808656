//! Watching the config directory: notify events, debounced into batches.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::warn;

use crate::error::ControlError;

/// How changes are batched: a batch closes after `quiet` without events, or
/// `max_delay` after its first event even if events keep coming (an editor
/// saving in a loop must not hold config back forever).
#[derive(Clone, Copy, Debug)]
pub struct Debounce {
    pub quiet: Duration,
    pub max_delay: Duration,
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce {
            quiet: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        }
    }
}

/// A recursive watch on one directory.
pub struct Watcher {
    // Dropping the notify watcher stops the events; it lives as long as we do.
    _watcher: RecommendedWatcher,
    events: mpsc::UnboundedReceiver<notify::Result<Event>>,
    debounce: Debounce,
}

impl Watcher {
    pub fn new(root: &Path, debounce: Debounce) -> Result<Watcher, ControlError> {
        let (tx, events) = mpsc::unbounded_channel();
        let error = |source| ControlError::Watch {
            path: root.to_path_buf(),
            source,
        };
        // notify calls this on its own thread; an unbounded send never blocks it.
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = tx.send(event);
        })
        .map_err(error)?;
        watcher
            .watch(root, RecursiveMode::Recursive)
            .map_err(error)?;
        Ok(Watcher {
            _watcher: watcher,
            events,
            debounce,
        })
    }

    /// The next settled batch: the paths events named. `None` once the
    /// watcher has stopped.
    pub async fn next_batch(&mut self) -> Option<HashSet<PathBuf>> {
        let mut touched = HashSet::new();
        // Wait for the first relevant event.
        loop {
            let event = self.events.recv().await?;
            if relevant(event, &mut touched) {
                break;
            }
        }
        let deadline = Instant::now() + self.debounce.max_delay;
        loop {
            let quiet_until = (Instant::now() + self.debounce.quiet).min(deadline);
            match tokio::time::timeout_at(quiet_until, self.events.recv()).await {
                Ok(Some(event)) => {
                    relevant(event, &mut touched);
                }
                Ok(None) => return Some(touched),
                Err(_elapsed) => return Some(touched),
            }
            if Instant::now() >= deadline {
                return Some(touched);
            }
        }
    }
}

/// Whether an event may change config; its paths go into `touched`.
/// Opens and read-closes are ignored: our own rescans cause them.
fn relevant(event: notify::Result<Event>, touched: &mut HashSet<PathBuf>) -> bool {
    let event = match event {
        Ok(event) => event,
        Err(e) => {
            // Lost events (queue overflow and the like): a rescan catches up.
            warn!("config watch: {e}");
            return true;
        }
    };
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        EventKind::Access(_) => return false,
        _ => {}
    }
    if event.need_rescan() {
        return true;
    }
    let mut any = false;
    for path in event.paths {
        // Editors' swap and backup files are not config; directories and
        // symlinks like `..data` have no extension and may be.
        let interesting = path.extension().is_none() || super::is_config_file(&path);
        if interesting {
            touched.insert(path);
            any = true;
        }
    }
    any
}
