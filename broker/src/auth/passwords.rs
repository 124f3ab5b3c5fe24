//! The password file: `username:<argon2id PHC string>` lines.
//!
//! Passwords are stored as salted, slow argon2id hashes (`tributary-broker hash-password` prints
//! one). Verifying one costs tens of milliseconds and ~19 MiB on purpose, which a fleet that
//! reconnects at once (a failover) would pay per device: so a password verified once is
//! remembered, as an HMAC under a key that exists only in this process, until the file changes,
//! and verifications run a few at a time on the blocking pool, never on the async workers.
//!
//! The file is re-read when its contents change (see `super::watch`), so a rotated Kubernetes
//! Secret reaches running brokers; a file that fails to parse is logged and the previous
//! passwords stay in force.

use arc_swap::ArcSwap;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use ring::hmac;
use ring::rand::SecureRandom;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Semaphore;

use super::AuthError;

/// Password verifications running at once: each takes a core for tens of milliseconds and
/// ~19 MiB, so a CONNECT storm queues here instead of exhausting the pod.
const VERIFYING_AT_ONCE: usize = 4;
/// Verified passwords remembered; beyond this the memo starts over (a bound, not an LRU: a
/// fleet reconnecting after a failover is the case it serves).
const VERIFIED_MAX: usize = 100_000;
/// Verified for unknown users, so that their refusal takes as long as a wrong password's.
const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$mEEbbi8dVsQ0ZdSGfjKN9ucm8DihTuVaD0t2U38ACsw";

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

/// The password file in force.
pub(super) struct PasswordFile {
    path: PathBuf,
    loaded: ArcSwap<Loaded>,
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
fn parse_passwords(path: &Path, text: &[u8]) -> Result<Passwords, AuthError> {
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

impl PasswordFile {
    /// Reads and parses the file at `path`.
    pub(super) fn load(path: &Path) -> Result<PasswordFile, AuthError> {
        let raw = std::fs::read(path).map_err(|error| AuthError::Read { path: path.to_owned(), error })?;
        let loaded = Loaded { passwords: parse_passwords(path, &raw)?, raw, verified: Mutex::default() };
        Ok(PasswordFile::new(path.to_owned(), loaded))
    }

    fn new(path: PathBuf, loaded: Loaded) -> PasswordFile {
        // Without a key (no system randomness) nothing is remembered: every CONNECT verifies.
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new()).ok();
        PasswordFile {
            path,
            loaded: ArcSwap::from_pointee(loaded),
            verifying: Arc::new(Semaphore::new(VERIFYING_AT_ONCE)),
            key,
        }
    }

    /// Whether `password` is the one of `user` already verified since the file was loaded
    /// (the memo; constant time, like the verification it stands for).
    pub(super) fn remembered(&self, user: &str, password: &[u8]) -> bool {
        let loaded = self.loaded.load();
        let known = loaded.verified.lock().unwrap_or_else(PoisonError::into_inner).get(user).copied();
        matches!((&self.key, known), (Some(key), Some(known)) if hmac::verify(key, password, &known).is_ok())
    }

    /// The key under which identical attempts at `user`'s password share one verification
    /// (`None` without a memo key: then every attempt is verified on its own).
    pub(super) fn attempt_key(&self, user: &str, password: &[u8]) -> Option<super::in_flight::Key> {
        let tag = hmac::sign(self.key.as_ref()?, password);
        Some((user.into(), <[u8; 32]>::try_from(tag.as_ref()).ok()?))
    }

    /// Whether `password` is the one of `user` in the file, verified (a few at a time, off the
    /// async workers) and then remembered. The memo is the caller's first question
    /// ([`PasswordFile::remembered`]), asked before the attempt waits its turn.
    pub(super) async fn verify(&self, user: &str, password: &[u8]) -> bool {
        let loaded = self.loaded.load_full();
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

    /// Re-reads the file when its contents changed; a bad file keeps the old one. Blocking I/O.
    pub(super) fn reload(&self) {
        let path = &self.path;
        let Some(raw) = super::changed(path, &self.loaded.load().raw, "password file") else { return };
        match parse_passwords(path, &raw) {
            Ok(passwords) => {
                tracing::info!(file = %path.display(), users = passwords.len(), "password file reloaded");
                self.loaded.store(Arc::new(Loaded { passwords, raw, verified: Mutex::default() }));
            }
            Err(error) => tracing::warn!(%error, "invalid password file; keeping the previous one"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> PasswordFile {
        let path = Path::new("passwords");
        let passwords = parse_passwords(path, text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        PasswordFile::new(path.to_owned(), Loaded { passwords, ..Loaded::default() })
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
    async fn passwords_match_once_verified_and_are_forgotten_when_the_file_changes() {
        let f = file(&format!("dev:{}\n", hashed("old")));
        assert!(!f.remembered("dev", b"old"), "not verified yet");
        assert!(f.verify("dev", b"old").await);
        assert!(f.remembered("dev", b"old"), "remembered");
        assert!(!f.verify("dev", b"wrong").await);
        assert!(!f.remembered("dev", b"wrong"));
        assert!(!f.verify("nobody", b"old").await, "unknown user, verified against the dummy");
        let passwords = parse_passwords(Path::new("p"), format!("dev:{}\n", hashed("new")).as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        f.loaded.store(Arc::new(Loaded { passwords, raw: b"rotated".to_vec(), verified: Mutex::default() }));
        assert!(!f.remembered("dev", b"old"), "the memo went with the old file");
        assert!(!f.verify("dev", b"old").await);
        assert!(f.verify("dev", b"new").await);
    }
}
