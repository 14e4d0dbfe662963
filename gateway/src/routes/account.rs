//! `/api/auth/*` (sign in and out, who am I) and `/api/tokens` (a user's
//! API tokens).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tessera_proto::pb;
use tessera_proto::secrets::{new_token, verify_password, MAX_PASSWORD_BYTES};
use tonic::Code;
use utoipa::ToSchema;

use crate::auth::{CurrentUser, SESSION_COOKIE};
use crate::error::{ApiError, ErrorBody};
use crate::ops::json::{self, TokenList};
use crate::routes::json_body;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub user: Me,
    /// The session token; the dashboards use the cookie set with it, scripts
    /// may send it as a bearer token until it expires.
    pub token: String,
}

/// The signed-in user.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub username: String,
    /// admin or user.
    pub role: String,
    /// 0: no quota.
    pub quota_bytes: u64,
    pub used_bytes: u64,
}

impl From<&CurrentUser> for Me {
    fn from(u: &CurrentUser) -> Self {
        Me { username: u.username.clone(), role: u.role.clone(), quota_bytes: u.quota_bytes, used_bytes: u.used_bytes }
    }
}

/// Hash checked when the user does not exist, so that a wrong user name
/// takes as long as a wrong password and names cannot be probed by timing.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    tessera_proto::secrets::hash_password("no such user, no such password").unwrap_or_default()
});

fn bad_credentials() -> ApiError {
    ApiError::Unauthorized("wrong user name or password".into())
}

fn session_cookie(app: &AppState, token: &str, max_age_secs: u64) -> Result<HeaderValue, ApiError> {
    let secure = if app.settings.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{secure}"
    ))
    .map_err(|e| ApiError::Internal(format!("building the session cookie: {e}")))
}

/// Sign in: a session cookie for the dashboards and the token in the body.
#[utoipa::path(post, path = "/api/auth/login", tag = "account", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody, description = "wrong user name or password"),
        (status = 429, body = ErrorBody, description = "too many attempts")))]
pub async fn login(
    State(app): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = json_body(body)?;
    app.login_limiter.check(client.ip(), &body.username)?;
    if body.password.len() > MAX_PASSWORD_BYTES || tessera_proto::ids::validate_username(&body.username).is_err() {
        return Err(bad_credentials());
    }
    let request = pb::GetUserCredentialsRequest { username: body.username.clone() };
    let found = app.control.call_with(request, |mut c, r| async move { c.get_user_credentials(r).await }).await;
    let (user, hash) = match found {
        Ok(creds) => (creds.user, creds.password_hash),
        Err(status) if status.code() == Code::NotFound => (None, DUMMY_HASH.clone()),
        Err(status) => return Err(status.into()),
    };
    let password = body.password;
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(format!("checking the password: {e}")))?;
    let user = user.filter(|_| matches).ok_or_else(bad_credentials)?;

    let ttl_ms = app.settings.session_ttl.as_millis() as i64;
    let (secret, token_hash) = new_token();
    let request = pb::IssueTokenRequest {
        username: user.username.clone(),
        token_hash,
        kind: "session".into(),
        label: format!("signed in from {}", client.ip()),
        expires_at_ms: tessera_proto::now_ms() + ttl_ms,
    };
    app.control.call_with(request, |mut c, r| async move { c.issue_token(r).await }).await?;
    let me =
        Me { username: user.username, role: user.role, quota_bytes: user.quota_bytes, used_bytes: user.used_bytes };
    let cookie = session_cookie(&app, &secret, app.settings.session_ttl.as_secs())?;
    let mut response = Json(LoginResponse { user: me, token: secret }).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Sign out: the token of this request is revoked and the cookie cleared.
#[utoipa::path(post, path = "/api/auth/logout", tag = "account",
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(State(app): State<AppState>, user: CurrentUser) -> Result<Response, ApiError> {
    let request = pb::RevokeTokenRequest {
        username: user.username.clone(),
        token_id: String::new(),
        token_hash: user.token_hash,
    };
    let revoked = app.control.call_with(request, |mut c, r| async move { c.revoke_token(r).await }).await;
    match revoked {
        Ok(_) => {}
        Err(status) if status.code() == Code::NotFound => {}
        Err(status) => return Err(status.into()),
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie(&app, "", 0)?);
    Ok(response)
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/auth/me", tag = "account",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn me(user: CurrentUser) -> Json<Me> {
    Json(Me::from(&user))
}

/// The user's live tokens (sessions and API tokens), newest first.
#[utoipa::path(get, path = "/api/tokens", tag = "account",
    responses((status = 200, body = TokenList), (status = 401, body = ErrorBody)))]
pub async fn list_tokens(State(app): State<AppState>, user: CurrentUser) -> Result<Json<TokenList>, ApiError> {
    let request = pb::ListTokensRequest { username: user.username };
    let reply = app.control.call_with(request, |mut c, r| async move { c.list_tokens(r).await }).await?;
    Ok(Json(TokenList { tokens: reply.tokens.iter().map(json::token).collect() }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewTokenRequest {
    /// What the token is for (shown in listings).
    #[serde(default)]
    pub label: String,
    /// Days until it expires; absent or 0: never.
    #[serde(default)]
    pub expires_in_days: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewTokenResponse {
    pub id: String,
    pub label: String,
    /// The secret, shown only in this answer.
    pub token: String,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
}

/// Creates an API token for scripts (`Authorization: Bearer <token>`).
#[utoipa::path(post, path = "/api/tokens", tag = "account", request_body = NewTokenRequest,
    responses((status = 201, body = NewTokenResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create_token(
    State(app): State<AppState>,
    user: CurrentUser,
    body: Result<Json<NewTokenRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<NewTokenResponse>), ApiError> {
    let Json(body) = json_body(body)?;
    let label = if body.label.trim().is_empty() { "api token".to_string() } else { body.label.trim().to_string() };
    let expires_at_ms = match body.expires_in_days {
        0 => 0,
        days if days > 3650 => return Err(ApiError::BadRequest("expires_in_days is at most 3650".into())),
        days => tessera_proto::now_ms() + i64::from(days) * 86_400_000,
    };
    let (secret, token_hash) = new_token();
    let request =
        pb::IssueTokenRequest { username: user.username, token_hash, kind: "api".into(), label, expires_at_ms };
    let token = app.control.call_with(request, |mut c, r| async move { c.issue_token(r).await }).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewTokenResponse {
            id: token.id,
            label: token.label,
            token: secret,
            created_at: json::time(token.created_at_ms),
            expires_at: json::time(token.expires_at_ms),
        }),
    ))
}

/// Revokes one of the user's tokens; it stops working at once.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "account", params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(app): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if id.is_empty() || id.len() > 64 {
        return Err(ApiError::NotFound(format!("no such token: {}", id.chars().take(64).collect::<String>())));
    }
    let request = pb::RevokeTokenRequest { username: user.username, token_id: id, token_hash: String::new() };
    app.control.call_with(request, |mut c, r| async move { c.revoke_token(r).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}
