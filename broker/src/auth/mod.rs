//! Client authentication: who a CONNECT is. Credentials are a password of the password file
//! (`passwords`), a JSON Web Token as the password (`jwt`), or a TLS client certificate the
//! listener verified; without any, `allowAnonymous` decides. Failed attempts slow down the next
//! ones from the same address (`penalty`).
//!
//! The password and key files are re-read when their contents change (checked every 2 s), so a
//! rotated Kubernetes Secret reaches running brokers.

mod in_flight;
mod jwt;
mod passwords;
mod penalty;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Weak;
use std::time::Duration;

use crate::codec::reason;
use crate::config::Authentication;

pub use passwords::hash_password;

use in_flight::{Attempt, InFlight};
use jwt::{looks_like_token, JwtVerifier};
use passwords::PasswordFile;
use penalty::Penalties;

/// How often the password and key files are checked for changes.
const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Why the password file or a JWT key cannot be used; names the file (and line).
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
    /// A JWT key file holds no usable key.
    #[error("{path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A password could not be hashed.
    #[error("hashing the password: {0}")]
    Hash(argon2::password_hash::Error),
    /// No randomness for a salt.
    #[error("no system randomness for a salt")]
    Random,
}

/// What a CONNECT presents.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Credentials<'a> {
    /// The User Name field.
    pub(crate) username: Option<&'a str>,
    /// The Password field.
    pub(crate) password: Option<&'a [u8]>,
    /// Whether the listener verified a client certificate.
    pub(crate) certificate: bool,
    /// The source address, by which failures are counted.
    pub(crate) address: Option<IpAddr>,
}

/// Who an accepted CONNECT is, beyond its client id and certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Authenticated {
    /// The user for `user:` rules: the CONNECT's User Name, or a token's username claim.
    pub(crate) username: Option<Box<str>>,
    /// The token's groups (`group:` rules).
    pub(crate) groups: Vec<Box<str>>,
    /// When the token expires (seconds since the Unix epoch): the connection ends then.
    pub(crate) expires_at: Option<u64>,
}

/// Decides whether a CONNECT's credentials are accepted.
pub struct Authenticator {
    allow_anonymous: bool,
    passwords: Option<PasswordFile>,
    jwt: Option<JwtVerifier>,
    penalties: Penalties,
    /// Identical password attempts share one verification.
    in_flight: InFlight,
}

impl Authenticator {
    /// Loads the password file and JWT key of `config`, if any.
    pub fn load(config: &Authentication) -> Result<Authenticator, AuthError> {
        Ok(Authenticator {
            allow_anonymous: config.allow_anonymous,
            passwords: config.password_file.as_deref().map(PasswordFile::load).transpose()?,
            jwt: config.jwt.as_ref().map(JwtVerifier::load).transpose()?,
            penalties: Penalties::default(),
            in_flight: InFlight::default(),
        })
    }

    /// Checks a CONNECT: `Err` carries the CONNACK reason code. Credentials, when given, must
    /// be valid (a wrong password never falls back to anonymous access); without them the
    /// client needs `allowAnonymous` or a verified TLS client certificate, and so does an MQTT 5
    /// password without a user name that is not a token, which names no account. A password of
    /// the file that was not verified before waits its turn when its address and user name
    /// failed recently (`penalty`); tokens and certificates have nothing to guess.
    pub(crate) async fn check(&self, c: Credentials<'_>) -> Result<Authenticated, u8> {
        let accepted = |user: &str| Ok(Authenticated { username: Some(user.into()), ..Default::default() });
        let (guessable, lead) = match (c.username, c.password, &self.passwords) {
            (Some(user), Some(password), Some(file)) if !self.is_token(password) => loop {
                if file.remembered(user, password) {
                    return accepted(user);
                }
                let Some(key) = file.attempt_key(user, password) else { break (Some(user), None) };
                match self.in_flight.attempt(key).await {
                    Attempt::Decided(true) => return accepted(user),
                    Attempt::Decided(false) => return Err(reason::BAD_USER_NAME_OR_PASSWORD),
                    Attempt::Lead(lead) => break (Some(user), Some(lead)),
                    // The lead went without a verdict (its turn was refused, or its connection
                    // closed): one of those waiting leads next.
                    Attempt::Alone => continue,
                }
            },
            _ => (None, None),
        };
        let turn = match guessable {
            Some(user) => self.penalties.turn(c.address, user).await.map_err(|_| reason::CONNECTION_RATE_EXCEEDED)?,
            None => None,
        };
        let result = self.decide(c).await;
        if let (Err(_), Some(turn)) = (&result, &turn) {
            turn.failed();
        }
        if let Some(lead) = lead {
            lead.finish(result.is_ok());
        }
        result
    }

    /// Whether `password` is to be verified as a token.
    fn is_token(&self, password: &[u8]) -> bool {
        self.jwt.is_some() && looks_like_token(password)
    }

    async fn decide(&self, c: Credentials<'_>) -> Result<Authenticated, u8> {
        let open = self.allow_anonymous || c.certificate;
        let username = c.username.map(Box::from);
        match (c.username, c.password, &self.jwt) {
            (_, Some(token), Some(jwt)) if self.is_token(token) => {
                let token = std::str::from_utf8(token).map_err(|_| reason::BAD_USER_NAME_OR_PASSWORD)?;
                match jwt.verify(token, c.username) {
                    Ok(id) => Ok(Authenticated {
                        username: Some(id.username),
                        groups: id.groups,
                        expires_at: Some(id.expires_at),
                    }),
                    Err(e) => {
                        tracing::debug!(user = ?c.username, error = %e, "token refused");
                        Err(reason::BAD_USER_NAME_OR_PASSWORD)
                    }
                }
            }
            // `check` asked the memo already.
            (Some(user), Some(password), _) => match &self.passwords {
                Some(file) if file.verify(user, password).await => Ok(Authenticated { username, ..Default::default() }),
                _ => Err(reason::BAD_USER_NAME_OR_PASSWORD),
            },
            // A username alone identifies nobody when credentials are checked.
            (Some(_), None, _) if self.passwords.is_some() || self.jwt.is_some() => {
                Err(reason::BAD_USER_NAME_OR_PASSWORD)
            }
            // MQTT 5 allows a password without a user name (MQTT-3.1.2-18/19; 3.1.1 does not,
            // and the codec refuses it there). Not a token, it names no account of the file, so
            // it admits no more than no credentials do; a refusal says they were not accepted.
            (None, Some(_), _) if open => Ok(Authenticated::default()),
            (None, Some(_), _) => Err(reason::BAD_USER_NAME_OR_PASSWORD),
            _ if open => Ok(Authenticated { username, ..Default::default() }),
            _ => Err(reason::NOT_AUTHORIZED),
        }
    }

    /// Re-reads the password and key files when their contents changed. Blocking I/O.
    fn reload(&self) {
        if let Some(p) = &self.passwords {
            p.reload();
        }
        if let Some(j) = &self.jwt {
            j.reload();
        }
    }
}

/// The contents of `path` when they differ from `current` (the file in force), `None` when
/// unchanged or unreadable (then the file in force stays: a Secret being rotated may be briefly
/// missing). Blocking I/O.
fn changed(path: &std::path::Path, current: &[u8], what: &str) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(raw) if raw != current => Some(raw),
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(file = %path.display(), %error, "cannot read the {what}; keeping the previous one");
            None
        }
    }
}

/// Re-reads the password and key files every 2 s until the authenticator is dropped.
pub(crate) async fn watch(auth: Weak<Authenticator>) {
    let mut tick = tokio::time::interval(RELOAD_INTERVAL);
    loop {
        tick.tick().await;
        let Some(auth) = auth.upgrade() else { return };
        if auth.passwords.is_none() && auth.jwt.is_none() {
            return;
        }
        // File I/O off the async workers.
        let _ = tokio::task::spawn_blocking(move || auth.reload()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(allow_anonymous: bool, passwords: &str) -> (tempfile::TempDir, Authenticator) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("passwords");
        std::fs::write(&path, passwords).unwrap_or_else(|e| panic!("{e}"));
        let config = Authentication { allow_anonymous, password_file: Some(path), ..Authentication::default() };
        let a = Authenticator::load(&config).unwrap_or_else(|e| panic!("{e}"));
        (dir, a)
    }

    fn hashed(password: &str) -> String {
        hash_password(password.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn creds<'a>(username: Option<&'a str>, password: Option<&'a [u8]>, certificate: bool) -> Credentials<'a> {
        Credentials { username, password, certificate, address: None }
    }

    fn user(name: &str) -> Result<Authenticated, u8> {
        Ok(Authenticated { username: Some(name.into()), ..Default::default() })
    }

    #[tokio::test]
    async fn credentials_must_match_and_never_fall_back_to_anonymous() {
        let file = format!("dev:{}\n", hashed("secret"));
        let (_d, a) = auth(true, &file);
        assert_eq!(a.check(creds(Some("dev"), Some(b"secret"), false)).await, user("dev"));
        assert_eq!(a.check(creds(Some("dev"), Some(b"wrong"), false)).await, Err(reason::BAD_USER_NAME_OR_PASSWORD));
        assert_eq!(
            a.check(creds(Some("nobody"), Some(b"secret"), false)).await,
            Err(reason::BAD_USER_NAME_OR_PASSWORD)
        );
        assert_eq!(a.check(creds(Some("dev"), None, false)).await, Err(reason::BAD_USER_NAME_OR_PASSWORD));
        assert_eq!(a.check(creds(None, None, false)).await, Ok(Authenticated::default()), "anonymous allowed");
        let (_d, closed) = auth(false, &file);
        assert_eq!(closed.check(creds(None, None, false)).await, Err(reason::NOT_AUTHORIZED));
        assert_eq!(closed.check(creds(None, None, true)).await, Ok(Authenticated::default()), "a verified certificate");
        assert_eq!(closed.check(creds(Some("dev"), Some(b"secret"), false)).await, user("dev"));
    }

    #[tokio::test]
    async fn a_password_without_user_name_counts_as_no_credentials() {
        let file = format!("dev:{}\n", hashed("secret"));
        let (_d, open) = auth(true, &file);
        assert_eq!(open.check(creds(None, Some(b"secret"), false)).await, Ok(Authenticated::default()));
        let (_d, closed) = auth(false, &file);
        assert_eq!(closed.check(creds(None, Some(b"secret"), false)).await, Err(reason::BAD_USER_NAME_OR_PASSWORD));
        assert_eq!(closed.check(creds(None, Some(b"secret"), true)).await, Ok(Authenticated::default()));
    }

    /// A fleet sharing one account connects at once before its password is remembered: one
    /// verification, no one refused (past eight in progress, the rest used to be refused).
    #[tokio::test]
    async fn a_burst_of_one_account_from_one_address_is_verified_once() {
        let (_d, a) = auth(false, &format!("fleet:{}\n", hashed("secret")));
        let from = |password: &'static [u8]| Credentials {
            username: Some("fleet"),
            password: Some(password),
            certificate: false,
            address: Some(IpAddr::from([10, 0, 0, 1])),
        };
        let burst = futures::future::join_all((0..50).map(|_| a.check(from(b"secret")))).await;
        assert!(burst.iter().all(|r| *r == user("fleet")), "{burst:?}");
        // Identical wrong guesses get the first one's verdict and count as one failure.
        let guesses = futures::future::join_all((0..50).map(|_| a.check(from(b"guess")))).await;
        assert!(guesses.iter().all(|r| *r == Err(reason::BAD_USER_NAME_OR_PASSWORD)), "{guesses:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_slow_down_that_address_only() {
        let (_d, a) = auth(false, &format!("dev:{}\n", hashed("secret")));
        let from = |address: [u8; 4], password: &'static [u8]| Credentials {
            username: Some("dev"),
            password: Some(password),
            certificate: false,
            address: Some(IpAddr::from(address)),
        };
        // The paused clock advances only while every task waits on a timer: the blocking
        // argon2 verification runs in real time, so timing comes from the clock of tokio.
        let start = tokio::time::Instant::now();
        for _ in 0..6 {
            assert!(a.check(from([10, 0, 0, 1], b"guess")).await.is_err());
        }
        let guessing = start.elapsed();
        assert!(guessing >= Duration::from_millis(750), "3 free, then 250 ms and 500 ms of penalty: {guessing:?}");
        // The right password, once verified, is remembered and skips the queue of its key.
        assert_eq!(a.check(from([10, 0, 0, 2], b"secret")).await, user("dev"));
        let remembered = tokio::time::Instant::now();
        assert_eq!(a.check(from([10, 0, 0, 1], b"secret")).await, user("dev"));
        assert_eq!(remembered.elapsed(), Duration::ZERO, "a remembered password waits for nothing");
        let other = tokio::time::Instant::now();
        assert_eq!(a.check(from([10, 0, 0, 2], b"secret")).await, user("dev"));
        assert!(other.elapsed() < Duration::from_millis(250), "another address waits for nothing");
    }
}
