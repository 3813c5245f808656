//! An idle timeout for spliced TCP: a stream wrapper that notes the time of
//! every byte moved, and a watchdog that fires once nothing moved for a while.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::outlier::now_ms;

/// When bytes last moved ([`now_ms`] clock), shared by both directions.
#[derive(Clone, Debug)]
pub struct LastActivity(Arc<AtomicU64>);

impl Default for LastActivity {
    fn default() -> Self {
        LastActivity(Arc::new(AtomicU64::new(now_ms())))
    }
}

impl LastActivity {
    fn touch(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }

    /// Resolves once no byte moved for `timeout`.
    pub async fn idle_for(&self, timeout: Duration) {
        let limit = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        loop {
            let quiet = now_ms().saturating_sub(self.0.load(Ordering::Relaxed));
            if quiet >= limit {
                return;
            }
            tokio::time::sleep(Duration::from_millis(limit - quiet)).await;
        }
    }
}

/// A stream that touches `activity` whenever it reads or writes bytes.
pub struct Tracked<S> {
    pub inner: S,
    pub activity: LastActivity,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
