//! Client authentication: the password file (`username:sha256-hex-of-password` lines) and
//! `allowAnonymous`, plus clients whose TLS client certificate was verified.
//!
//! The file is re-read when its contents change (checked every 2 s), so a rotated Kubernetes
//! Secret reaches running brokers; a file that fails to parse is logged and the previous
//! passwords stay in force.

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::codec::reason;
use crate::config::Authentication;

/// How often the password file is checked for changes.
const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Why the password file cannot be used; names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The file could not be read.
    #[error("{path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A line is not `username:sha256-hex`.
    #[error("{path}:{line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// SHA-256 digests of the passwords, by username.
type Passwords = HashMap<String, [u8; 32]>;

/// Decides whether a CONNECT's credentials are accepted.
pub struct Authenticator {
    allow_anonymous: bool,
    file: Option<PathBuf>,
    /// The parsed file and the raw contents it came from (to notice changes).
    passwords: ArcSwap<(Passwords, Vec<u8>)>,
}

/// Parses a password file: `username:hex` lines, `#` comments and blank lines ignored.
pub(crate) fn parse_passwords(path: &Path, text: &[u8]) -> Result<Passwords, AuthError> {
    let bad = |line: usize, reason| AuthError::Line { path: path.to_owned(), line, reason };
    let text = std::str::from_utf8(text).map_err(|_| bad(0, "not UTF-8"))?;
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, hex) = line.rsplit_once(':').ok_or_else(|| bad(line_no, "expected username:sha256-hex"))?;
        if user.is_empty() {
            return Err(bad(line_no, "empty username"));
        }
        let digest = decode_hex(hex.trim()).ok_or_else(|| bad(line_no, "the password hash is not 64 hex digits"))?;
        out.insert(user.to_owned(), digest);
    }
    Ok(out)
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

/// Equal without an early exit, so timing does not tell how much of a hash matched.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authenticator {
    /// Loads the password file of `config`, if any.
    pub fn load(config: &Authentication) -> Result<Authenticator, AuthError> {
        let passwords = match &config.password_file {
            Some(path) => {
                let raw = std::fs::read(path).map_err(|error| AuthError::Read { path: path.clone(), error })?;
                (parse_passwords(path, &raw)?, raw)
            }
            None => Default::default(),
        };
        Ok(Authenticator {
            allow_anonymous: config.allow_anonymous,
            file: config.password_file.clone(),
            passwords: ArcSwap::from_pointee(passwords),
        })
    }

    /// Checks a CONNECT: `Err` carries the CONNACK reason code. Credentials, when given, must
    /// match the file (a wrong password never falls back to anonymous access); without them
    /// the client needs `allowAnonymous` or a verified TLS client certificate, and so does an
    /// MQTT 5 password without a user name, which names no account.
    pub fn check(&self, username: Option<&str>, password: Option<&[u8]>, tls_verified: bool) -> Result<(), u8> {
        match (username, password) {
            (Some(user), Some(password)) => {
                let digest = ring::digest::digest(&ring::digest::SHA256, password);
                let given: [u8; 32] = digest.as_ref().try_into().map_err(|_| reason::BAD_USER_NAME_OR_PASSWORD)?;
                match self.passwords.load().0.get(user) {
                    Some(stored) if same(stored, &given) => Ok(()),
                    _ => Err(reason::BAD_USER_NAME_OR_PASSWORD),
                }
            }
            // A username alone identifies nobody when passwords are checked.
            (Some(_), None) if self.file.is_some() => Err(reason::BAD_USER_NAME_OR_PASSWORD),
            // MQTT 5 allows a password without a user name (MQTT-3.1.2-18/19; 3.1.1 does not,
            // and the codec refuses it there). It names no account of the file, so it admits
            // no more than no credentials do; a refusal says the credentials were not accepted.
            (None, Some(_)) if self.allow_anonymous || tls_verified => Ok(()),
            (None, Some(_)) => Err(reason::BAD_USER_NAME_OR_PASSWORD),
            _ if self.allow_anonymous || tls_verified => Ok(()),
            _ => Err(reason::NOT_AUTHORIZED),
        }
    }

    /// Re-reads the password file when its contents changed; a bad file keeps the old one.
    fn reload(&self) {
        let Some(path) = &self.file else { return };
        let raw = match std::fs::read(path) {
            Ok(raw) => raw,
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "cannot read the password file; keeping the previous one");
                return;
            }
        };
        if raw == self.passwords.load().1 {
            return;
        }
        match parse_passwords(path, &raw) {
            Ok(passwords) => {
                tracing::info!(file = %path.display(), users = passwords.len(), "password file reloaded");
                self.passwords.store(Arc::new((passwords, raw)));
            }
            Err(error) => tracing::warn!(%error, "invalid password file; keeping the previous one"),
        }
    }
}

/// Re-reads the password file every 2 s until the authenticator is dropped.
pub(crate) async fn watch(auth: Weak<Authenticator>) {
    let mut tick = tokio::time::interval(RELOAD_INTERVAL);
    loop {
        tick.tick().await;
        let Some(auth) = auth.upgrade() else { return };
        if auth.file.is_none() {
            return;
        }
        // File I/O off the async workers.
        let _ = tokio::task::spawn_blocking(move || auth.reload()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sha256("secret").
    const SECRET: &str = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";

    fn auth(allow_anonymous: bool, file: &str) -> Authenticator {
        let path = Path::new("passwords");
        Authenticator {
            allow_anonymous,
            file: Some(path.to_owned()),
            passwords: ArcSwap::from_pointee((parse_passwords(path, file.as_bytes()).unwrap_or_default(), Vec::new())),
        }
    }

    #[test]
    fn password_file_lines_and_errors_name_the_line() {
        let text = format!("# devices\n\ndev-1:{SECRET}\n  dev:2 : {}\n", SECRET.to_uppercase());
        let parsed = parse_passwords(Path::new("p"), text.as_bytes()).unwrap_or_default();
        assert_eq!(parsed.len(), 2);
        assert!(parsed.contains_key("dev:2 "), "the last colon separates: usernames may hold one");
        let err = |t: &str| parse_passwords(Path::new("p"), t.as_bytes()).err().map(|e| e.to_string());
        assert_eq!(err("ok:00\n").as_deref(), Some("p:1: the password hash is not 64 hex digits"));
        assert_eq!(err(&format!("a:{SECRET}\nno-colon\n")).as_deref(), Some("p:2: expected username:sha256-hex"));
        assert_eq!(err(&format!(":{SECRET}")).as_deref(), Some("p:1: empty username"));
        assert_eq!(
            err(&format!("a:{}zz", &SECRET[..62])).as_deref(),
            Some("p:1: the password hash is not 64 hex digits")
        );
    }

    #[test]
    fn credentials_must_match_and_never_fall_back_to_anonymous() {
        let a = auth(true, &format!("dev:{SECRET}\n"));
        assert_eq!(a.check(Some("dev"), Some(b"secret"), false), Ok(()));
        assert_eq!(a.check(Some("dev"), Some(b"wrong"), false), Err(reason::BAD_USER_NAME_OR_PASSWORD));
        assert_eq!(a.check(Some("nobody"), Some(b"secret"), false), Err(reason::BAD_USER_NAME_OR_PASSWORD));
        assert_eq!(a.check(Some("dev"), None, false), Err(reason::BAD_USER_NAME_OR_PASSWORD));
        assert_eq!(a.check(None, None, false), Ok(()), "anonymous allowed");
        let closed = auth(false, &format!("dev:{SECRET}\n"));
        assert_eq!(closed.check(None, None, false), Err(reason::NOT_AUTHORIZED));
        assert_eq!(closed.check(None, None, true), Ok(()), "a verified client certificate is an identity");
        assert_eq!(closed.check(Some("dev"), Some(b"secret"), false), Ok(()));
    }

    #[test]
    fn a_password_without_user_name_counts_as_no_credentials() {
        let open = auth(true, &format!("dev:{SECRET}\n"));
        assert_eq!(open.check(None, Some(b"secret"), false), Ok(()), "anonymous allowed");
        let closed = auth(false, &format!("dev:{SECRET}\n"));
        assert_eq!(closed.check(None, Some(b"secret"), false), Err(reason::BAD_USER_NAME_OR_PASSWORD));
        assert_eq!(closed.check(None, Some(b"secret"), true), Ok(()), "the certificate identifies it");
    }
}
