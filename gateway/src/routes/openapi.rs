//! The OpenAPI description of the HTTP API, generated from the handlers'
//! annotations and the response types they return (so it cannot drift),
//! served at `/api/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{account, admin, files, health};

#[derive(OpenApi)]
#[openapi(
    info(title = "Tessera HTTP API", description = "Files, accounts and cluster administration of a Tessera gateway. Errors are `{\"error\": {\"code\", \"message\"}}`."),
    paths(
        files::create, files::list, files::metadata, files::content, files::delete, files::usage,
        account::login, account::logout, account::me, account::list_tokens, account::create_token, account::revoke_token,
        admin::summary, admin::nodes, admin::add_node, admin::decommission, admin::fail, admin::recover,
        admin::rebalances, admin::start_rebalance, admin::add_controller, admin::remove_controller,
        admin::users, admin::create_user, admin::delete_user,
        health::healthz, health::readyz,
    ),
    modifiers(&Security),
    security(("bearer" = []), ("session" = [])),
    tags(
        (name = "files", description = "The signed-in user's files"),
        (name = "account", description = "Signing in and API tokens"),
        (name = "admin", description = "Cluster administration (admin role)"),
        (name = "health", description = "Probes, open without signing in"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("tsr_...").build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::auth::SESSION_COOKIE))),
        );
    }
}

/// `GET /api/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(spec())
}

pub fn spec() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    // Open endpoints need no credentials.
    for (path, item) in doc.paths.paths.iter_mut() {
        if matches!(path.as_str(), "/healthz" | "/readyz" | "/api/auth/login") {
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                op.security = Some(Vec::new());
            }
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route of the router is described, and nothing else is: the
    /// list below is the router's, checked against the document.
    #[test]
    fn the_document_lists_every_route() {
        let doc = spec();
        let mut described: Vec<String> = Vec::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [("GET", &item.get), ("POST", &item.post), ("DELETE", &item.delete), ("PUT", &item.put)]
            {
                if op.is_some() {
                    described.push(format!("{method} {path}"));
                }
            }
        }
        described.sort();
        let mut routed: Vec<String> = super::super::ROUTES.iter().map(|s| s.to_string()).collect();
        routed.sort();
        assert_eq!(described, routed);
    }

    #[test]
    fn login_and_probes_need_no_credentials() {
        let doc = spec();
        let login = doc.paths.paths.get("/api/auth/login").and_then(|p| p.post.as_ref()).expect("login");
        assert_eq!(login.security.as_ref().map(Vec::len), Some(0));
        let files = doc.paths.paths.get("/api/files").and_then(|p| p.get.as_ref()).expect("files");
        assert!(files.security.is_none(), "inherits the global bearer/session requirement");
    }

    /// The schema's pattern for an upload's name agrees with the check the
    /// gateway applies, so API fuzzers and generated clients send names the
    /// gateway takes.
    #[test]
    fn the_documented_name_pattern_matches_the_names_accepted() {
        let doc = serde_json::to_value(spec()).expect("json");
        let params = doc["paths"]["/api/files"]["post"]["parameters"].as_array().expect("parameters");
        let name = params.iter().find(|p| p["name"] == "name").expect("name parameter");
        let pattern = name["schema"]["pattern"].as_str().expect("pattern");
        let re = regex::Regex::new(pattern).expect("a pattern without look-around");
        let long = "x".repeat(255);
        for candidate in [
            "a",
            "report.pdf",
            ".hidden",
            "a.",
            ".a.",
            "a.b.c",
            "ünïcödé ✓",
            long.as_str(),
            "",
            ".",
            "..",
            "a..b",
            "../x",
            "a/b",
            "a\\b",
            "a\0b",
            "tab\there",
            "del\u{7f}",
            "c1\u{85}",
        ] {
            let fits = re.is_match(candidate) && candidate.chars().count() <= 255;
            let accepted = tessera_proto::ids::validate_file_name(candidate).is_ok();
            assert_eq!(fits, accepted, "{candidate:?}");
        }
    }
}
