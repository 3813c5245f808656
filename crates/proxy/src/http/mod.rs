//! HTTP proxying.
//!
//! - `server`: a downstream connection: common HTTP/1.1 requests in a lean
//!   loop, anything else (h2, upgrades, streamed bodies) through hyper.
//! - `handler`: one request: route table, virtual host, route, action.
//! - `target`: host and port from an absolute URI or the Host header.
//! - `matching`: route conditions.
//! - `routed`: a forwarding route in Envoy's filter order: `cors`, `fault`,
//!   `rewrite`, header operations, `mirror`, `retry` (attempts, timeouts,
//!   backoff), with `buffer` making bodies replayable.
//! - `forward`: sending to passthrough and inbound, local replies.
//! - `flags`: Envoy's response flags; `grpc`: trailers-only local replies.
//! - `connect`: CONNECT tunnels. `upgrade`: 101 Switching Protocols (WebSocket).
//! - `headers`, `body`: hop-by-hop headers, request ids, response bodies.

mod body;
mod buffer;
mod connect;
mod cors;
mod fault;
mod flags;
mod forward;
mod grpc;
mod handler;
mod headers;
pub mod matching;
mod mirror;
mod retry;
mod rewrite;
mod routed;
mod server;
pub mod target;
mod upgrade;

pub(crate) use server::serve;
