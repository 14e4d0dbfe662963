//! Accounts in the metadata: users, their tokens and what they store.
//!
//! Secrets never enter the log: a user's password is an argon2 PHC string
//! made by the gateway or the CLI, a token is known here only by its
//! SHA-256. Applying these events is as pure as the rest of [`MetaState`].

use serde::{Deserialize, Serialize};

use super::{FileState, MetaState};
use crate::error::MetaError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    pub fn parse(s: &str) -> Result<Self, MetaError> {
        match s {
            "admin" => Ok(Role::Admin),
            "user" | "" => Ok(Role::User),
            other => Err(MetaError::Invalid(format!("role must be \"admin\" or \"user\", not {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenKind {
    /// A dashboard login, held in an HTTP-only cookie.
    Session,
    /// A bearer token for scripts.
    Api,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Session => "session",
            TokenKind::Api => "api",
        }
    }

    pub fn parse(s: &str) -> Result<Self, MetaError> {
        match s {
            "session" => Ok(TokenKind::Session),
            "api" => Ok(TokenKind::Api),
            other => Err(MetaError::Invalid(format!("token kind must be \"session\" or \"api\", not {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    /// 0: no quota.
    pub quota_bytes: u64,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub hash: String,
    pub username: String,
    pub kind: TokenKind,
    pub label: String,
    pub created_at_ms: i64,
    /// 0: never expires.
    pub expires_at_ms: i64,
}

impl TokenRecord {
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms != 0 && now_ms >= self.expires_at_ms
    }
}

/// Committed files and their bytes, per owner; kept as events apply so that
/// authenticating a request does not scan the namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerUsage {
    pub files: u64,
    pub bytes: u64,
}

/// Longest token label, in bytes.
pub const MAX_LABEL_BYTES: usize = 200;
/// Most tokens one user may hold; the oldest sessions give way first.
pub const MAX_TOKENS_PER_USER: usize = 100;

impl MetaState {
    pub(super) fn create_user(&mut self, user: UserRecord) -> Result<(), MetaError> {
        tessera_proto::ids::validate_username(&user.username)?;
        if self.users.contains_key(&user.username) {
            return Err(MetaError::UserExists(user.username));
        }
        if !user.password_hash.starts_with("$argon2") {
            return Err(MetaError::Invalid("the password hash must be an argon2 PHC string".into()));
        }
        self.users.insert(user.username.clone(), user);
        Ok(())
    }

    /// Removes the user, their tokens and their files (whose replicas
    /// become garbage).
    pub(super) fn delete_user(&mut self, username: &str) -> Result<(), MetaError> {
        if self.users.remove(username).is_none() {
            return Err(MetaError::UserNotFound(username.to_string()));
        }
        self.tokens.retain(|_, t| t.username != username);
        let owned: Vec<_> = self.files.values().filter(|f| f.owner == username).map(|f| f.id).collect();
        for file_id in owned {
            self.remove_file(&file_id)?;
        }
        self.owner_usage.remove(username);
        Ok(())
    }

    pub(super) fn issue_token(&mut self, token: TokenRecord, now_ms: i64) -> Result<(), MetaError> {
        if !self.users.contains_key(&token.username) {
            return Err(MetaError::UserNotFound(token.username));
        }
        if token.hash.len() != 64 || !token.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(MetaError::Invalid("a token hash is 64 hex digits (SHA-256)".into()));
        }
        if token.label.len() > MAX_LABEL_BYTES || token.label.chars().any(char::is_control) {
            return Err(MetaError::Invalid(format!(
                "a token label is at most {MAX_LABEL_BYTES} bytes, without control characters"
            )));
        }
        if self.tokens.contains_key(&token.hash) {
            return Err(MetaError::Invalid("this token is already issued".into()));
        }
        // Expired tokens are dropped here, deterministically (the event
        // carries the time), so the table does not grow forever.
        self.tokens.retain(|_, t| !t.expired(now_ms));
        let mut mine: Vec<(i64, TokenKind, String)> = self
            .tokens
            .values()
            .filter(|t| t.username == token.username)
            .map(|t| (t.created_at_ms, t.kind, t.hash.clone()))
            .collect();
        if mine.len() >= MAX_TOKENS_PER_USER {
            // Sessions first, oldest first.
            mine.sort_by_key(|(at, kind, _)| (*kind == TokenKind::Api, *at));
            let excess = mine.len() + 1 - MAX_TOKENS_PER_USER;
            for (_, _, hash) in mine.into_iter().take(excess) {
                self.tokens.remove(&hash);
            }
        }
        self.tokens.insert(token.hash.clone(), token);
        Ok(())
    }

    pub(super) fn revoke_token(&mut self, hash: &str) -> Result<(), MetaError> {
        self.tokens.remove(hash).map(|_| ()).ok_or(MetaError::TokenNotFound)
    }

    /// The live token with this hash and its user.
    pub fn authenticate(&self, token_hash: &str, now_ms: i64) -> Option<(&TokenRecord, &UserRecord)> {
        let token = self.tokens.get(token_hash).filter(|t| !t.expired(now_ms))?;
        let user = self.users.get(&token.username)?;
        Some((token, user))
    }

    pub fn owner_usage(&self, username: &str) -> OwnerUsage {
        self.owner_usage.get(username).copied().unwrap_or_default()
    }

    /// Whether `owner` may commit `more` bytes on top of what they store.
    pub fn check_quota(&self, owner: &str, more: u64) -> Result<(), MetaError> {
        let Some(user) = self.users.get(owner) else { return Ok(()) };
        if user.quota_bytes == 0 {
            return Ok(());
        }
        let used = self.owner_usage(owner).bytes;
        if used.saturating_add(more) > user.quota_bytes {
            return Err(MetaError::QuotaExceeded { user: owner.to_string(), used, quota: user.quota_bytes, more });
        }
        Ok(())
    }

    /// Keeps [`OwnerUsage`] in step when a file is committed or removed.
    pub(super) fn count_usage(&mut self, owner: &str, state: FileState, size: u64, added: bool) {
        if owner.is_empty() || state != FileState::Committed {
            return;
        }
        let usage = self.owner_usage.entry(owner.to_string()).or_default();
        if added {
            usage.files += 1;
            usage.bytes += size;
        } else {
            usage.files = usage.files.saturating_sub(1);
            usage.bytes = usage.bytes.saturating_sub(size);
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::events::Event;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

    fn user(state: &mut MetaState, name: &str, quota: u64) {
        state
            .apply(&Event::UserCreated {
                username: name.into(),
                password_hash: HASH.into(),
                role: Role::User,
                quota_bytes: quota,
                at_ms: 1,
            })
            .unwrap();
    }

    fn token(state: &mut MetaState, name: &str, hash: &str, expires_at_ms: i64, at_ms: i64) -> Result<(), MetaError> {
        state.apply(&Event::TokenIssued {
            token_id: Uuid::now_v7().to_string(),
            token_hash: hash.into(),
            username: name.into(),
            kind: TokenKind::Api,
            label: "ci".into(),
            at_ms,
            expires_at_ms,
        })
    }

    fn file(state: &mut MetaState, owner: &str, size: u64) -> Uuid {
        let file_id = Uuid::now_v7();
        state
            .apply(&Event::FileCreated {
                file_id,
                name: "f".into(),
                chunk_size: 1 << 20,
                replication: 1,
                at_ms: 1,
                owner: owner.into(),
            })
            .unwrap();
        if size > 0 {
            state
                .apply(&Event::ChunkStored { file_id, index: 0, size, crc32c: 1, replicas: vec!["a".into()] })
                .unwrap();
        }
        state
            .apply(&Event::FileCommitted {
                file_id,
                size,
                total_chunks: u32::from(size > 0),
                checksum: "c".into(),
                at_ms: 2,
            })
            .unwrap();
        file_id
    }

    #[test]
    fn users_are_unique_and_validated() {
        let mut s = MetaState::default();
        user(&mut s, "alice", 0);
        let again = Event::UserCreated {
            username: "alice".into(),
            password_hash: HASH.into(),
            role: Role::Admin,
            quota_bytes: 0,
            at_ms: 2,
        };
        assert!(matches!(s.apply(&again), Err(MetaError::UserExists(_))));
        let bad = Event::UserCreated {
            username: "../root".into(),
            password_hash: HASH.into(),
            role: Role::User,
            quota_bytes: 0,
            at_ms: 2,
        };
        assert!(matches!(s.apply(&bad), Err(MetaError::Invalid(_))));
        let plaintext = Event::UserCreated {
            username: "bob".into(),
            password_hash: "hunter2".into(),
            role: Role::User,
            quota_bytes: 0,
            at_ms: 2,
        };
        assert!(matches!(s.apply(&plaintext), Err(MetaError::Invalid(_))));
    }

    #[test]
    fn tokens_authenticate_until_revoked_or_expired() {
        let mut s = MetaState::default();
        user(&mut s, "alice", 0);
        let h1 = "a".repeat(64);
        let h2 = "b".repeat(64);
        token(&mut s, "alice", &h1, 0, 10).unwrap();
        token(&mut s, "alice", &h2, 100, 10).unwrap();
        assert_eq!(s.authenticate(&h1, 50).map(|(_, u)| u.username.as_str()), Some("alice"));
        assert!(s.authenticate(&h2, 99).is_some());
        assert!(s.authenticate(&h2, 100).is_none(), "expired");
        s.apply(&Event::TokenRevoked { token_hash: h1.clone() }).unwrap();
        assert!(s.authenticate(&h1, 50).is_none(), "revoked");
        assert!(matches!(s.apply(&Event::TokenRevoked { token_hash: h1 }), Err(MetaError::TokenNotFound)));
        assert!(token(&mut s, "nobody", &"c".repeat(64), 0, 10).is_err());
        assert!(token(&mut s, "alice", "not-hex", 0, 10).is_err());
        // Issuing a token later drops the expired one.
        token(&mut s, "alice", &"d".repeat(64), 0, 200).unwrap();
        assert!(!s.tokens.contains_key(&h2));
    }

    #[test]
    fn quota_counts_committed_bytes_per_owner() {
        let mut s = MetaState::default();
        user(&mut s, "alice", 100);
        user(&mut s, "bob", 0);
        let f = file(&mut s, "alice", 60);
        file(&mut s, "bob", 500);
        assert_eq!(s.owner_usage("alice"), OwnerUsage { files: 1, bytes: 60 });
        assert!(s.check_quota("alice", 40).is_ok());
        assert!(matches!(s.check_quota("alice", 41), Err(MetaError::QuotaExceeded { used: 60, .. })));
        assert!(s.check_quota("bob", u64::MAX / 2).is_ok(), "no quota");
        s.apply(&Event::FileDeleted { file_id: f }).unwrap();
        assert_eq!(s.owner_usage("alice"), OwnerUsage { files: 0, bytes: 0 });
    }

    #[test]
    fn deleting_a_user_deletes_their_files_and_tokens() {
        let mut s = MetaState::default();
        user(&mut s, "alice", 0);
        user(&mut s, "bob", 0);
        let a = file(&mut s, "alice", 10);
        let b = file(&mut s, "bob", 10);
        token(&mut s, "alice", &"a".repeat(64), 0, 1).unwrap();
        s.apply(&Event::UserDeleted { username: "alice".into() }).unwrap();
        assert!(!s.files.contains_key(&a));
        assert!(s.files.contains_key(&b));
        assert!(s.tokens.is_empty());
        assert!(s.garbage["a"].contains(&(a, 0)));
        assert!(matches!(s.apply(&Event::UserDeleted { username: "alice".into() }), Err(MetaError::UserNotFound(_))));
    }

    fn written(state: &mut MetaState, file_id: Uuid, owner: &str, size: u64) -> Result<(), MetaError> {
        state.apply(&Event::FileWritten {
            file_id,
            name: "small.bin".into(),
            chunk_size: 100,
            replication: 2,
            owner: owner.into(),
            size,
            crc32c: 9,
            replicas: vec!["n1".into(), "n2".into()],
            checksum: "c".into(),
            at_ms: 5,
        })
    }

    #[test]
    fn a_small_file_is_written_in_one_event() {
        let mut s = MetaState::default();
        for node in ["n1", "n2"] {
            s.apply(&Event::NodeRegistered {
                node_id: node.into(),
                host: "h".into(),
                grpc_port: 1,
                capacity_bytes: 1000,
                mac: String::new(),
                at_ms: 1,
            })
            .unwrap();
        }
        user(&mut s, "ann", 150);
        let small = Uuid::now_v7();
        written(&mut s, small, "ann", 60).unwrap();
        let file = &s.files[&small];
        assert_eq!((file.state, file.size, file.total_chunks), (FileState::Committed, 60, 1));
        assert_eq!(file.chunks[&0].replicas, vec!["n1".to_string(), "n2".to_string()]);
        assert_eq!(s.owner_usage("ann").bytes, 60);
        // A retry is a success; another write under the same id is not.
        assert_eq!(written(&mut s, small, "ann", 60), Ok(()));
        assert!(matches!(written(&mut s, small, "ann", 61), Err(MetaError::FileExists(_))));
        // An empty file has no chunk.
        let empty = Uuid::now_v7();
        written(&mut s, empty, "ann", 0).unwrap();
        assert_eq!(s.files[&empty].total_chunks, 0);
        assert!(s.files[&empty].chunks.is_empty());
        // Over quota: refused, nothing of it stays, its stored chunk is garbage.
        let over = Uuid::now_v7();
        assert!(matches!(written(&mut s, over, "ann", 91), Err(MetaError::QuotaExceeded { .. })));
        assert!(!s.files.contains_key(&over));
        assert!(s.is_garbage("n1", &(over, 0)) && s.is_garbage("n2", &(over, 0)));
        assert_eq!(s.owner_usage("ann").bytes, 60);
        // More than one chunk's worth is refused the same way.
        let big = Uuid::now_v7();
        assert!(matches!(written(&mut s, big, "", 101), Err(MetaError::Invalid(_))));
        assert!(!s.files.contains_key(&big) && s.is_garbage("n1", &(big, 0)));
    }
}
