//! How the gateway treats its clients' connections: an idle timeout, and
//! a lingering close.
//!
//! **Idle timeout.** hyper has no timeouts of its own: a client that sends
//! half a request, stops in the middle of an upload's body, or stops
//! reading a download kept its connection, and what its transfer holds of
//! the gateway's memory budget (`ops/budget.rs`), forever. A connection on
//! which a read or a write has waited for the client for the idle timeout,
//! with nothing moving in either direction meanwhile, now fails with
//! `TimedOut` and hyper drops it (nginx's `client_body_timeout`,
//! `send_timeout` and `keepalive_timeout`, in one). Waiting on the gateway
//! itself (a body it is not reading yet because of back pressure) is not a
//! wait on the client: hyper does not read then.
//!
//! **Lingering close.** The gateway often answers an upload before it has
//! read the body: a missing token (401), a quota that cannot take the
//! announced size (413), too few healthy data nodes (503). hyper then
//! closes the connection with the rest of the body unread, and the kernel
//! answers the client's next bytes with a reset, which can throw away the
//! answer before the client reads it. Clients that send the whole body
//! before they read (Python's `http.client` and `requests`, many HTTP
//! libraries, hyper's client under load) saw "broken pipe" or "connection
//! closed before message completed" instead of the JSON error. Like nginx's
//! `lingering_close`: once hyper is done with a connection, its socket
//! stays open a while longer (our side already shut down, so the client
//! has the whole answer and an end of stream), and whatever the client
//! still sends is read and thrown away until it closes, stays quiet for
//! [`LINGER_IDLE`], or [`LINGER_FOR`] has passed. At most
//! [`MAX_LINGERING`] connections linger at once; past that a connection is
//! closed at once. Memory: one [`DISCARD_BUFFER`] per lingering connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

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

/// A listener whose connections time out when idle and linger when
/// closed (see the module docs).
pub struct ClientListener<L> {
    inner: L,
    idle_timeout: Duration,
    lingering: Arc<Semaphore>,
}

impl<L> ClientListener<L> {
    pub fn new(inner: L, idle_timeout: Duration) -> Self {
        ClientListener { inner, idle_timeout, lingering: Arc::new(Semaphore::new(MAX_LINGERING)) }
    }
}

impl<L> Listener for ClientListener<L>
where
    L: Listener<Io = TcpStream>,
{
    type Io = ClientConnection;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (tcp, addr) = self.inner.accept().await;
        let connection = ClientConnection {
            tcp: Some(tcp),
            idle_timeout: self.idle_timeout,
            last_progress: Instant::now(),
            idle_timer: None,
            lingering: self.lingering.clone(),
        };
        (connection, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection: reads and writes go to the socket, under the
/// idle timeout; dropping it hands the socket to a lingering task.
pub struct ClientConnection {
    /// Always `Some` until dropped.
    tcp: Option<TcpStream>,
    idle_timeout: Duration,
    /// When a read or a write last moved bytes (or the connection opened).
    last_progress: Instant,
    /// Wakes a waiting read or write when the idle timeout may be up;
    /// made on the first wait, moved forward (not re-made) after progress.
    idle_timer: Option<Pin<Box<Sleep>>>,
    lingering: Arc<Semaphore>,
}

impl ClientConnection {
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

    /// Called when a read or write has to wait on the client: pending
    /// until the idle timeout is up, then the error that ends the
    /// connection.
    fn wait_or_time_out<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let deadline = self.last_progress + self.idle_timeout;
        let timer = self.idle_timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client sent and read nothing for {:?}", self.idle_timeout),
        )))
    }

    fn progressed(&mut self) {
        self.last_progress = Instant::now();
    }

    /// A write that waits on the client counts toward the idle timeout;
    /// one that moved bytes is progress.
    fn after_write(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Pending => self.wait_or_time_out(cx),
            Poll::Ready(result) => {
                if result.as_ref().is_ok_and(|n| *n > 0) {
                    self.progressed();
                }
                Poll::Ready(result)
            }
        }
    }
}

impl AsyncRead for ClientConnection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match self.socket() {
            Ok(tcp) => match tcp.poll_read(cx, buf) {
                Poll::Pending => self.wait_or_time_out(cx),
                Poll::Ready(result) => {
                    if buf.filled().len() > before {
                        self.progressed();
                    }
                    Poll::Ready(result)
                }
            },
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for ClientConnection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = match self.socket() {
            Ok(tcp) => tcp.poll_write(cx, buf),
            Err(e) => return Poll::Ready(Err(e)),
        };
        self.after_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = match self.socket() {
            Ok(tcp) => tcp.poll_write_vectored(cx, bufs),
            Err(e) => return Poll::Ready(Err(e)),
        };
        self.after_write(cx, polled)
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

impl Drop for ClientConnection {
    fn drop(&mut self) {
        let Some(tcp) = self.tcp.take() else { return };
        // Past the limit, or outside a runtime (shutting down): close now.
        let Ok(permit) = self.lingering.clone().try_acquire_owned() else { return };
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

    /// A gateway-like server on a free port: `/refuse` answers 413 without
    /// reading the body, `/read` reads the whole body and answers its size.
    async fn serve(listener: Option<Duration>) -> io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = tcp.local_addr()?;
        let app = Router::new()
            .route("/refuse", post(|| async { (StatusCode::PAYLOAD_TOO_LARGE, "too large") }))
            .route("/read", post(|body: axum::body::Bytes| async move { format!("read {}", body.len()) }));
        let server = match listener {
            Some(idle_timeout) => tokio::spawn(async move {
                let _ = axum::serve(ClientListener::new(tcp, idle_timeout), app).await;
            }),
            None => tokio::spawn(async move {
                let _ = axum::serve(tcp, app).await;
            }),
        };
        Ok((addr, server))
    }

    /// Posts `body_len` bytes the way simple clients do (the whole body,
    /// then read), `pause` between pieces, and returns what the client
    /// read, or the error that stopped it.
    async fn post_then_read(
        addr: std::net::SocketAddr,
        path: &'static str,
        body_len: usize,
        pause: Duration,
    ) -> io::Result<String> {
        tokio::task::spawn_blocking(move || -> io::Result<String> {
            let mut tcp = std::net::TcpStream::connect(addr)?;
            tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
            write!(tcp, "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {body_len}\r\n\r\n")?;
            let piece = vec![7u8; (body_len / 8).clamp(1, 256 * 1024)];
            let mut left = body_len;
            while left > 0 {
                std::thread::sleep(pause);
                let n = left.min(piece.len());
                tcp.write_all(&piece[..n])?;
                left -= n;
            }
            let mut answer = String::new();
            tcp.read_to_string(&mut answer)?;
            Ok(answer)
        })
        .await
        .map_err(io::Error::other)?
    }

    #[tokio::test]
    async fn a_client_that_sends_the_whole_body_first_reads_an_early_answer() {
        let (addr, server) = serve(Some(Duration::from_secs(60))).await.expect("serve");
        let answer =
            post_then_read(addr, "/refuse", 64 << 20, Duration::ZERO).await.expect("the client reads the answer");
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.ends_with("too large"), "{answer}");
        server.abort();
    }

    /// Without lingering the same client loses the answer: the test above
    /// would catch a listener that stopped lingering.
    #[tokio::test]
    async fn without_lingering_the_early_answer_is_lost() {
        let (addr, server) = serve(None).await.expect("serve");
        let outcome = post_then_read(addr, "/refuse", 64 << 20, Duration::ZERO).await;
        assert!(outcome.is_err(), "expected a reset or broken pipe, got {outcome:?}");
        server.abort();
    }

    #[tokio::test]
    async fn a_client_that_stops_sending_is_disconnected_after_the_idle_timeout() {
        let (addr, server) = serve(Some(Duration::from_millis(300))).await.expect("serve");
        let outcome = tokio::task::spawn_blocking(move || -> io::Result<(usize, Duration)> {
            let mut tcp = std::net::TcpStream::connect(addr)?;
            tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
            // Half a request head, then nothing.
            tcp.write_all(b"POST /read HTTP/1.1\r\nHost: te")?;
            let started = std::time::Instant::now();
            let mut answer = Vec::new();
            let read = tcp.read_to_end(&mut answer).map(|_| answer.len()).or_else(|e| match e.kind() {
                io::ErrorKind::ConnectionReset => Ok(0),
                _ => Err(e),
            })?;
            Ok((read, started.elapsed()))
        })
        .await
        .expect("client");
        let (read, waited) = outcome.expect("the gateway closes the connection (not the 20 s read timeout)");
        assert_eq!(read, 0, "nothing is answered to half a request");
        assert!(waited >= Duration::from_millis(250), "closed after {waited:?}, before the idle timeout");
        server.abort();
    }

    #[tokio::test]
    async fn a_slow_client_that_keeps_sending_is_not_idle() {
        // Each pause is shorter than the idle timeout, all of them together much longer.
        let (addr, server) = serve(Some(Duration::from_millis(400))).await.expect("serve");
        let answer = post_then_read(addr, "/read", 8 * 1024, Duration::from_millis(150)).await.expect("answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("read 8192"), "{answer}");
        server.abort();
    }
}
