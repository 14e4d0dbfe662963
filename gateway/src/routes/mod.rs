//! The router: API routes first, then the dashboards' static files.

pub mod admin;
pub mod files;
pub mod health;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::dashboard;
use crate::error::ApiError;
use crate::state::AppState;

async fn api_not_found() -> ApiError {
    ApiError::NotFound("no such API endpoint".into())
}

pub fn router(app: AppState) -> Router {
    let static_dir = app.settings.static_dir.clone();
    Router::new()
        // Uploads are streamed and limited by --max-upload-bytes, not buffered.
        .route("/api/files", get(files::list).post(files::create).layer(DefaultBodyLimit::disable()))
        .route("/api/files/{id}", get(files::metadata).delete(files::delete))
        .route("/api/files/{id}/content", get(files::content))
        .route("/api/usage", get(files::usage))
        .route("/api/{*rest}", axum::routing::any(api_not_found))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/admin/summary", get(admin::summary))
        .route("/admin/nodes", get(admin::nodes).post(admin::add_node))
        .route("/admin/nodes/{id}", delete(admin::decommission))
        .route("/admin/nodes/{id}/fail", post(admin::fail))
        .route("/admin/nodes/{id}/recover", post(admin::recover))
        .route("/admin/rebalances", get(admin::rebalances).post(admin::start_rebalance))
        .route("/admin/controllers", post(admin::add_controller))
        .route("/admin/controllers/{id}", delete(admin::remove_controller))
        .merge(dashboard::routes(&static_dir))
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}
