//! Who is calling: every `/api/*` and `/admin/*` handler (but login and the
//! OpenAPI document) takes a [`CurrentUser`], an [`AdminUser`] or (the file
//! routes) [`Credentials`], so a route cannot forget to check.
//!
//! A request is authenticated by a bearer token (`Authorization: Bearer
//! tsr_...`, for scripts) or the `tessera_session` cookie (HTTP-only,
//! SameSite=Strict, for the dashboards). The gateway hashes the token and
//! asks the controller leader whose it is on every request (in a call of
//! its own, or inside the file operation's first call), so a revoked token
//! stops working at once, on every gateway.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tessera_proto::pb;
use tessera_proto::secrets::{looks_like_token, token_hash};
use tonic::Code;

use crate::error::ApiError;
use crate::state::AppState;

/// Name of the dashboards' session cookie.
pub const SESSION_COOKIE: &str = "tessera_session";

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub username: String,
    pub role: String,
    /// 0: no quota.
    pub quota_bytes: u64,
    pub used_bytes: u64,
    /// SHA-256 of the token this request came with.
    pub token_hash: String,
}

impl CurrentUser {
    /// The user the controller found for the token with hash `token_hash`.
    pub fn from_info(user: pb::UserInfo, token_hash: String) -> Self {
        CurrentUser {
            username: user.username,
            role: user.role,
            quota_bytes: user.quota_bytes,
            used_bytes: user.used_bytes,
            token_hash,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == "admin"
    }

    /// Bytes the user may still store; `None` without a quota.
    pub fn remaining_quota(&self) -> Option<u64> {
        (self.quota_bytes > 0).then(|| self.quota_bytes.saturating_sub(self.used_bytes))
    }
}

/// A caller with the `admin` role; anyone else gets 403.
#[derive(Debug, Clone)]
pub struct AdminUser(pub CurrentUser);

/// The token of a request: the bearer token first, then the session cookie.
pub fn request_token(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    bearer.or_else(|| session_cookie(headers))
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
}

fn unauthorized() -> ApiError {
    ApiError::Unauthorized("the token is unknown, revoked or expired; sign in again".into())
}

fn missing_token() -> ApiError {
    ApiError::Unauthorized("sign in, or send an API token as `Authorization: Bearer <token>`".into())
}

/// A controller error of a call that carried the caller's token: an
/// unknown token reads the same as from [`authenticate`].
pub fn token_call_error(status: tonic::Status) -> ApiError {
    match status.code() {
        Code::Unauthenticated => unauthorized(),
        _ => ApiError::from(status),
    }
}

/// Looks the token up at the controller leader.
pub async fn authenticate(app: &AppState, token: &str) -> Result<CurrentUser, ApiError> {
    if !looks_like_token(token) {
        return Err(unauthorized());
    }
    authenticate_hash(app, token_hash(token)).await
}

async fn authenticate_hash(app: &AppState, hash: String) -> Result<CurrentUser, ApiError> {
    let request = pb::AuthenticateRequest { token_hash: hash.clone() };
    let user = app
        .control
        .call_with(request, |mut c, r| async move { c.authenticate(r).await })
        .await
        .map_err(token_call_error)?;
    Ok(CurrentUser::from_info(user, hash))
}

/// A request's token, well-formed but not yet looked up. The file routes
/// take this instead of a [`CurrentUser`]: their first controller call
/// carries the token hash and the controller authenticates it there, which
/// saves a round trip per request (most requests are small uploads and
/// downloads). Revocation is as immediate as with [`CurrentUser`].
#[derive(Debug, Clone)]
pub struct Credentials {
    /// SHA-256 of the token.
    pub token_hash: String,
}

impl Credentials {
    /// `error` for a caller whose token is valid; 401 for anyone else, so
    /// a stranger learns nothing about what else is wrong with a request.
    /// For errors found before a controller call has checked the token
    /// (a few more on other paths do no harm: errors are rare).
    pub async fn vouch_for(&self, app: &AppState, error: ApiError) -> ApiError {
        if matches!(error, ApiError::Unauthorized(_)) {
            return error;
        }
        match authenticate_hash(app, self.token_hash.clone()).await {
            Err(unauthorized @ ApiError::Unauthorized(_)) => unauthorized,
            _ => error,
        }
    }
}

impl FromRequestParts<AppState> for Credentials {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _app: &AppState) -> Result<Self, Self::Rejection> {
        let token = request_token(&parts.headers).ok_or_else(missing_token)?;
        if !looks_like_token(token) {
            return Err(unauthorized());
        }
        Ok(Credentials { token_hash: token_hash(token) })
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<CurrentUser>() {
            return Ok(user.clone());
        }
        let token = request_token(&parts.headers).ok_or_else(missing_token)?;
        let user = authenticate(app, token).await?;
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, app).await?;
        if !user.is_admin() {
            return Err(ApiError::Forbidden(format!("{} is not an admin; /admin needs the admin role", user.username)));
        }
        Ok(AdminUser(user))
    }
}

/// Login attempts allowed per minute: per client address and user name, and
/// per client address overall. Guessing passwords gets slow; a user who
/// mistypes twice is not locked out.
#[derive(Clone)]
pub struct LoginLimiter {
    per_user: Arc<DefaultKeyedRateLimiter<(IpAddr, String)>>,
    per_client: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl LoginLimiter {
    pub fn new(per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let client = per_minute.saturating_mul(NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN));
        Self {
            per_user: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
            per_client: Arc::new(RateLimiter::keyed(Quota::per_minute(client))),
        }
    }

    pub fn check(&self, client: IpAddr, username: &str) -> Result<(), ApiError> {
        // Forget idle keys now and then so the maps stay small.
        if self.per_user.len() > 10_000 {
            self.per_user.retain_recent();
            self.per_client.retain_recent();
        }
        let key: String = username.chars().take(64).collect();
        if self.per_client.check_key(&client).is_err() || self.per_user.check_key(&(client, key)).is_err() {
            return Err(ApiError::TooManyRequests("too many sign-in attempts; wait a minute and try again".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn bearer_wins_over_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=b; tessera_session=tsr_cookie; c=d"));
        assert_eq!(request_token(&headers), Some("tsr_cookie"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer tsr_bearer"));
        assert_eq!(request_token(&headers), Some("tsr_bearer"));
        assert_eq!(request_token(&HeaderMap::new()), None);
    }

    #[test]
    fn login_attempts_are_limited_per_client_and_user() {
        let limiter = LoginLimiter::new(3);
        let ip: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..3 {
            assert!(limiter.check(ip, "alice").is_ok());
        }
        assert!(matches!(limiter.check(ip, "alice"), Err(ApiError::TooManyRequests(_))));
        assert!(limiter.check(ip, "bob").is_ok(), "another user is not locked out");
    }
}
