//! The router: API routes first, then the dashboards' static files.
//!
//! Open without signing in: `/healthz`, `/readyz`, `/api/auth/login`,
//! `/api/openapi.json` and the dashboards' files. Every other handler takes
//! a `CurrentUser`, an `AdminUser` or `Credentials` (see [`crate::auth`]).

pub mod account;
pub mod admin;
pub mod files;
pub mod health;
pub mod openapi;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use tower_http::trace::TraceLayer;

use crate::dashboard;
use crate::error::ApiError;
use crate::state::AppState;

/// Largest JSON body of the account and admin endpoints.
const MAX_JSON_BODY_BYTES: usize = 64 * 1024;

async fn api_not_found() -> ApiError {
    ApiError::NotFound("no such API endpoint".into())
}

/// A JSON body, or a 400 that says what is wrong with it.
pub fn json_body<T>(body: Result<Json<T>, axum::extract::rejection::JsonRejection>) -> Result<Json<T>, ApiError> {
    body.map_err(|e| match e {
        axum::extract::rejection::JsonRejection::BytesRejection(_) => {
            ApiError::TooLarge(format!("the JSON body is larger than {MAX_JSON_BODY_BYTES} bytes"))
        }
        other => ApiError::BadRequest(other.body_text()),
    })
}

/// Every API route, as `METHOD path`. Kept beside [`router`] and checked
/// by tests against both the router (each answers) and the OpenAPI
/// document (each is described, nothing else is).
#[cfg_attr(not(test), allow(dead_code))]
pub const ROUTES: &[&str] = &[
    "POST /api/files",
    "GET /api/files",
    "GET /api/files/{id}",
    "DELETE /api/files/{id}",
    "GET /api/files/{id}/content",
    "GET /api/usage",
    "POST /api/auth/login",
    "POST /api/auth/logout",
    "GET /api/auth/me",
    "GET /api/tokens",
    "POST /api/tokens",
    "DELETE /api/tokens/{id}",
    "GET /healthz",
    "GET /readyz",
    "GET /admin/summary",
    "GET /admin/nodes",
    "POST /admin/nodes",
    "DELETE /admin/nodes/{id}",
    "POST /admin/nodes/{id}/fail",
    "POST /admin/nodes/{id}/recover",
    "GET /admin/rebalances",
    "POST /admin/rebalances",
    "POST /admin/controllers",
    "DELETE /admin/controllers/{id}",
    "GET /admin/users",
    "POST /admin/users",
    "DELETE /admin/users/{username}",
];

pub fn router(app: AppState) -> Router {
    let static_dir = app.settings.static_dir.clone();
    let json_limit = DefaultBodyLimit::max(MAX_JSON_BODY_BYTES);
    Router::new()
        // Uploads are streamed and limited by --max-upload-bytes, not buffered.
        .route("/api/files", get(files::list).post(files::create).layer(DefaultBodyLimit::disable()))
        .route("/api/files/{id}", get(files::metadata).delete(files::delete))
        .route("/api/files/{id}/content", get(files::content))
        .route("/api/usage", get(files::usage))
        .route("/api/auth/login", post(account::login).layer(json_limit))
        .route("/api/auth/logout", post(account::logout))
        .route("/api/auth/me", get(account::me))
        .route("/api/tokens", get(account::list_tokens).post(account::create_token).layer(json_limit))
        .route("/api/tokens/{id}", delete(account::revoke_token))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/{*rest}", axum::routing::any(api_not_found))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/admin/summary", get(admin::summary))
        .route("/admin/nodes", get(admin::nodes).post(admin::add_node))
        .route("/admin/nodes/{id}", delete(admin::decommission))
        .route("/admin/nodes/{id}/fail", post(admin::fail))
        .route("/admin/nodes/{id}/recover", post(admin::recover))
        .route("/admin/rebalances", get(admin::rebalances).post(admin::start_rebalance))
        .route("/admin/controllers", post(admin::add_controller).layer(json_limit))
        .route("/admin/controllers/{id}", delete(admin::remove_controller))
        .route("/admin/users", get(admin::users).post(admin::create_user).layer(json_limit))
        .route("/admin/users/{username}", delete(admin::delete_user))
        .merge(dashboard::routes(&static_dir))
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::{Request, StatusCode};
    use tessera_proto::control_client::{ControlClient, RetryPolicy};
    use tower::ServiceExt;

    use super::*;
    use crate::state::{DatanodePool, Settings};

    fn app() -> AppState {
        let policy = RetryPolicy {
            deadline: Duration::from_millis(200),
            attempt_timeout: Duration::from_millis(100),
            ..RetryPolicy::default()
        };
        AppState::new(
            // Nothing listens there: any call that reaches a controller fails fast.
            ControlClient::new(vec!["127.0.0.1:1".into()], policy),
            DatanodePool::default(),
            Settings::for_tests(),
        )
    }

    async fn status(method: &str, path: &str, bearer: Option<&str>) -> StatusCode {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let mut request = request.body(Body::empty()).expect("request");
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))));
        router(app()).oneshot(request).await.expect("infallible").status()
    }

    #[tokio::test]
    async fn every_listed_route_answers_and_wants_credentials() {
        for route in ROUTES {
            let (method, path) = route.split_once(' ').expect("METHOD path");
            let path = path.replace("{id}", "x").replace("{username}", "x");
            let got = status(method, &path, None).await;
            let expected = match path.as_str() {
                "/healthz" => StatusCode::OK,
                // No controller answers in this test.
                "/readyz" => StatusCode::SERVICE_UNAVAILABLE,
                // An empty body is not a login.
                "/api/auth/login" => StatusCode::BAD_REQUEST,
                _ => StatusCode::UNAUTHORIZED,
            };
            assert_eq!(got, expected, "{route}");
        }
    }

    #[tokio::test]
    async fn malformed_tokens_are_refused_without_asking_a_controller() {
        for token in ["", "x", "tsr_../../etc/passwd", &format!("tsr_{}", "Z".repeat(64))] {
            assert_eq!(status("GET", "/api/files", Some(token)).await, StatusCode::UNAUTHORIZED, "{token:?}");
        }
    }

    #[tokio::test]
    async fn unknown_api_paths_are_json_404s() {
        assert_eq!(status("GET", "/api/nope", None).await, StatusCode::NOT_FOUND);
        assert_eq!(status("PUT", "/api/files", None).await, StatusCode::METHOD_NOT_ALLOWED);
    }
}
