//! HTTP errors: every failure becomes `{"error": {"code", "message"}}` with
//! the right status, here and nowhere else. gRPC statuses from the
//! controllers and data nodes are mapped once, in `From<tonic::Status>`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tonic::Code;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: bad_request, unauthorized, forbidden,
    /// not_found, conflict, request_timeout, too_large, range_not_satisfiable,
    /// too_many_requests, insufficient_nodes, unavailable, internal.
    pub code: String,
    /// For people.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("range not satisfiable: the file is {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("{0}")]
    InsufficientNodes(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::RangeNotSatisfiable { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable"),
            ApiError::InsufficientNodes(_) => (StatusCode::SERVICE_UNAVAILABLE, "insufficient_nodes"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::warn!(%status, error = %self, "request failed");
        }
        let body = Json(ErrorBody { error: ErrorDetail { code: code.to_string(), message: self.to_string() } });
        let mut response = (status, body).into_response();
        match self {
            ApiError::RangeNotSatisfiable { size } => {
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
            }
            ApiError::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"tessera\""));
            }
            ApiError::TooManyRequests(_) => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            _ => {}
        }
        response
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let message = status.message().to_string();
        match status.code() {
            Code::NotFound => ApiError::NotFound(message),
            Code::Unauthenticated => ApiError::Unauthorized(message),
            Code::PermissionDenied => ApiError::Forbidden(message),
            Code::InvalidArgument => ApiError::BadRequest(message),
            Code::FailedPrecondition => ApiError::InsufficientNodes(message),
            Code::Aborted | Code::AlreadyExists => ApiError::Conflict(message),
            Code::ResourceExhausted => ApiError::TooLarge(message),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => ApiError::Unavailable(message),
            _ => ApiError::Internal(format!("{}: {message}", status.code())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_to_http() {
        let cases = [
            (Code::NotFound, StatusCode::NOT_FOUND),
            (Code::InvalidArgument, StatusCode::BAD_REQUEST),
            (Code::FailedPrecondition, StatusCode::SERVICE_UNAVAILABLE),
            (Code::Aborted, StatusCode::CONFLICT),
            (Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
            (Code::Internal, StatusCode::INTERNAL_SERVER_ERROR),
            (Code::Unauthenticated, StatusCode::UNAUTHORIZED),
            (Code::PermissionDenied, StatusCode::FORBIDDEN),
            (Code::ResourceExhausted, StatusCode::PAYLOAD_TOO_LARGE),
        ];
        for (code, status) in cases {
            assert_eq!(ApiError::from(tonic::Status::new(code, "x")).status_and_code().0, status, "{code:?}");
        }
    }

    #[test]
    fn unsatisfiable_range_names_the_size() {
        let response = ApiError::RangeNotSatisfiable { size: 10 }.into_response();
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(response.headers()[header::CONTENT_RANGE], "bytes */10");
    }
}
