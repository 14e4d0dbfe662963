//! Accepting connections for the gRPC servers.
//!
//! tonic ignores its `tcp_nodelay` setting when it is handed the listener
//! (`serve_with_incoming`, which we use to bind before serving), so sockets
//! kept Nagle's algorithm: a small reply waited for the ACK of the previous
//! segment, which the peer delays by up to 40 ms. Every accepted socket
//! here gets `TCP_NODELAY`.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::net::{TcpListener, TcpStream};
use tokio_stream::Stream;

/// The connections of `listener`, each with `TCP_NODELAY` set.
pub struct NoDelayIncoming(TcpListener);

impl NoDelayIncoming {
    pub fn new(listener: TcpListener) -> Self {
        Self(listener)
    }
}

impl Stream for NoDelayIncoming {
    type Item = std::io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.0.poll_accept(cx) {
            Poll::Ready(Ok((stream, _))) => {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "could not set TCP_NODELAY");
                }
                Poll::Ready(Some(Ok(stream)))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    }
}
