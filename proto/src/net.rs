//! Accepting connections for the gRPC servers.
//!
//! tonic ignores its `tcp_nodelay` setting when it is handed the listener
//! (`serve_with_incoming`, which we use to bind before serving), so sockets
//! kept Nagle's algorithm: a small reply waited for the ACK of the previous
//! segment, which the peer delays by up to 40 ms. Every accepted socket
//! here gets `TCP_NODELAY`. [`grpc_server`] is the server every service
//! starts from, with the flow-control windows of [`crate::limits`].

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

/// A tonic server with our HTTP/2 windows.
pub fn grpc_server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .initial_stream_window_size(crate::limits::STREAM_WINDOW_BYTES)
        .initial_connection_window_size(crate::limits::CONNECTION_WINDOW_BYTES)
        .max_frame_size(crate::limits::MAX_FRAME_BYTES)
}
