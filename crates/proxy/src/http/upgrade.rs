//! HTTP/1.1 upgrades (WebSocket and others): the `Upgrade` and `Connection`
//! headers, hop-by-hop by nature, are carried to the upstream; when it
//! answers 101 Switching Protocols the two upgraded connections are spliced
//! byte for byte until either side closes, as Envoy does for the upgrade
//! types Istio enables (websocket by default).

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// A request asking to switch protocols, with the downstream half of the
/// upgrade taken out of it.
pub struct Upgrade {
    protocol: HeaderValue,
    downstream: OnUpgrade,
}

impl Upgrade {
    /// Takes the upgrade out of an HTTP/1.1 request whose `Connection` names
    /// `upgrade` and which has an `Upgrade` header; None for any other request.
    pub fn take<B>(req: &mut Request<B>) -> Option<Upgrade> {
        if req.version() != Version::HTTP_11 {
            return None;
        }
        let protocol = req.headers().get(header::UPGRADE)?.clone();
        let asks = req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
        asks.then(|| Upgrade {
            protocol,
            downstream: hyper::upgrade::on(req),
        })
    }

    /// Puts the upgrade headers back after hop-by-hop headers were removed.
    pub fn restore(&self, headers: &mut HeaderMap) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, self.protocol.clone());
    }

    /// When the upstream switched protocols, restores the response's upgrade
    /// headers and splices the two connections once the 101 has gone out.
    pub fn complete<B>(self, response: &mut Response<B>, cluster: &str) {
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return;
        }
        let upstream = hyper::upgrade::on(&mut *response);
        self.restore(response.headers_mut());
        let cluster = cluster.to_string();
        tokio::spawn(async move {
            match tokio::try_join!(self.downstream, upstream) {
                Ok((down, up)) => {
                    let (mut down, mut up) = (TokioIo::new(down), TokioIo::new(up));
                    match tokio::io::copy_bidirectional(&mut down, &mut up).await {
                        Ok((sent, received)) => {
                            tracing::debug!(%cluster, sent, received, "upgraded connection closed")
                        }
                        Err(e) => {
                            tracing::debug!(%cluster, error = %e, "upgraded connection ended")
                        }
                    }
                }
                Err(e) => tracing::debug!(%cluster, error = %e, "protocol upgrade failed"),
            }
        });
    }
}
