//! Optional bearer-token authentication.
//!
//! With API keys configured, every route but `/health` and `/ready` (probes that carry no
//! data) needs `Authorization: Bearer <key>`; without one, or with a wrong one, the answer
//! is 401 `UNAUTHORIZED` with `WWW-Authenticate: Bearer`. A presented token is compared with
//! every key in constant time: both are hashed with SHA-256 first (so lengths never differ)
//! and the digests compared byte by byte without an early exit, over all keys, so timing
//! tells an attacker neither a key's prefix nor which key matched. Keys are never logged
//! and never appear in an answer.

use std::path::Path;

use sha2::{Digest, Sha256};

/// The accepted keys, kept only as SHA-256 digests.
#[derive(Clone)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

/// Why API keys cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("no API key found (one per line; `#` starts a comment)")]
    NoKey,
    #[error("API keys file {}: no API key found (one per line; `#` starts a comment)", path.display())]
    NoKeyInFile { path: std::path::PathBuf },
    #[error("API keys file {}: {why}", path.display())]
    Unreadable { path: std::path::PathBuf, why: String },
}

impl ApiKeys {
    /// Keys from text: one per line (or separated by commas), blank lines and lines starting
    /// with `#` ignored. No key at all is an error, so a mistyped file cannot turn
    /// authentication off.
    pub fn parse(text: &str) -> Result<Self, KeysError> {
        let digests: Vec<[u8; 32]> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.starts_with('#'))
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .map(digest)
            .collect();
        if digests.is_empty() {
            return Err(KeysError::NoKey);
        }
        Ok(ApiKeys { digests })
    }

    /// Keys from a file, with errors naming it.
    pub fn from_file(path: &Path) -> Result<Self, KeysError> {
        let text = std::fs::read_to_string(path).map_err(|e| KeysError::Unreadable {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        Self::parse(&text).map_err(|_| KeysError::NoKeyInFile {
            path: path.to_path_buf(),
        })
    }

    /// Whether an `Authorization` header value carries one of the keys.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let Some(token) = authorization.and_then(bearer_token) else {
            return false;
        };
        let presented = digest(token);
        // Every key is compared in full, whatever the outcome.
        self.digests
            .iter()
            .fold(false, |found, key| found | constant_time_eq(key, &presented))
    }
}

/// The token of `Bearer <token>` (the scheme is case-insensitive).
fn bearer_token(header: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_keys_are_admitted() {
        let keys = ApiKeys::parse("# team keys\nalpha-key\n\n  beta-key  \ngamma,delta\n").unwrap();
        for ok in ["Bearer alpha-key", "bearer beta-key", "BEARER  gamma", "Bearer delta "] {
            assert!(keys.admits(Some(ok.as_bytes())), "{ok}");
        }
        for bad in [
            "",
            "alpha-key",
            "Basic alpha-key",
            "Bearer alpha",
            "Bearer alpha-key2",
            "Bearer # team keys",
            "Bearer ",
            "Bearer",
        ] {
            assert!(!keys.admits(Some(bad.as_bytes())), "{bad:?}");
        }
        assert!(!keys.admits(None));
        assert!(!keys.admits(Some(&[0xff, 0xfe])));
        assert!(!format!("{keys:?}").contains("alpha"));
    }

    #[test]
    fn a_file_without_keys_is_refused() {
        assert!(ApiKeys::parse("# only a comment\n\n").is_err());
        assert!(ApiKeys::parse(" , ,").is_err());
    }
}
