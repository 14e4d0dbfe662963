//! The dashboards' static files: the user app at `/`, the admin app at
//! `/admin` (built by Vite into `<static_dir>` and `<static_dir>/admin`).
//! Unknown paths get the user app's `index.html` (client-side routing).

use std::path::Path;

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use tower_http::services::{ServeDir, ServeFile};

use crate::state::AppState;

const NOT_BUILT: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Tessera</title></head>\
<body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>Tessera</h1>\
<p>The dashboards are not built. <code>make run</code> builds them; the HTTP API is at \
<a href=\"/api/files\">/api/files</a>.</p></body></html>";

pub fn routes(static_dir: &Path) -> Router<AppState> {
    let user_index = static_dir.join("index.html");
    let admin_index = static_dir.join("admin").join("index.html");
    if !user_index.exists() {
        return Router::new().route("/admin", get(not_built)).route("/admin/", get(not_built)).fallback(not_built);
    }
    Router::new()
        .route_service("/admin", ServeFile::new(&admin_index))
        .route_service("/admin/", ServeFile::new(&admin_index))
        .route_service("/admin/assets/{*path}", ServeDir::new(static_dir))
        .fallback_service(ServeDir::new(static_dir).fallback(ServeFile::new(&user_index)))
}

async fn not_built() -> Html<&'static str> {
    Html(NOT_BUILT)
}
