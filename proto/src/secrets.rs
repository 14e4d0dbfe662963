//! Passwords and tokens: how secrets are made, hashed and checked, shared by
//! the gateway (logins) and `tessera-admin` (the first admin).
//!
//! Passwords are hashed with argon2id (the crate's defaults: 19 MiB, two
//! passes) into a PHC string; only that string leaves the process. Tokens
//! are 32 random bytes; the controllers know them only by SHA-256, which is
//! enough for a secret with 256 bits of entropy and cheap on every request.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Every token starts with this, so a leaked one is easy to recognise (and
/// to grep for in logs or repositories).
pub const TOKEN_PREFIX: &str = "tsr_";

/// Shortest and longest accepted password, in bytes.
pub const MIN_PASSWORD_BYTES: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("a password must be {MIN_PASSWORD_BYTES} to {MAX_PASSWORD_BYTES} bytes long")]
    BadPasswordLength,
    #[error("hashing the password: {0}")]
    Hash(String),
}

/// The argon2id PHC string of `password`. Slow by design: call it off the
/// async reactor (`spawn_blocking`).
pub fn hash_password(password: &str) -> Result<String, SecretError> {
    if password.len() < MIN_PASSWORD_BYTES || password.len() > MAX_PASSWORD_BYTES {
        return Err(SecretError::BadPasswordLength);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| SecretError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `hash`; a malformed hash never
/// matches. Slow by design, like [`hash_password`].
pub fn verify_password(password: &str, hash: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A fresh token: the secret to hand out once, and its hash to store.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let secret = format!("{TOKEN_PREFIX}{}", hex_lower(&bytes));
    let hash = token_hash(&secret);
    (secret, hash)
}

/// SHA-256 of a token, lowercase hex: how controllers know it.
pub fn token_hash(secret: &str) -> String {
    hex_lower(&Sha256::digest(secret.as_bytes()))
}

/// Whether `s` looks like a token (cheap check before any lookup).
pub fn looks_like_token(s: &str) -> bool {
    s.len() == TOKEN_PREFIX.len() + 64
        && s.starts_with(TOKEN_PREFIX)
        && s[TOKEN_PREFIX.len()..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsE", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_eq!(hash_password("short"), Err(SecretError::BadPasswordLength));
        assert_ne!(hash_password("correct horse").expect("hash"), hash, "salted");
    }

    #[test]
    fn tokens_are_prefixed_random_and_hashed() {
        let (secret, hash) = new_token();
        assert!(looks_like_token(&secret), "{secret}");
        assert_eq!(hash, token_hash(&secret));
        assert_eq!(hash.len(), 64);
        assert_ne!(new_token().0, secret);
        for bad in ["", "tsr_", "Bearer x", &format!("tsr_{}", "G".repeat(64)), &secret[1..]] {
            assert!(!looks_like_token(bad), "{bad:?}");
        }
    }
}
