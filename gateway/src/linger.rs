//! Lingering close of HTTP connections.
//!
//! The gateway often answers an upload before it has read the body: a
//! missing token (401), a quota that cannot take the announced size (413),
//! too few healthy data nodes (503). hyper then closes the connection with
//! the rest of the body unread, and the kernel answers the client's next
//! bytes with a reset, which can throw away the answer before the client
//! reads it. Clients that send the whole body before they read (Python's
//! `http.client` and `requests`, many HTTP libraries, hyper's client under
//! load) saw "broken pipe" or "connection closed before message completed"
//! instead of the JSON error.
//!
//! Like nginx's `lingering_close`: once hyper is done with a connection,
//! its socket stays open a while longer (our side already shut down, so the
//! client has the whole answer and an end of stream), and whatever the
//! client still sends is read and thrown away until it closes, stays quiet
//! for [`LINGER_IDLE`], or [`LINGER_FOR`] has passed. At most
//! [`MAX_LINGERING`] connections linger at once; past that a connection is
//! closed at once, as before. Memory: one [`DISCARD_BUFFER`] per lingering
//! connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Longest a closed connection keeps reading what its client still sends
/// (nginx's `lingering_time`).
pub const LINGER_FOR: Duration = Duration::from_secs(30);
/// A lingering connection whose client sends nothing for this long is
/// closed (nginx's `lingering_timeout`).
pub const LINGER_IDLE: Duration = Duration::from_secs(5);
/// Connections lingering at once, at most.
pub const MAX_LINGERING: usize = 256;
/// Bytes read at a time from a lingering connection (and thrown away).
const DISCARD_BUFFER: usize = 16 * 1024;

/// A listener whose connections linger when closed (see the module docs).
pub struct Lingering<L> {
    inner: L,
    permits: Arc<Semaphore>,
}

impl<L> Lingering<L> {
    pub fn new(inner: L) -> Self {
        Lingering { inner, permits: Arc::new(Semaphore::new(MAX_LINGERING)) }
    }
}

impl<L> Listener for Lingering<L>
where
    L: Listener<Io = TcpStream>,
{
    type Io = LingeringStream;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (tcp, addr) = self.inner.accept().await;
        (LingeringStream { tcp: Some(tcp), permits: self.permits.clone() }, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection: reads and writes go to the socket; dropping it
/// hands the socket to a lingering task.
pub struct LingeringStream {
    /// Always `Some` until dropped.
    tcp: Option<TcpStream>,
    permits: Arc<Semaphore>,
}

impl LingeringStream {
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        match &self.tcp {
            Some(tcp) => tcp.set_nodelay(nodelay),
            None => Ok(()),
        }
    }

    fn socket(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match self.tcp.as_mut() {
            Some(tcp) => Ok(Pin::new(tcp)),
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }
}

impl AsyncRead for LingeringStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.socket() {
            Ok(tcp) => tcp.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for LingeringStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.socket() {
            Ok(tcp) => tcp.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.socket() {
            Ok(tcp) => tcp.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.as_ref().is_some_and(|tcp| tcp.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.socket() {
            Ok(tcp) => tcp.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.socket() {
            Ok(tcp) => tcp.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for LingeringStream {
    fn drop(&mut self) {
        let Some(tcp) = self.tcp.take() else { return };
        // Past the limit, or outside a runtime (shutting down): close now.
        let Ok(permit) = self.permits.clone().try_acquire_owned() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            linger(tcp).await;
            drop(permit);
        });
    }
}

/// Shuts down our side (hyper usually has) and reads until the client
/// closes, goes quiet, errs, or the time is up.
async fn linger(mut tcp: TcpStream) {
    let _ = tcp.shutdown().await;
    let mut discard = vec![0u8; DISCARD_BUFFER];
    let _ = tokio::time::timeout(LINGER_FOR, async {
        loop {
            match tokio::time::timeout(LINGER_IDLE, tcp.read(&mut discard)).await {
                Ok(Ok(n)) if n > 0 => continue,
                _ => return,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use axum::http::StatusCode;
    use axum::routing::post;
    use axum::Router;

    use super::*;

    /// Posts `body_len` bytes the way simple clients do (the whole body,
    /// then read) to a route that refuses without reading the body, and
    /// returns what the client read, or the error that stopped it.
    async fn post_then_read(lingering: bool, body_len: usize) -> io::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new().route("/upload", post(|| async { (StatusCode::PAYLOAD_TOO_LARGE, "too large") }));
        let server = if lingering {
            tokio::spawn(async move { axum::serve(Lingering::new(listener), app).await })
        } else {
            tokio::spawn(async move { axum::serve(listener, app).await })
        };
        let client = tokio::task::spawn_blocking(move || -> io::Result<String> {
            let mut tcp = std::net::TcpStream::connect(addr)?;
            write!(tcp, "POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: {body_len}\r\n\r\n")?;
            let piece = vec![7u8; 256 * 1024];
            let mut left = body_len;
            while left > 0 {
                let n = left.min(piece.len());
                tcp.write_all(&piece[..n])?;
                left -= n;
            }
            let mut answer = String::new();
            tcp.read_to_string(&mut answer)?;
            Ok(answer)
        })
        .await
        .map_err(io::Error::other)?;
        server.abort();
        client
    }

    #[tokio::test]
    async fn a_client_that_sends_the_whole_body_first_reads_an_early_answer() {
        let answer = post_then_read(true, 64 << 20).await.expect("the client reads the answer");
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.ends_with("too large"), "{answer}");
    }

    /// Without lingering the same client loses the answer: the test above
    /// would catch a listener that stopped lingering.
    #[tokio::test]
    async fn without_lingering_the_early_answer_is_lost() {
        let outcome = post_then_read(false, 64 << 20).await;
        assert!(outcome.is_err(), "expected a reset or broken pipe, got {outcome:?}");
    }
}
