//! Listener and connection wrapper that make "the host is down" real: refused connects, or resets;
//! and a handle to reset one connection (an answer lost on its way back). Over plain TCP, or
//! over TLS when the emulator serves `https`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::faults::OfflineMode;
use super::tls::LocalTls;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Wraps the emulator's listener; while offline it closes the socket (refuse) or resets every connection.
pub struct FaultyListener {
    inner: Option<TcpListener>,
    addr: SocketAddr,
    offline: watch::Receiver<OfflineMode>,
    tls: Option<LocalTls>,
    /// TLS handshakes under way: each runs on its own, so a client that never finishes one
    /// does not hold up the others.
    handshakes: JoinSet<Option<(FaultyStream, SocketAddr)>>,
}

impl FaultyListener {
    pub fn new(inner: TcpListener, offline: watch::Receiver<OfflineMode>) -> io::Result<Self> {
        let addr = inner.local_addr()?;
        Ok(Self {
            inner: Some(inner),
            addr,
            offline,
            tls: None,
            handshakes: JoinSet::new(),
        })
    }

    /// Serves TLS with this identity.
    pub fn with_tls(mut self, tls: Option<LocalTls>) -> Self {
        self.tls = tls;
        self
    }
}

impl axum::serve::Listener for FaultyListener {
    type Io = FaultyStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let mode = *self.offline.borrow_and_update();
            if mode == OfflineMode::Refuse {
                // Closing the socket makes the kernel refuse connects on this port.
                self.inner = None;
                let _ = self.offline.changed().await;
                continue;
            }
            if self.inner.is_none() {
                match TcpListener::bind(self.addr).await {
                    Ok(l) => self.inner = Some(l),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                }
            }
            let Some(listener) = self.inner.as_ref() else {
                continue;
            };
            tokio::select! {
                r = listener.accept() => match r {
                    Ok((stream, addr)) => {
                        let _ = stream.set_nodelay(true);
                        if *self.offline.borrow() == OfflineMode::Reset {
                            let _ = stream.set_zero_linger();
                            drop(stream);
                            continue;
                        }
                        let offline = self.offline.clone();
                        let Some(tls) = &self.tls else {
                            let io = FaultyStream {
                                inner: Inner::Plain(stream),
                                offline,
                                reset: Arc::default(),
                            };
                            return (io, addr);
                        };
                        let acceptor = tls.acceptor().clone();
                        self.handshakes.spawn(async move {
                            let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                                .await
                                .ok()?
                                .ok()?;
                            let io = FaultyStream {
                                inner: Inner::Tls(Box::new(tls)),
                                offline,
                                reset: Arc::default(),
                            };
                            Some((io, addr))
                        });
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(accepted)) = done {
                        return accepted;
                    }
                }
                _ = self.offline.changed() => {}
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// A connection that fails with a reset as soon as it is used while the emulator is offline,
/// or once its [`Connection`] handle asked for it.
pub struct FaultyStream {
    inner: Inner,
    offline: watch::Receiver<OfflineMode>,
    reset: Arc<AtomicBool>,
}

/// A request's connection, as connect info: [`Connection::reset`] makes its next read or
/// write fail and closes it with a TCP reset, so the answer being written never leaves.
#[derive(Debug, Clone)]
pub struct Connection {
    reset: Arc<AtomicBool>,
}

impl Connection {
    /// Resets the connection the next time it is used.
    pub fn reset(&self) {
        self.reset.store(true, Ordering::SeqCst);
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, FaultyListener>>
    for Connection
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, FaultyListener>) -> Self {
        Connection {
            reset: stream.io().reset.clone(),
        }
    }
}

/// The connection's bytes: as they are, or through TLS.
enum Inner {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Inner {
    fn tcp(&self) -> &TcpStream {
        match self {
            Inner::Plain(s) => s,
            Inner::Tls(s) => s.get_ref().0,
        }
    }
}

impl FaultyStream {
    fn check(&self) -> io::Result<()> {
        if self.reset.load(Ordering::SeqCst) {
            let _ = self.inner.tcp().set_zero_linger();
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "answer lost (lose_answer fault)",
            ))
        } else if *self.offline.borrow() == OfflineMode::Online {
            Ok(())
        } else {
            let _ = self.inner.tcp().set_zero_linger();
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "emulator offline",
            ))
        }
    }
}

impl AsyncRead for FaultyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if let Err(e) = me.check() {
            return Poll::Ready(Err(e));
        }
        match &mut me.inner {
            Inner::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for FaultyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if let Err(e) = me.check() {
            return Poll::Ready(Err(e));
        }
        match &mut me.inner {
            Inner::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    // Vectored writes, as the TCP stream has them: without, the HTTP server copies every
    // answer whole into one write buffer before sending it (tens of MB for a page of
    // orders, counted against the memory of whatever process runs the emulator).
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if let Err(e) = me.check() {
            return Poll::Ready(Err(e));
        }
        match &mut me.inner {
            Inner::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Plain(s) => s.is_write_vectored(),
            Inner::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_flush(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
