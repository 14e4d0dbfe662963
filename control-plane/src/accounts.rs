//! Accounts on the leader: create and delete users, issue, list and revoke
//! tokens, authenticate a token. The gateway verifies passwords (argon2 is
//! slow on purpose, and the leader's time is for the log); the controllers
//! only store hashes.

use uuid::Uuid;

use crate::controller::Controller;
use crate::error::{ControllerError, MetaError};
use crate::events::Event;
use crate::meta::accounts::{OwnerUsage, Role, TokenKind, TokenRecord, UserRecord};
use crate::meta::MetaState;

pub struct NewToken {
    pub username: String,
    pub token_hash: String,
    pub kind: TokenKind,
    pub label: String,
    pub expires_at_ms: i64,
}

impl Controller {
    pub async fn create_user(
        &self,
        username: String,
        password_hash: String,
        role: Role,
        quota_bytes: u64,
        request_id: Option<Uuid>,
    ) -> Result<(UserRecord, OwnerUsage), ControllerError> {
        self.ensure_leader()?;
        tessera_proto::ids::validate_username(&username).map_err(MetaError::from)?;
        let event = Event::UserCreated {
            username: username.clone(),
            password_hash,
            role,
            quota_bytes,
            at_ms: tessera_proto::now_ms(),
        };
        self.propose_request(event, request_id).await?;
        self.user(&username)
    }

    /// Deletes the user with their tokens and files; returns how many files went.
    pub async fn delete_user(&self, username: &str, request_id: Option<Uuid>) -> Result<u64, ControllerError> {
        self.ensure_leader()?;
        let files = {
            let state = self.state.read();
            if !state.meta.users.contains_key(username) {
                return Err(MetaError::UserNotFound(username.to_string()).into());
            }
            state.meta.files.values().filter(|f| f.owner == username).count() as u64
        };
        self.propose_request(Event::UserDeleted { username: username.to_string() }, request_id).await?;
        Ok(files)
    }

    pub fn user(&self, username: &str) -> Result<(UserRecord, OwnerUsage), ControllerError> {
        let state = self.state.read();
        let user = state.meta.users.get(username).cloned().ok_or_else(|| MetaError::UserNotFound(username.into()))?;
        Ok((user, state.meta.owner_usage(username)))
    }

    pub async fn users(&self) -> Result<Vec<(UserRecord, OwnerUsage)>, ControllerError> {
        self.read_current().await?;
        let state = self.state.read();
        Ok(state.meta.users.values().map(|u| (u.clone(), state.meta.owner_usage(&u.username))).collect())
    }

    /// The user and password hash, for a login. Linearizable: a user just
    /// deleted cannot log in on a deposed leader.
    pub async fn credentials(&self, username: &str) -> Result<(UserRecord, OwnerUsage), ControllerError> {
        self.read_current().await?;
        self.user(username)
    }

    pub async fn issue_token(&self, token: NewToken, request_id: Option<Uuid>) -> Result<TokenRecord, ControllerError> {
        self.ensure_leader()?;
        let token_id = request_id.unwrap_or_else(Uuid::now_v7).to_string();
        let hash = token.token_hash.to_ascii_lowercase();
        let event = Event::TokenIssued {
            token_id,
            token_hash: hash.clone(),
            username: token.username,
            kind: token.kind,
            label: token.label,
            at_ms: tessera_proto::now_ms(),
            expires_at_ms: token.expires_at_ms,
        };
        self.propose_request(event, request_id).await?;
        self.state.read().meta.tokens.get(&hash).cloned().ok_or_else(|| MetaError::TokenNotFound.into())
    }

    /// Revokes one of `username`'s tokens, named by id or by hash.
    pub async fn revoke_token(
        &self,
        username: &str,
        token_id: &str,
        token_hash: &str,
        request_id: Option<Uuid>,
    ) -> Result<(), ControllerError> {
        self.ensure_leader()?;
        let hash = {
            let state = self.state.read();
            state
                .meta
                .tokens
                .values()
                .find(|t| {
                    t.username == username
                        && ((!token_id.is_empty() && t.id == token_id)
                            || (!token_hash.is_empty() && t.hash.eq_ignore_ascii_case(token_hash)))
                })
                .map(|t| t.hash.clone())
        };
        match hash {
            Some(token_hash) => self.propose_request(Event::TokenRevoked { token_hash }, request_id).await,
            // A retried revoke whose first attempt went through.
            None if request_id.is_some_and(|id| self.state.read().requests.get(&id).is_some()) => Ok(()),
            None => Err(MetaError::TokenNotFound.into()),
        }
    }

    pub async fn tokens(&self, username: &str) -> Result<Vec<TokenRecord>, ControllerError> {
        self.read_current().await?;
        let now = tessera_proto::now_ms();
        let state = self.state.read();
        let mut tokens: Vec<TokenRecord> =
            state.meta.tokens.values().filter(|t| t.username == username && !t.expired(now)).cloned().collect();
        tokens.sort_by_key(|t| std::cmp::Reverse(t.created_at_ms));
        Ok(tokens)
    }

    /// The user a token belongs to. Answered by the leader from its applied
    /// state without a read-index round: the leader applies a revocation
    /// before it acknowledges it, so a revoked token fails at once, and one
    /// request per HTTP call must stay cheap.
    pub fn authenticate(&self, token_hash: &str) -> Result<(UserRecord, OwnerUsage), ControllerError> {
        self.ensure_leader()?;
        authenticated(&self.state.read().meta, token_hash)
    }
}

/// The user of a token in `meta` (unknown, revoked and expired tokens
/// fail), with what they store.
pub fn authenticated(meta: &MetaState, token_hash: &str) -> Result<(UserRecord, OwnerUsage), ControllerError> {
    let (_, user) = meta
        .authenticate(&token_hash.to_ascii_lowercase(), tessera_proto::now_ms())
        .ok_or(MetaError::Unauthenticated)?;
    Ok((user.clone(), meta.owner_usage(&user.username)))
}
