//! A `MasterService` client for gateways, data nodes and tools.
//!
//! It holds the address of every controller, remembers which one led last,
//! follows a follower's `tessera-leader` redirect, and retries calls that
//! failed because no leader was reachable, with capped exponential backoff,
//! until a deadline. Callers therefore see one answer per call even while the
//! controllers elect a new leader.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::limits::MAX_GRPC_MESSAGE_BYTES;
use crate::pb::master_service_client::MasterServiceClient;
use crate::{LEADER_METADATA_KEY, REQUEST_ID_METADATA_KEY};

/// Stamps every attempt of one logical call with the same request id, so a
/// mutation retried after a leader change is applied once.
#[derive(Clone)]
pub struct RequestId(MetadataValue<tonic::metadata::Ascii>);

impl Interceptor for RequestId {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        request.metadata_mut().insert(REQUEST_ID_METADATA_KEY, self.0.clone());
        Ok(request)
    }
}

/// The client handed to [`ControlClient::call`]'s closure.
pub type MasterClient = MasterServiceClient<InterceptedService<Channel, RequestId>>;

/// How a [`ControlClient`] waits and retries.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Give up on a call after this long without an answer from a leader.
    pub deadline: Duration,
    /// Time limit of a single attempt.
    pub attempt_timeout: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(15),
            attempt_timeout: Duration::from_secs(5),
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
        }
    }
}

#[derive(Clone)]
pub struct ControlClient {
    inner: Arc<Inner>,
}

struct Inner {
    controllers: Vec<String>,
    policy: RetryPolicy,
    leader: Mutex<Option<String>>,
    channels: Mutex<HashMap<String, Channel>>,
    /// Controllers that just failed at the transport level. While a new
    /// leader is elected, followers still name the dead one; trusting them
    /// would only lead back to it.
    unreachable: Mutex<HashMap<String, Instant>>,
}

/// How long a controller that refused a connection is skipped.
const UNREACHABLE_FOR: Duration = Duration::from_secs(2);

impl ControlClient {
    /// `controllers` are `host:port` addresses of the controllers' gRPC servers.
    pub fn new(controllers: Vec<String>, policy: RetryPolicy) -> Self {
        Self {
            inner: Arc::new(Inner {
                controllers,
                policy,
                leader: Mutex::new(None),
                channels: Mutex::new(HashMap::new()),
                unreachable: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn controllers(&self) -> &[String] {
        &self.inner.controllers
    }

    /// The controller that answered last, if any.
    pub fn known_leader(&self) -> Option<String> {
        self.inner.leader.lock().map(|l| l.clone()).unwrap_or(None)
    }

    /// Runs `call` against the leader, following redirects and retrying while
    /// the failure says "no leader here (yet)".
    pub async fn call<T, F, Fut>(&self, mut call: F) -> Result<T, Status>
    where
        F: FnMut(MasterClient) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let policy = &self.inner.policy;
        let deadline = Instant::now() + policy.deadline;
        let mut backoff = policy.initial_backoff;
        let mut rotation = 0usize;
        let request_id = MetadataValue::try_from(uuid::Uuid::now_v7().to_string())
            .map_err(|e| Status::internal(format!("request id: {e}")))?;
        loop {
            let addr = self.target(rotation);
            let client = MasterServiceClient::with_interceptor(self.channel(&addr), RequestId(request_id.clone()))
                .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES);
            let status = match call(client).await {
                Ok(response) => {
                    if let Ok(mut map) = self.inner.unreachable.lock() {
                        map.remove(&addr);
                    }
                    self.set_leader(Some(addr));
                    return Ok(response.into_inner());
                }
                Err(status) => status,
            };
            if is_transport_failure(&status) {
                self.mark_unreachable(&addr);
            }
            let hint = leader_hint(&status).filter(|hint| *hint != addr && !self.is_unreachable(hint));
            if hint.is_none() && !is_retryable(&status) {
                return Err(status);
            }
            if Instant::now() + backoff > deadline {
                return Err(Status::unavailable(format!(
                    "no controller leader answered within {:?}: {}",
                    policy.deadline,
                    status.message()
                )));
            }
            match hint {
                // A redirect is cheap to follow at once; only back off if
                // redirects keep failing (the hint may be stale).
                Some(hint) => {
                    self.set_leader(Some(hint));
                    if rotation > 0 {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(policy.max_backoff);
                    }
                }
                None => {
                    self.set_leader(None);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(policy.max_backoff);
                }
            }
            rotation += 1;
        }
    }

    /// [`call`](Self::call) for the common case of one request message,
    /// cloned for every attempt.
    pub async fn call_with<R, T, F, Fut>(&self, request: R, mut call: F) -> Result<T, Status>
    where
        R: Clone,
        F: FnMut(MasterClient, R) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call(|client| call(client, request.clone())).await
    }

    fn target(&self, rotation: usize) -> String {
        if let Some(leader) = self.known_leader() {
            return leader;
        }
        let n = self.inner.controllers.len().max(1);
        // Prefer controllers that did not just refuse us.
        (0..n)
            .map(|k| &self.inner.controllers[(rotation + k) % n])
            .find(|addr| !self.is_unreachable(addr))
            .or_else(|| self.inner.controllers.get(rotation % n))
            .cloned()
            .unwrap_or_default()
    }

    fn mark_unreachable(&self, addr: &str) {
        if let Ok(mut map) = self.inner.unreachable.lock() {
            map.insert(addr.to_string(), Instant::now());
        }
    }

    fn is_unreachable(&self, addr: &str) -> bool {
        self.inner
            .unreachable
            .lock()
            .map(|map| map.get(addr).is_some_and(|t| t.elapsed() < UNREACHABLE_FOR))
            .unwrap_or(false)
    }

    fn set_leader(&self, leader: Option<String>) {
        if let Ok(mut l) = self.inner.leader.lock() {
            *l = leader;
        }
    }

    fn channel(&self, addr: &str) -> Channel {
        let mut channels = match self.inner.channels.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        channels
            .entry(addr.to_string())
            .or_insert_with(|| lazy_channel(addr, self.inner.policy.attempt_timeout))
            .clone()
    }
}

/// One lazily connected channel per address, shared by every caller: a new
/// channel costs a TCP and a TLS handshake, far more than a request, and
/// HTTP/2 multiplexes concurrent calls over one connection. A channel
/// reconnects by itself after its peer restarts.
#[derive(Clone)]
pub struct ChannelPool {
    timeout: Duration,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl ChannelPool {
    /// `timeout` bounds each call on the pool's channels.
    pub fn new(timeout: Duration) -> Self {
        Self { timeout, channels: Default::default() }
    }

    pub fn channel(&self, addr: &str) -> Channel {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.entry(addr.to_string()).or_insert_with(|| lazy_channel(addr, self.timeout)).clone()
    }
}

/// A lazily connecting channel to `host:port`. Connecting fails fast so a
/// dead peer is skipped quickly; `timeout` bounds each call. With this
/// process's [`crate::tls::install`]ed client TLS, the channel is mutual TLS.
pub fn lazy_channel(addr: &str, timeout: Duration) -> Channel {
    let tls = crate::tls::client_config();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
        .unwrap_or_else(|_| Endpoint::from_static("http://invalid.invalid:1"))
        .connect_timeout(Duration::from_millis(500))
        .timeout(timeout)
        .tcp_nodelay(true)
        .initial_stream_window_size(crate::limits::STREAM_WINDOW_BYTES)
        .initial_connection_window_size(crate::limits::CONNECTION_WINDOW_BYTES)
        .max_frame_size(crate::limits::MAX_FRAME_BYTES)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true);
    if let Some(tls) = tls {
        endpoint = match endpoint.clone().tls_config(tls.clone()) {
            Ok(secured) => secured,
            Err(e) => {
                // Never fall back to plaintext: a channel that cannot be
                // secured points nowhere, and every call on it fails.
                tracing::error!(%addr, error = %e, "cannot configure TLS for this channel");
                Endpoint::from_static("https://invalid.invalid:1")
            }
        };
    }
    endpoint.connect_lazy()
}

fn leader_hint(status: &Status) -> Option<String> {
    status
        .metadata()
        .get(LEADER_METADATA_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A controller's own "not the leader" answer (see [`not_leader_status`]),
/// with or without the leader's address.
pub fn is_not_leader(status: &Status) -> bool {
    status.message().starts_with(NOT_LEADER)
}

/// The controller could not be reached at all (refused, reset, timed out).
fn is_transport_failure(status: &Status) -> bool {
    status.metadata().get(LEADER_METADATA_KEY).is_none()
        && (matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled)
            || (matches!(status.code(), Code::Unavailable | Code::Unknown)
                && !is_not_leader(status)
                && !status.message().starts_with("raft:")))
}

/// Failures that mean "this controller cannot answer now" rather than "the
/// request is wrong": worth trying again elsewhere or later. A connection
/// that breaks while the answer is read (a leader killed after applying
/// the request, before its reply arrived) surfaces as UNKNOWN "h2 protocol
/// error: error reading a body from connection"; retrying is safe because
/// every call carries one request id and the log applies an id once.
fn is_retryable(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled)
        || (status.code() == Code::Unknown
            && (status.message().contains("transport") || status.message().starts_with("h2 protocol error")))
}

const NOT_LEADER: &str = "not the leader";

/// Builds the UNAVAILABLE status a follower answers with.
pub fn not_leader_status(leader_addr: Option<&str>) -> Status {
    let mut status = Status::unavailable(match leader_addr {
        Some(addr) => format!("{NOT_LEADER}; the leader is {addr}"),
        None => format!("{NOT_LEADER} and no leader is known yet"),
    });
    if let Some(addr) = leader_addr {
        if let Ok(value) = addr.parse() {
            status.metadata_mut().insert(LEADER_METADATA_KEY, value);
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_connections_are_retried_and_refusals_are_not() {
        let broken = Status::unknown("h2 protocol error: error reading a body from connection");
        assert!(is_retryable(&broken));
        assert!(is_transport_failure(&broken));
        assert!(is_retryable(&Status::unknown("transport error")));
        assert!(is_retryable(&not_leader_status(None)));
        assert!(!is_retryable(&Status::unknown("something else went wrong")));
        assert!(!is_retryable(&Status::invalid_argument("bad name")));
        assert!(!is_retryable(&Status::not_found("no such file")));
    }
}
