//! JSON Web Tokens as CONNECT passwords (`authentication.jwt`): the signature with the
//! configured key and algorithm, `exp` (required) and `nbf` with a small leeway, `aud` and
//! `iss` when configured; the principal is the `usernameClaim`, the groups the `groupsClaim`.
//!
//! The key file (secret, PEM public key or JWKS) is re-read when its contents change, like the
//! password file: a rotated signing key reaches running brokers; a file that no longer parses
//! keeps the previous key in force.

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::AuthError;
use crate::config::{Jwt, JwtAlgorithm};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 10;
/// Shortest HMAC secret accepted: 256 bits, as RFC 7518 asks for HS256.
const MIN_SECRET_LEN: usize = 32;

/// Who a valid token says the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenIdentity {
    /// The `usernameClaim`.
    pub(crate) username: Box<str>,
    /// The `groupsClaim`, if configured and present.
    pub(crate) groups: Vec<Box<str>>,
    /// `exp`, in seconds since the Unix epoch.
    pub(crate) expires_at: u64,
}

/// The keys of the file in force, and its raw contents (to notice changes).
struct Keys {
    raw: Vec<u8>,
    /// Keys with their `kid` (`None` for a secret or a PEM key).
    keys: Vec<(Option<String>, DecodingKey)>,
}

/// Verifies tokens against the configured key.
pub(super) struct JwtVerifier {
    config: Jwt,
    validation: Validation,
    keys: ArcSwap<Keys>,
}

fn algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::HS384 => Algorithm::HS384,
        JwtAlgorithm::HS512 => Algorithm::HS512,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
    }
}

/// The key file of `config` (validation made sure there is exactly one).
fn key_file(config: &Jwt) -> &Path {
    let file = config.secret_file.as_ref().or(config.public_key_file.as_ref()).or(config.jwks_file.as_ref());
    file.map_or(Path::new(""), PathBuf::as_path)
}

/// Parses the key file's contents as the configuration says they are.
fn parse_keys(config: &Jwt, path: &Path, raw: &[u8]) -> Result<Vec<(Option<String>, DecodingKey)>, AuthError> {
    let bad = |reason: String| AuthError::Key { path: path.to_owned(), reason };
    if config.secret_file.is_some() {
        let secret = raw.trim_ascii_end();
        if secret.len() < MIN_SECRET_LEN {
            return Err(bad(format!("the secret must be at least {MIN_SECRET_LEN} bytes")));
        }
        return Ok(vec![(None, DecodingKey::from_secret(secret))]);
    }
    if config.public_key_file.is_some() {
        let key = match config.algorithm {
            JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => DecodingKey::from_ec_pem(raw),
            _ => DecodingKey::from_rsa_pem(raw),
        };
        return Ok(vec![(
            None,
            key.map_err(|e| bad(format!("not a PEM public key for {:?}: {e}", config.algorithm)))?,
        )]);
    }
    let set: JwkSet = serde_json::from_slice(raw).map_err(|e| bad(format!("not a JWKS document: {e}")))?;
    let keys = set
        .keys
        .iter()
        .filter_map(|jwk| DecodingKey::from_jwk(jwk).ok().map(|k| (jwk.common.key_id.clone(), k)))
        .collect::<Vec<_>>();
    if keys.is_empty() {
        return Err(bad("the JWKS holds no usable key".to_owned()));
    }
    Ok(keys)
}

/// Why a token is refused (logged at debug; the client gets 0x86 Bad User Name or Password).
#[derive(Debug, thiserror::Error)]
pub(super) enum TokenError {
    /// Signature, algorithm, expiry, audience, issuer or form.
    #[error(transparent)]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// No key of the JWKS has the token's `kid`.
    #[error("no key with kid {0:?}")]
    UnknownKey(String),
    /// The username claim is missing or not a string.
    #[error("claim {0:?} is missing or not a string")]
    NoUsername(String),
    /// `exp` has passed (within the leeway the validation allows for clock skew).
    #[error("the token has expired")]
    Expired,
    /// The CONNECT's username is not the token's.
    #[error("the user name is not the token's {0:?}")]
    OtherUser(Box<str>),
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether a password has the form of a compact JWS (three base64url parts): such passwords
/// are verified as tokens when `authentication.jwt` is set.
pub(super) fn looks_like_token(password: &[u8]) -> bool {
    let parts = password.split(|b| *b == b'.').collect::<Vec<_>>();
    parts.len() == 3
        && parts.iter().take(2).all(|p| !p.is_empty())
        && password.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl JwtVerifier {
    /// Reads the key file of `config`.
    pub(super) fn load(config: &Jwt) -> Result<JwtVerifier, AuthError> {
        let path = key_file(config);
        let raw = std::fs::read(path).map_err(|error| AuthError::Read { path: path.to_owned(), error })?;
        let keys = parse_keys(config, path, &raw)?;
        let mut validation = Validation::new(algorithm(config.algorithm));
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        // Configured claims are required too: jsonwebtoken accepts a token that leaves `aud` or
        // `iss` out even when they are set.
        let mut required = vec!["exp"];
        required.extend(config.audience.as_ref().map(|_| "aud"));
        required.extend(config.issuer.as_ref().map(|_| "iss"));
        validation.set_required_spec_claims(&required);
        match &config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(JwtVerifier { config: config.clone(), validation, keys: ArcSwap::from_pointee(Keys { raw, keys }) })
    }

    /// Verifies `token`; `username` is the CONNECT's, which must be the token's when given.
    pub(super) fn verify(&self, token: &str, username: Option<&str>) -> Result<TokenIdentity, TokenError> {
        let header = jsonwebtoken::decode_header(token)?;
        let keys = self.keys.load();
        let candidates: Vec<&DecodingKey> = match &header.kid {
            // A JWKS selects by kid; a single key is used whatever the kid says.
            Some(kid) if keys.keys.iter().any(|(k, _)| k.is_some()) => {
                let found = keys.keys.iter().filter(|(k, _)| k.as_deref() == Some(kid)).map(|(_, key)| key).collect();
                if Vec::is_empty(&found) {
                    return Err(TokenError::UnknownKey(kid.clone()));
                }
                found
            }
            _ => keys.keys.iter().map(|(_, key)| key).collect(),
        };
        let mut last = None;
        for key in candidates {
            match jsonwebtoken::decode::<HashMap<String, serde_json::Value>>(token, key, &self.validation) {
                Ok(data) => return self.identity(&data.claims, username),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(|| TokenError::UnknownKey(String::new()), TokenError::Invalid))
    }

    fn identity(
        &self,
        claims: &HashMap<String, serde_json::Value>,
        username: Option<&str>,
    ) -> Result<TokenIdentity, TokenError> {
        let claim = &self.config.username_claim;
        let name: Box<str> = match claims.get(claim) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s.as_str().into(),
            _ => return Err(TokenError::NoUsername(claim.clone())),
        };
        if username.is_some_and(|u| *u != *name) {
            return Err(TokenError::OtherUser(name));
        }
        let groups = match self.config.groups_claim.as_ref().and_then(|g| claims.get(g)) {
            Some(serde_json::Value::String(g)) => vec![g.as_str().into()],
            Some(serde_json::Value::Array(gs)) => gs.iter().filter_map(|g| g.as_str()).map(Box::from).collect(),
            _ => Vec::new(),
        };
        // Validation made `exp` present and numeric (a fraction is allowed: it is rounded down).
        let exp = claims.get("exp").and_then(|e| e.as_u64().or_else(|| e.as_f64().map(|f| f.max(0.0) as u64)));
        let expires_at = exp.unwrap_or(0);
        // Within the leeway a token is valid but already expired: the connection would end at
        // once (and publish its Will), so it is refused instead.
        if expires_at <= now_secs() {
            return Err(TokenError::Expired);
        }
        Ok(TokenIdentity { username: name, groups, expires_at })
    }

    /// Re-reads the key file when its contents changed; a bad file keeps the old keys.
    /// Blocking I/O.
    pub(super) fn reload(&self) {
        let path = key_file(&self.config);
        let Some(raw) = super::changed(path, &self.keys.load().raw, "JWT key file") else { return };
        match parse_keys(&self.config, path, &raw) {
            Ok(keys) => {
                tracing::info!(file = %path.display(), keys = keys.len(), "JWT key file reloaded");
                self.keys.store(Arc::new(Keys { raw, keys }));
            }
            Err(error) => tracing::warn!(%error, "invalid JWT key file; keeping the previous key"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn now() -> u64 {
        now_secs()
    }

    fn verifier(dir: &tempfile::TempDir, extra: &str) -> JwtVerifier {
        let path = dir.path().join("secret");
        std::fs::write(&path, [SECRET, b"\n"].concat()).unwrap_or_else(|e| panic!("{e}"));
        let yaml = format!("{{algorithm: HS256, secretFile: {}, {extra}}}", path.display());
        let config: Jwt = serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("{e}"));
        JwtVerifier::load(&config).unwrap_or_else(|e| panic!("{e}"))
    }

    fn token(claims: serde_json::Value, secret: &[u8]) -> String {
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_valid_token_names_the_user_and_its_groups() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let v = verifier(&dir, "audience: mqtt, issuer: fleet, groupsClaim: roles");
        let no_iss = token(json!({"sub": "truck-1", "aud": "mqtt", "exp": now() + 60}), SECRET);
        assert!(v.verify(&no_iss, None).is_err(), "no iss while one is configured");
        let exp = now() + 60;
        let t = token(
            json!({"sub": "truck-1", "aud": ["mqtt"], "iss": "fleet", "exp": exp, "roles": ["ui", "ops"]}),
            SECRET,
        );
        let id = v.verify(&t, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            id,
            TokenIdentity { username: "truck-1".into(), groups: vec!["ui".into(), "ops".into()], expires_at: exp }
        );
        assert!(v.verify(&t, Some("truck-1")).is_ok(), "the same user name");
        assert!(matches!(v.verify(&t, Some("truck-2")), Err(TokenError::OtherUser(_))));
        assert!(looks_like_token(t.as_bytes()) && !looks_like_token(b"hunter2") && !looks_like_token(b"a.b"));
    }

    #[test]
    fn expired_foreign_or_wrongly_signed_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let v = verifier(&dir, "audience: mqtt");
        let ok = |claims| v.verify(&token(claims, SECRET), None).map(|_| ());
        let exp = now() + 60;
        assert!(ok(json!({"sub": "a", "aud": "mqtt", "exp": exp})).is_ok());
        assert!(ok(json!({"sub": "a", "aud": "mqtt", "exp": now() - 60})).is_err(), "expired");
        assert!(ok(json!({"sub": "a", "aud": "mqtt", "exp": now() - 5})).is_err(), "within the leeway, but expired");
        assert!(ok(json!({"sub": "a", "exp": exp})).is_err(), "no aud while one is configured");
        assert!(ok(json!({"sub": "a", "aud": "mqtt", "exp": exp as f64 + 0.5})).is_ok(), "a fractional exp");
        assert!(ok(json!({"sub": "a", "aud": "mqtt"})).is_err(), "no exp");
        assert!(ok(json!({"sub": "a", "aud": "other", "exp": exp})).is_err(), "wrong audience");
        assert!(ok(json!({"sub": "a", "aud": "mqtt", "exp": exp, "nbf": now() + 600})).is_err(), "not yet valid");
        assert!(matches!(
            v.verify(&token(json!({"aud": "mqtt", "exp": exp}), SECRET), None),
            Err(TokenError::NoUsername(_))
        ));
        let forged = token(json!({"sub": "a", "aud": "mqtt", "exp": exp}), b"another secret of thirty-two bytes!!");
        assert!(v.verify(&forged, None).is_err(), "bad signature");
        let none = format!("eyJhbGciOiJub25lIn0.{}.", forged.split('.').nth(1).unwrap_or_default());
        assert!(v.verify(&none, None).is_err(), "alg none");
    }

    #[test]
    fn a_short_secret_is_refused_and_a_rotated_key_takes_over() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let short: Jwt =
            serde_yaml::from_str("{algorithm: HS256, secretFile: /dev/null}").unwrap_or_else(|e| panic!("{e}"));
        let err = JwtVerifier::load(&short).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(err, "/dev/null: the secret must be at least 32 bytes");
        let v = verifier(&dir, "");
        let claims = json!({"sub": "a", "exp": now() + 60});
        let rotated = b"a brand new secret, 32 bytes long";
        assert!(v.verify(&token(claims.clone(), rotated), None).is_err());
        std::fs::write(dir.path().join("secret"), rotated).unwrap_or_else(|e| panic!("{e}"));
        v.reload();
        assert!(v.verify(&token(claims.clone(), rotated), None).is_ok());
        assert!(v.verify(&token(claims, SECRET), None).is_err(), "the old key is gone");
    }
}
