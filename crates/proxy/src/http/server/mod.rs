//! Serving one downstream connection.
//!
//! HTTP/1.1 requests of the common shape (see [`request::parse`]) are served
//! by a lean loop: the head parsed in place, the handler run on this task,
//! the response head and a ready body written in one write. hyper's server
//! costs about a third of the proxy's own work per request in its dispatch
//! machinery, and this shape is nearly all traffic. The first request of any
//! other shape (upgrades, CONNECT, chunked or large bodies, `Expect`,
//! HTTP/1.0, h2, malformed heads) hands the connection, with every byte read
//! so far, to hyper's server for the rest of its life.

mod request;
mod response;

use std::future::{Future, pending, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use http::{Method, Response};
use hyper::body::{Body, Frame};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use self::request::{Lean, Parsed};
use self::response::Framing;
use super::body::ProxyBody;
use super::handler;
use crate::listeners::ConnInfo;
use crate::race::{First, race};
use crate::tls::rewind::Rewind;
use crate::upstream::RequestBody;

/// The read buffer a connection starts with; it grows for larger heads.
const READ_BUFFER: usize = 4096;
/// Body data up to this much is copied behind the head (or earlier data)
/// and leaves in one write; a larger frame is written on its own.
const COALESCE: usize = 64 * 1024;

/// Serves one downstream connection until it closes. When `drain` turns true
/// (the listener was removed) the connection finishes its in-flight request
/// and then closes (HTTP/1 after the current response, h2 with GOAWAY).
pub(crate) async fn serve<S>(io: S, conn: Arc<ConnInfo>, mut drain: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let flags = LoopFlags {
        idle: AtomicBool::new(true),
        draining: AtomicBool::new(false),
    };
    let handoff = {
        let mut lean = pin!(serve_lean(io, &conn, &flags));
        let drained = pin!(async {
            // A dropped sender means the manager is gone; keep serving.
            if !crate::listeners::until_true(&mut drain).await {
                pending::<()>().await;
            }
        });
        let first = race(lean.as_mut(), drained).await;
        match first {
            First::Main(handoff) => handoff,
            // Between requests: close now. Mid-request: the loop closes after
            // the response, which says `connection: close`.
            First::Signal(()) if flags.idle.load(Ordering::Relaxed) => None,
            First::Signal(()) => {
                flags.draining.store(true, Ordering::Relaxed);
                lean.await
            }
        }
    };
    if let Some((io, read)) = handoff {
        // Boxed: inline, hyper's connection state would add to the task of
        // every connection, though few are ever handed over.
        Box::pin(serve_with_hyper(
            Rewind::new(read.to_vec(), io),
            conn,
            drain,
        ))
        .await;
    }
}

/// Shared between the loop and the drain watch, on one task.
struct LoopFlags {
    /// Waiting for a request with nothing of it read.
    idle: AtomicBool,
    /// The listener is going: close after the current response.
    draining: AtomicBool,
}

/// The lean loop. Returns the stream and the unread bytes when a request
/// should go to hyper; None when the connection is done.
async fn serve_lean<S>(mut io: S, conn: &Arc<ConnInfo>, flags: &LoopFlags) -> Option<(S, BytesMut)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut read = BytesMut::with_capacity(READ_BUFFER);
    let mut write = Vec::new();
    loop {
        let Lean {
            request,
            close,
            trailers,
        } = loop {
            if !read.is_empty() {
                match request::parse(&mut read) {
                    Parsed::Lean(lean) => break lean,
                    Parsed::Handoff => return Some((io, read)),
                    Parsed::Partial => {}
                }
            } else {
                flags.idle.store(true, Ordering::Relaxed);
                if flags.draining.load(Ordering::Relaxed) {
                    return None;
                }
            }
            if read.capacity() - read.len() < READ_BUFFER / 4 {
                read.reserve(READ_BUFFER);
            }
            match poll_fn(|cx| tokio_util::io::poll_read_buf(Pin::new(&mut io), cx, &mut read))
                .await
            {
                Ok(0) | Err(_) => return None,
                Ok(_) => flags.idle.store(false, Ordering::Relaxed),
            }
        };
        let head_request = request.method() == Method::HEAD;
        let mut peer = Peer {
            watching: true,
            read: &mut read,
        };
        // The handler runs on this task, pinned and polled in place (its
        // future is the largest thing on a connection; each move is a copy).
        // If the client goes away first it is dropped, and records the
        // request as DC, as under hyper.
        let mut handled = pin!(handler::handle(request, conn.clone()));
        let Ok(response) =
            poll_fn(|cx| peer.poll_until_gone(&mut io, handled.as_mut(), cx)).await?;
        let close = close || flags.draining.load(Ordering::Relaxed);
        let written = write_response(
            &mut io,
            &mut peer,
            &mut write,
            response,
            Exchange {
                head_request,
                close,
                trailers,
            },
        )
        .await;
        if written.is_err() {
            return None;
        }
        if close {
            let _ = io.shutdown().await;
            return None;
        }
    }
}

/// Watches the client's side of the connection while a request is handled
/// or its response body awaited. Reading costs no system call until the
/// socket is readable again, since tokio notes a short read as drained.
struct Peer<'a> {
    /// False once the client sent more (a pipelined request): its bytes stay
    /// buffered for the loop, and reading stops until then.
    watching: bool,
    read: &'a mut BytesMut,
}

impl Peer<'_> {
    /// Ready when the client closed or the connection failed.
    fn poll_gone<S: AsyncRead + Unpin>(&mut self, io: &mut S, cx: &mut Context<'_>) -> Poll<()> {
        if !self.watching {
            return Poll::Pending;
        }
        if self.read.capacity() == self.read.len() {
            self.read.reserve(READ_BUFFER);
        }
        match tokio_util::io::poll_read_buf(Pin::new(io), cx, self.read) {
            Poll::Ready(Ok(0) | Err(_)) => Poll::Ready(()),
            Poll::Ready(Ok(_)) => {
                self.watching = false;
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// `work`'s output, or None if the client went away first.
    fn poll_until_gone<S, F>(
        &mut self,
        io: &mut S,
        work: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<F::Output>>
    where
        S: AsyncRead + Unpin,
        F: Future,
    {
        if let Poll::Ready(out) = work.poll(cx) {
            return Poll::Ready(Some(out));
        }
        self.poll_gone(io, cx).map(|()| None)
    }
}

/// What the request said about its response.
struct Exchange {
    head_request: bool,
    close: bool,
    /// The client accepts trailers.
    trailers: bool,
}

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("writing the response: {0}")]
    Io(#[from] io::Error),
    #[error("the response body failed")]
    Body,
    #[error("the response body did not match its length")]
    Length,
    #[error("the client went away")]
    Gone,
}

/// Writes the response. The head and whatever body is ready at once leave
/// together; the rest follows as it arrives.
async fn write_response<S>(
    io: &mut S,
    peer: &mut Peer<'_>,
    write: &mut Vec<u8>,
    response: Response<ProxyBody>,
    exchange: Exchange,
) -> Result<(), WriteError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (parts, body) = response.into_parts();
    let mut body = pin!(body);
    write.clear();
    let framing = response::encode_head(
        &parts,
        &body.size_hint(),
        exchange.head_request,
        exchange.close,
        write,
    );
    // Written out: the map serves the next head parsed on this thread.
    crate::header_maps::give_back(parts.headers);
    let mut left = match framing {
        Framing::None => {
            io.write_all(write).await?;
            return Ok(());
        }
        Framing::Length(n) => Some(n),
        Framing::Chunked => None,
    };
    loop {
        // A frame now if there is one; else send what is buffered first.
        let frame = match poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if !write.is_empty() {
                    io.write_all(write).await?;
                    write.clear();
                }
                let mut next = pin!(poll_fn(|cx| body.as_mut().poll_frame(cx)));
                poll_fn(|cx| peer.poll_until_gone(io, next.as_mut(), cx))
                    .await
                    .ok_or(WriteError::Gone)?
            }
        };
        match frame {
            None => break,
            Some(Err(_)) => return Err(WriteError::Body),
            Some(Ok(frame)) => {
                put_frame(io, write, frame, &mut left, exchange.trailers).await?;
            }
        }
    }
    match left {
        Some(0) => {}
        Some(_) => return Err(WriteError::Length),
        None => response::chunked_end(write, None),
    }
    if !write.is_empty() {
        io.write_all(write).await?;
    }
    Ok(())
}

/// Adds one body frame to the output: data (chunked when there is no
/// length), or trailers, which end a chunked body when the client takes them
/// and are dropped otherwise, as hyper does.
async fn put_frame<S: AsyncWrite + Unpin>(
    io: &mut S,
    write: &mut Vec<u8>,
    frame: Frame<bytes::Bytes>,
    left: &mut Option<u64>,
    trailers_allowed: bool,
) -> Result<(), WriteError> {
    let mut data = match frame.into_data() {
        Ok(data) => data,
        Err(frame) => {
            if left.is_none()
                && let Ok(trailers) = frame.into_trailers()
            {
                // The end of a chunked body, written now, with or without
                // them; `None` below stops a second last-chunk.
                response::chunked_end(write, trailers_allowed.then_some(&trailers));
                *left = Some(0);
            }
            return Ok(());
        }
    };
    if data.is_empty() {
        return Ok(());
    }
    match left {
        Some(n) => {
            *n = n.checked_sub(data.len() as u64).ok_or(WriteError::Length)?;
        }
        None => response::chunk_start(write, data.len()),
    }
    if write.len() + data.len() <= COALESCE {
        write.extend_from_slice(&data);
    } else {
        io.write_all(write).await?;
        write.clear();
        while data.has_remaining() {
            io.write_buf(&mut data).await?;
        }
    }
    if left.is_none() {
        write.extend_from_slice(b"\r\n");
    }
    Ok(())
}

/// hyper's server (HTTP/1 and h2 by the connection's preface), for the
/// connections the lean loop hands over.
async fn serve_with_hyper<S>(io: S, conn: Arc<ConnInfo>, mut drain: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        handler::handle(req.map(RequestBody::Streaming), conn.clone())
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No header read timeout (hyper's default is 30 s once a timer is set):
    // Envoy's sidecars have none either.
    // Flattened writes: a response head and a small body leave in one
    // write(2) from one buffer, rather than a writev of a queue of buffers
    // (and TLS streams do not take vectored writes well).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .writev(false);
    builder.http2().timer(TokioTimer::new());
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(connection);
    let drained = async {
        // A dropped sender means the manager is gone; keep serving.
        if !crate::listeners::until_true(&mut drain).await {
            pending::<()>().await;
        }
    };
    tokio::pin!(drained);
    match race(connection.as_mut(), drained).await {
        First::Main(result) => log_end(result),
        First::Signal(()) => {
            connection.as_mut().graceful_shutdown();
            log_end(connection.await);
        }
    }
}

fn log_end(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(e) = result {
        tracing::debug!(error = %e, "downstream connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future a function returns, without calling it.
    fn future_size<A, B, C, F>(_: fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    fn handler_future_size<A, B, F>(_: fn(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every open connection keeps its task's whole future, whatever state it
    /// is in. The request handler's future is inline on purpose (no
    /// allocation per request); hyper's server, which few connections ever
    /// use, is boxed so that idle keep-alive connections do not carry it too.
    #[test]
    fn hypers_server_is_not_part_of_every_connection() {
        let handler = handler_future_size(handler::handle as fn(_, _) -> _);
        let connection = future_size(serve::<tokio::net::TcpStream> as fn(_, _, _) -> _);
        assert!(
            connection <= handler + 2048,
            "a connection's task is {connection} bytes, its handler {handler}"
        );
    }
}
