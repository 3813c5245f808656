//! Fault injection (Envoy's fault filter): a delay for a share of requests,
//! then an abort for a share, as an HTTP status or a gRPC status.

use http::StatusCode;

use super::body::{Outcome, local};
use super::flags::Flags;
use super::grpc::trailers_only;
use super::handler::NAMES;
use crate::config::route::{AbortWith, Fault};

/// Envoy's body for an HTTP abort.
const ABORT_BODY: &str = "fault filter abort";

/// Applies the delay (if sampled) and returns the abort reply (if sampled);
/// `flags` gains DI for a delay.
pub async fn inject(fault: &Fault, flags: &mut Flags) -> Option<Outcome> {
    if let Some(delay) = &fault.delay
        && delay.percent.sample()
    {
        *flags = flags.with(Flags::DI);
        tokio::time::sleep(delay.delay).await;
    }
    let abort = fault.abort.as_ref().filter(|a| a.percent.sample())?;
    let response = match abort.error {
        AbortWith::Http(status) => local(status, ABORT_BODY),
        AbortWith::Grpc(code) => {
            let mut r = local(StatusCode::OK, "");
            trailers_only(&mut r, code, ABORT_BODY.as_bytes());
            r
        }
    };
    Some(Outcome {
        response,
        flags: flags.with(Flags::FI),
        cluster: NAMES.none.clone(),
    })
}
