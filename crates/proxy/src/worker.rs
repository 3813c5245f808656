//! Data-plane workers. `weft proxy --concurrency N` runs N threads, each with
//! its own single-threaded runtime and its own accept loops on shared
//! (SO_REUSEPORT) listening sockets, as Envoy's workers do. A request, its
//! upstream connection and that connection's driver task then all live on one
//! thread, so handing a request to its connection wakes no other thread.
//! Per-worker state (idle connection lists, shared clients) is indexed by the
//! current thread's worker number.

use std::cell::Cell;

/// Per-worker arrays have this many slots; workers beyond share by modulo.
pub const MAX_WORKERS: usize = 16;

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// Marks the calling thread as worker `index`.
pub fn set_current(index: usize) {
    CURRENT.with(|c| c.set(index % MAX_WORKERS));
}

/// The calling thread's worker slot (0 outside workers).
pub fn current() -> usize {
    CURRENT.with(Cell::get)
}
