//! The connection edge: hyper answers some requests itself, before any of our code runs (a
//! request line over 64 KB with 414, a head over its buffer or with too many headers with
//! 431, unparseable HTTP with 400), and those answers have an empty body and no request id.
//! This wraps each accepted socket and replaces exactly those answers, as they are written,
//! with the error envelope and `X-Request-Id`, so every answer is one the docs describe.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::serve::Listener;
use ironbridge_core::Clock;
use ironbridge_core::ids::new_id;
use ironbridge_model::ErrorCode;
use ironbridge_model::error::{ErrorObject, ErrorResponse};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::context::CURRENT_VERSION;

/// A TCP listener whose connections answer hyper's own refusals in the error envelope.
pub struct EnvelopeListener {
    inner: TcpListener,
    clock: Arc<dyn Clock>,
}

impl EnvelopeListener {
    /// Wraps `inner`; `clock` stamps the request ids of the replaced answers.
    pub fn new(inner: TcpListener, clock: Arc<dyn Clock>) -> Self {
        EnvelopeListener { inner, clock }
    }
}

impl Listener for EnvelopeListener {
    type Io = EnvelopeIo<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = Listener::accept(&mut self.inner).await;
        (
            EnvelopeIo {
                inner: io,
                clock: self.clock.clone(),
                pending: None,
            },
            addr,
        )
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A replacement being written in place of what hyper handed over.
struct Pending {
    bytes: Vec<u8>,
    written: usize,
    /// How many bytes hyper gave; reported written once the replacement is out.
    claimed: usize,
}

/// A socket that rewrites hyper's bodiless automatic error answers (see the module).
pub struct EnvelopeIo<T> {
    inner: T,
    clock: Arc<dyn Clock>,
    pending: Option<Pending>,
}

/// The code, message and reason phrase replacing hyper's automatic answer `head`, if it is
/// one: a whole head with status 400, 414 or 431 and `content-length: 0`. Our own answers
/// with these statuses always carry the JSON envelope, so never match.
fn automatic_answer(head: &[u8]) -> Option<(ErrorCode, &'static str, &'static str)> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text.strip_prefix("HTTP/1.1 ")?;
    let end = text.find("\r\n\r\n")?;
    if end + 4 != text.len() {
        return None;
    }
    let empty = text[..end]
        .split("\r\n")
        .skip(1)
        .any(|line| line.eq_ignore_ascii_case("content-length: 0"));
    if !empty {
        return None;
    }
    match rest.get(..4)? {
        "400 " => Some((
            ErrorCode::InvalidRequest,
            "Bad Request",
            "The request is not valid HTTP/1.1: its request line or a header cannot be parsed.",
        )),
        "414 " => Some((
            ErrorCode::UriTooLong,
            "URI Too Long",
            "The request URI is longer than 65,534 bytes.",
        )),
        "431 " => Some((
            ErrorCode::HeadersTooLarge,
            "Request Header Fields Too Large",
            "The request's headers are too large: at most 100 headers in a head of at most 400 KB.",
        )),
        _ => None,
    }
}

/// The whole answer (head and envelope) replacing an automatic one.
fn replacement(code: ErrorCode, reason: &str, message: &str, clock: &dyn Clock) -> Option<Vec<u8>> {
    let request_id = new_id("req", clock.now().micros());
    tracing::info!(request_id = %request_id, status = code.status(), code = %code, "request refused before routing");
    let body = serde_json::to_vec(&ErrorResponse {
        error: ErrorObject {
            code: code.as_str().to_string(),
            error_type: code.error_type().to_string(),
            message: message.to_string(),
            request_id: request_id.clone(),
            param: None,
            details: None,
        },
    })
    .ok()?;
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-request-id: {request_id}\r\nironbridge-version: {CURRENT_VERSION}\r\nconnection: close\r\n\r\n",
        code.status(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

impl<T: AsyncRead + Unpin> AsyncRead for EnvelopeIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for EnvelopeIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none()
            && let Some((code, reason, message)) = automatic_answer(buf)
            && let Some(bytes) = replacement(code, reason, message, this.clock.as_ref())
        {
            this.pending = Some(Pending {
                bytes,
                written: 0,
                claimed: buf.len(),
            });
        }
        let Some(pending) = this.pending.as_mut() else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        // Hyper calls again with the same bytes until they are reported written.
        while pending.written < pending.bytes.len() {
            match Pin::new(&mut this.inner).poll_write(cx, &pending.bytes[pending.written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => pending.written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let claimed = pending.claimed;
        this.pending = None;
        Poll::Ready(Ok(claimed))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // Not vectored: hyper then hands each answer's head over in one flat buffer, which is
    // what `automatic_answer` recognises.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_automatic_answers_are_replaced() {
        let auto = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Mon, 23 Nov 2026 00:00:00 GMT\r\n\r\n";
        assert_eq!(
            automatic_answer(auto).map(|a| a.0),
            Some(ErrorCode::HeadersTooLarge)
        );
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 120\r\n\r\n";
        assert!(automatic_answer(ours).is_none());
        let with_body = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n{}";
        assert!(automatic_answer(with_body).is_none());
        assert!(automatic_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
    }
}

/// The client's address, as the connection's peer (`ConnectInfo<Peer>` in a request's
/// extensions): the per-address limits read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub std::net::SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, EnvelopeListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, EnvelopeListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}
