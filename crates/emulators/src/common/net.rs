//! Listener and connection wrapper that make "the host is down" real: refused connects, or resets;
//! and a handle to reset one connection (an answer lost on its way back).

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

use super::faults::OfflineMode;

/// Wraps the emulator's listener; while offline it closes the socket (refuse) or resets every connection.
pub struct FaultyListener {
    inner: Option<TcpListener>,
    addr: SocketAddr,
    offline: watch::Receiver<OfflineMode>,
}

impl FaultyListener {
    pub fn new(inner: TcpListener, offline: watch::Receiver<OfflineMode>) -> io::Result<Self> {
        let addr = inner.local_addr()?;
        Ok(Self {
            inner: Some(inner),
            addr,
            offline,
        })
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
                        let io = FaultyStream {
                            inner: stream,
                            offline: self.offline.clone(),
                            reset: Arc::default(),
                        };
                        return (io, addr);
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                },
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
    inner: TcpStream,
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

impl FaultyStream {
    fn check(&self) -> io::Result<()> {
        if self.reset.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "answer lost (lose_answer fault)",
            ))
        } else if *self.offline.borrow() == OfflineMode::Online {
            Ok(())
        } else {
            let _ = self.inner.set_zero_linger();
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
        Pin::new(&mut me.inner).poll_read(cx, buf)
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
        Pin::new(&mut me.inner).poll_write(cx, buf)
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
        Pin::new(&mut me.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
