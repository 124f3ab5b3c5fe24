//! Client authentication: the password file (`username:<argon2id PHC string>` lines) and
//! `allowAnonymous`, plus clients whose TLS client certificate was verified.
//!
//! Passwords are stored as salted, slow argon2id hashes (`tributary-broker hash-password` prints
//! one). Verifying one costs tens of milliseconds and ~19 MiB on purpose, which a fleet that
//! reconnects at once (a failover) would pay per device: so a password verified once is
//! remembered, as an HMAC under a key that exists only in this process, until the file changes,
//! and verifications run a few at a time on the blocking pool, never on the async workers.
//!
//! The file is re-read when its contents change (checked every 2 s), so a rotated Kubernetes
//! Secret reaches running brokers; a file that fails to parse is logged and the previous
//! passwords stay in force.

use arc_swap::ArcSwap;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use ring::hmac;
use ring::rand::SecureRandom;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::Semaphore;

use crate::codec::reason;
use crate::config::Authentication;

/// How often the password file is checked for changes.
const RELOAD_INTERVAL: Duration = Duration::from_secs(2);
/// Password verifications running at once: each takes a core for tens of milliseconds and
/// ~19 MiB, so a CONNECT storm queues here instead of exhausting the pod.
const VERIFYING_AT_ONCE: usize = 4;
/// Verified passwords remembered; beyond this the memo starts over (a bound, not an LRU: a
/// fleet reconnecting after a failover is the case it serves).
const VERIFIED_MAX: usize = 100_000;
/// Verified for unknown users, so that their refusal takes as long as a wrong password's.
const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$mEEbbi8dVsQ0ZdSGfjKN9ucm8DihTuVaD0t2U38ACsw";

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
    /// A line is not `username:<argon2id PHC string>`.
    #[error("{path}:{line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A password could not be hashed.
    #[error("hashing the password: {0}")]
    Hash(argon2::password_hash::Error),
    /// No randomness for a salt.
    #[error("no system randomness for a salt")]
    Random,
}

/// Password hashes (PHC strings, parsed once at load) by username.
type Passwords = HashMap<String, Box<str>>;

/// A parsed password file, the raw contents it came from (to notice changes), and the passwords
/// verified against it: the memo goes with the file, so a rotated password is checked anew.
#[derive(Default)]
struct Loaded {
    passwords: Passwords,
    raw: Vec<u8>,
    /// Username → HMAC-SHA256 of the password last verified for it.
    verified: Mutex<HashMap<String, [u8; 32]>>,
}

/// Decides whether a CONNECT's credentials are accepted.
pub struct Authenticator {
    allow_anonymous: bool,
    file: Option<PathBuf>,
    passwords: ArcSwap<Loaded>,
    verifying: Arc<Semaphore>,
    /// Key of the memo's HMACs: random, in this process only.
    key: Option<hmac::Key>,
}

/// What a line must look like.
const LINE: &str = "expected username:<argon2id PHC string>";
/// The message for a line from before salted hashes.
const OLD_DIGEST: &str = "an unsalted SHA-256 digest is no longer accepted: set the password again with \
                          `tributary-broker hash-password`, which prints an argon2id hash for the line";

/// Parses a password file: `username:$argon2id$...` lines, `#` comments and blank lines ignored.
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
        // A PHC string holds no ':', so the last one separates: usernames may hold one.
        let (user, hash) = line.rsplit_once(':').ok_or_else(|| bad(line_no, LINE))?;
        if user.is_empty() {
            return Err(bad(line_no, "empty username"));
        }
        let hash = hash.trim();
        if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(line_no, OLD_DIGEST));
        }
        match PasswordHash::new(hash) {
            Ok(parsed) if parsed.algorithm.as_str() == "argon2id" => {}
            Ok(_) => return Err(bad(line_no, "the hash is not argon2id")),
            Err(_) => return Err(bad(line_no, LINE)),
        }
        out.insert(user.to_owned(), hash.into());
    }
    Ok(out)
}

/// An argon2id PHC string of `password` with a fresh random salt (OWASP's parameters: 19 MiB,
/// two passes): a line of the password file is `username:` and this.
pub fn hash_password(password: &[u8]) -> Result<String, AuthError> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| AuthError::Random)?;
    let salt = SaltString::encode_b64(&bytes).map_err(AuthError::Hash)?;
    Ok(Argon2::default().hash_password(password, &salt).map_err(AuthError::Hash)?.to_string())
}

/// Whether `password` matches the PHC string `hash` (argon2 compares in constant time).
fn verify(hash: &str, password: &[u8]) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password, &h).is_ok())
}

impl Authenticator {
    /// Loads the password file of `config`, if any.
    pub fn load(config: &Authentication) -> Result<Authenticator, AuthError> {
        let loaded = match &config.password_file {
            Some(path) => {
                let raw = std::fs::read(path).map_err(|error| AuthError::Read { path: path.clone(), error })?;
                Loaded { passwords: parse_passwords(path, &raw)?, raw, verified: Mutex::default() }
            }
            None => Loaded::default(),
        };
        Ok(Authenticator::new(config.allow_anonymous, config.password_file.clone(), loaded))
    }

    fn new(allow_anonymous: bool, file: Option<PathBuf>, loaded: Loaded) -> Authenticator {
        // Without a key (no system randomness) nothing is remembered: every CONNECT verifies.
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new()).ok();
        Authenticator {
            allow_anonymous,
            file,
            passwords: ArcSwap::from_pointee(loaded),
            verifying: Arc::new(Semaphore::new(VERIFYING_AT_ONCE)),
            key,
        }
    }

    /// Checks a CONNECT: `Err` carries the CONNACK reason code. Credentials, when given, must
    /// match the file (a wrong password never falls back to anonymous access); without them
    /// the client needs `allowAnonymous` or a verified TLS client certificate, and so does an
    /// MQTT 5 password without a user name, which names no account.
    pub async fn check(&self, username: Option<&str>, password: Option<&[u8]>, tls_verified: bool) -> Result<(), u8> {
        match (username, password) {
            (Some(user), Some(password)) if self.password_matches(user, password).await => Ok(()),
            (Some(_), Some(_)) => Err(reason::BAD_USER_NAME_OR_PASSWORD),
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

    /// Whether `password` is the one of `user` in the file: from the memo, or verified (a few at
    /// a time, off the async workers) and then remembered.
    async fn password_matches(&self, user: &str, password: &[u8]) -> bool {
        let loaded = self.passwords.load_full();
        let known = loaded.verified.lock().unwrap_or_else(PoisonError::into_inner).get(user).copied();
        if let (Some(key), Some(known)) = (&self.key, known) {
            // Constant time, like the verification it stands for.
            if hmac::verify(key, password, &known).is_ok() {
                return true;
            }
        }
        // Unknown users are verified against a dummy, so the answer takes as long either way.
        let (hash, known_user): (Box<str>, bool) = match loaded.passwords.get(user) {
            Some(h) => (h.clone(), true),
            None => (DUMMY.into(), false),
        };
        let tag = self.key.as_ref().map(|k| hmac::sign(k, password));
        let Ok(_permit) = self.verifying.acquire().await else { return false };
        let password = password.to_vec();
        let matched = tokio::task::spawn_blocking(move || verify(&hash, &password)).await.unwrap_or(false);
        if let (true, true, Some(Ok(tag))) = (matched, known_user, tag.map(|t| <[u8; 32]>::try_from(t.as_ref()))) {
            let mut verified = loaded.verified.lock().unwrap_or_else(PoisonError::into_inner);
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
            verified.insert(user.to_owned(), tag);
        }
        matched && known_user
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
        if raw == self.passwords.load().raw {
            return;
        }
        match parse_passwords(path, &raw) {
            Ok(passwords) => {
                tracing::info!(file = %path.display(), users = passwords.len(), "password file reloaded");
                self.passwords.store(Arc::new(Loaded { passwords, raw, verified: Mutex::default() }));
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

    fn auth(allow_anonymous: bool, file: &str) -> Authenticator {
        let path = Path::new("passwords");
        let passwords = parse_passwords(path, file.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        Authenticator::new(allow_anonymous, Some(path.to_owned()), Loaded { passwords, ..Loaded::default() })
    }

    fn hashed(password: &str) -> String {
        hash_password(password.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn password_file_lines_and_errors_name_the_line() {
        let secret = hashed("secret");
        let text = format!("# devices\n\ndev-1:{secret}\n  dev:2 : {secret}\n");
        let parsed = parse_passwords(Path::new("p"), text.as_bytes()).unwrap_or_default();
        assert_eq!(parsed.len(), 2);
        assert!(parsed.contains_key("dev:2 "), "the last colon separates: usernames may hold one");
        let err = |t: &str| parse_passwords(Path::new("p"), t.as_bytes()).err().map(|e| e.to_string());
        assert_eq!(err("ok:00\n").as_deref(), Some("p:1: expected username:<argon2id PHC string>"));
        assert_eq!(
            err(&format!("a:{secret}\nno-colon\n")).as_deref(),
            Some("p:2: expected username:<argon2id PHC string>")
        );
        assert_eq!(err(&format!(":{secret}")).as_deref(), Some("p:1: empty username"));
        let sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";
        let old = err(&format!("dev:{sha256}")).unwrap_or_default();
        assert!(
            old.starts_with("p:1: an unsalted SHA-256 digest is no longer accepted") && old.contains("hash-password"),
            "{old}"
        );
        let argon2i =
            "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$mEEbbi8dVsQ0ZdSGfjKN9ucm8DihTuVaD0t2U38ACsw";
        assert_eq!(err(&format!("a:{argon2i}")).as_deref(), Some("p:1: the hash is not argon2id"));
    }

    #[test]
    fn hashes_are_salted() {
        let (a, b) = (hashed("same"), hashed("same"));
        assert_ne!(a, b, "a fresh salt each time");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert!(verify(&a, b"same") && verify(&b, b"same") && !verify(&a, b"other"));
        assert!(PasswordHash::new(DUMMY).is_ok(), "the dummy parses, so unknown users cost a verification");
    }

    #[tokio::test]
    async fn credentials_must_match_and_never_fall_back_to_anonymous() {
        let file = format!("dev:{}\n", hashed("secret"));
        let a = auth(true, &file);
        assert_eq!(a.check(Some("dev"), Some(b"secret"), false).await, Ok(()));
        assert_eq!(a.check(Some("dev"), Some(b"secret"), false).await, Ok(()), "remembered");
        assert_eq!(a.check(Some("dev"), Some(b"wrong"), false).await, Err(reason::BAD_USER_NAME_OR_PASSWORD));
        assert_eq!(a.check(Some("nobody"), Some(b"secret"), false).await, Err(reason::BAD_USER_NAME_OR_PASSWORD));
        assert_eq!(a.check(Some("dev"), None, false).await, Err(reason::BAD_USER_NAME_OR_PASSWORD));
        assert_eq!(a.check(None, None, false).await, Ok(()), "anonymous allowed");
        let closed = auth(false, &file);
        assert_eq!(closed.check(None, None, false).await, Err(reason::NOT_AUTHORIZED));
        assert_eq!(closed.check(None, None, true).await, Ok(()), "a verified client certificate is an identity");
        assert_eq!(closed.check(Some("dev"), Some(b"secret"), false).await, Ok(()));
    }

    #[tokio::test]
    async fn a_remembered_password_is_forgotten_when_the_file_changes() {
        let a = auth(false, &format!("dev:{}\n", hashed("old")));
        assert_eq!(a.check(Some("dev"), Some(b"old"), false).await, Ok(()));
        let passwords = parse_passwords(Path::new("p"), format!("dev:{}\n", hashed("new")).as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        a.passwords.store(Arc::new(Loaded { passwords, raw: b"rotated".to_vec(), verified: Mutex::default() }));
        assert_eq!(a.check(Some("dev"), Some(b"old"), false).await, Err(reason::BAD_USER_NAME_OR_PASSWORD));
        assert_eq!(a.check(Some("dev"), Some(b"new"), false).await, Ok(()));
    }

    #[tokio::test]
    async fn a_password_without_user_name_counts_as_no_credentials() {
        let file = format!("dev:{}\n", hashed("secret"));
        let open = auth(true, &file);
        assert_eq!(open.check(None, Some(b"secret"), false).await, Ok(()), "anonymous allowed");
        let closed = auth(false, &file);
        assert_eq!(closed.check(None, Some(b"secret"), false).await, Err(reason::BAD_USER_NAME_OR_PASSWORD));
        assert_eq!(closed.check(None, Some(b"secret"), true).await, Ok(()), "the certificate identifies it");
    }
}
