//! One HTTP/1.1 keep-alive connection and a GET on it.

use std::fmt;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::Target;

#[derive(Debug)]
pub enum Error {
    Connect(std::io::Error),
    Http(hyper::Error),
    Request(hyper::http::Error),
    Status(u16),
    Timeout,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect(e) => write!(f, "connect: {e}"),
            Error::Http(e) => write!(f, "http: {e}"),
            Error::Request(e) => write!(f, "request: {e}"),
            Error::Status(s) => write!(f, "status {s}"),
            Error::Timeout => write!(f, "no answer in time"),
        }
    }
}

pub struct Connection {
    sender: SendRequest<Empty<Bytes>>,
}

impl Connection {
    pub async fn open(target: &Target) -> Result<Self, Error> {
        let stream = TcpStream::connect(target.addr)
            .await
            .map_err(Error::Connect)?;
        stream.set_nodelay(true).map_err(Error::Connect)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(Error::Http)?;
        tokio::spawn(async move {
            // The peer closing an idle connection is not an error here: the
            // next request on it fails and is counted.
            let _ = conn.await;
        });
        Ok(Connection { sender })
    }

    /// GET the target and read the whole body; a non-2xx status is an error.
    pub async fn get(&mut self, target: &Target, host: &str) -> Result<(), Error> {
        self.sender.ready().await.map_err(Error::Http)?;
        let req = hyper::Request::get(target.path.as_str())
            .header(hyper::header::HOST, host)
            .body(Empty::new())
            .map_err(Error::Request)?;
        let resp = self.sender.send_request(req).await.map_err(Error::Http)?;
        let status = resp.status();
        resp.into_body().collect().await.map_err(Error::Http)?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Error::Status(status.as_u16()))
        }
    }

    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}
