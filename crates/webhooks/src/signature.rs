//! Webhook signatures: Stripe's `Stripe-Signature`, Lago's
//! `X-Lago-Signature` (its `hmac` and `jwt` modes), and the Standard
//! Webhooks `webhook-signature` that Tollgate's own deliveries carry. Every
//! comparison of a secret-derived value is constant-time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// How far a Stripe timestamp may be from now, either way (Stripe's default).
pub const STRIPE_TOLERANCE_SECS: i64 = 300;

/// Why a signature was refused. The message never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the {0} header is malformed")]
    Malformed(&'static str),
    #[error("the signature timestamp is more than 5 minutes from now")]
    Stale,
    #[error("no signature matches the body")]
    Mismatch,
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Stripe's signature of `body` at `timestamp`: hex HMAC-SHA256 of
/// `"{timestamp}.{body}"` keyed by the endpoint secret (`whsec_…`, used as is).
pub fn stripe_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    hex::encode(hmac_sha256(
        secret.as_bytes(),
        &[timestamp.to_string().as_bytes(), b".", body],
    ))
}

/// Verifies a `Stripe-Signature` header (`t=…,v1=…[,v1=…]`): the timestamp
/// is within [`STRIPE_TOLERANCE_SECS`] of `now_secs`, and some `v1` matches
/// under some secret (several secrets while one is rotated out).
pub fn verify_stripe(
    header: Option<&str>,
    body: &[u8],
    secrets: &[&str],
    now_secs: i64,
) -> Result<(), SignatureError> {
    const NAME: &str = "Stripe-Signature";
    let header = header.ok_or(SignatureError::Missing(NAME))?;
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for item in header.split(',') {
        let (key, value) = item
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed(NAME))?;
        match key {
            "t" => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed(NAME))?,
                )
            }
            // Other schemes (v0 in test mode) are ignored, as Stripe advises.
            "v1" => candidates.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed(NAME))?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed(NAME));
    }
    if (now_secs - timestamp).abs() > STRIPE_TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    let matched = secrets.iter().any(|secret| {
        let expected = stripe_signature(secret, timestamp, body);
        candidates
            .iter()
            .any(|c| bool::from(c.as_bytes().ct_eq(expected.as_bytes())))
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Lago's HMAC signature of `body`: base64 HMAC-SHA256 of the raw body
/// keyed by the organization's HMAC key.
pub fn lago_signature(secret: &str, body: &[u8]) -> String {
    STANDARD.encode(hmac_sha256(secret.as_bytes(), &[body]))
}

/// How a Lago webhook endpoint signs its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LagoMode {
    /// Base64 HMAC-SHA256 of the body with the organization's HMAC key.
    Hmac,
    /// An RS256 JWT of Lago's (its original mode, and its default).
    Jwt,
}

impl LagoMode {
    /// The mode `X-Lago-Signature-Algorithm` names. Without that header (Lago
    /// before it had two modes), a signature shaped as a JWT is one.
    pub fn of(
        algorithm: Option<&str>,
        signature: Option<&str>,
    ) -> Result<LagoMode, SignatureError> {
        match algorithm.map(str::trim) {
            Some(a) if a.eq_ignore_ascii_case("hmac") => Ok(LagoMode::Hmac),
            Some(a) if a.eq_ignore_ascii_case("jwt") => Ok(LagoMode::Jwt),
            Some(_) => Err(SignatureError::Malformed("X-Lago-Signature-Algorithm")),
            None if signature.is_some_and(|s| s.trim().split('.').count() == 3) => {
                Ok(LagoMode::Jwt)
            }
            None => Ok(LagoMode::Hmac),
        }
    }
}

/// Verifies `X-Lago-Signature` in Lago's `hmac` mode.
pub fn verify_lago(header: Option<&str>, body: &[u8], secret: &str) -> Result<(), SignatureError> {
    const NAME: &str = "X-Lago-Signature";
    let header = header.ok_or(SignatureError::Missing(NAME))?.trim();
    let expected = lago_signature(secret, body);
    if bool::from(header.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Lago's `jwt` mode: `X-Lago-Signature` is a JWT signed RS256 with Lago's
/// private key, whose `iss` is Lago's API URL and whose `data` is the body
/// exactly as sent.
#[derive(Clone)]
pub struct LagoJwt {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
}

impl std::fmt::Debug for LagoJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LagoJwt")
            .field("issuer", &self.validation.iss)
            .finish_non_exhaustive()
    }
}

/// Why Lago's public key was refused at start.
#[derive(Debug, thiserror::Error)]
#[error(
    "LAGO_WEBHOOK_PUBLIC_KEY is not an RSA public key in PEM, nor one base64-encoded as Lago's API returns it: {0}"
)]
pub struct LagoKeyError(String);

#[derive(serde::Deserialize)]
struct LagoClaims {
    data: String,
}

impl LagoJwt {
    /// From Lago's public key, as `GET /api/v1/webhooks/public_key` returns
    /// it (a PEM, base64-encoded) or as the PEM itself, and Lago's API URL
    /// (the issuer of its signatures; a trailing `/` is ignored).
    pub fn new(public_key: &str, api_url: &str) -> Result<LagoJwt, LagoKeyError> {
        let public_key = public_key.trim();
        let pem = if public_key.starts_with("-----BEGIN") {
            public_key.as_bytes().to_vec()
        } else {
            let compact: String = public_key.split_whitespace().collect();
            STANDARD
                .decode(compact)
                .map_err(|e| LagoKeyError(e.to_string()))?
        };
        let pem = String::from_utf8(pem).map_err(|e| LagoKeyError(e.to_string()))?;
        let rsa = rsa::RsaPublicKey::from_public_key_pem(&pem)
            .map_err(|e| e.to_string())
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(&pem).map_err(|e| e.to_string()))
            .map_err(LagoKeyError)?;
        let key = jsonwebtoken::DecodingKey::from_rsa_raw_components(
            &rsa.n().to_bytes_be(),
            &rsa.e().to_bytes_be(),
        );
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        // Lago's signatures carry no expiry: a replay is caught by
        // `X-Lago-Unique-Key` and the invoice, as in `hmac` mode.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss"]);
        let issuer = api_url.trim().trim_end_matches('/');
        validation.set_issuer(&[issuer.to_owned(), format!("{issuer}/")]);
        Ok(LagoJwt { key, validation })
    }

    /// Verifies a `jwt`-mode `X-Lago-Signature` against the raw body.
    pub fn verify(&self, header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        const NAME: &str = "X-Lago-Signature";
        let token = header.ok_or(SignatureError::Missing(NAME))?.trim();
        let claims = jsonwebtoken::decode::<LagoClaims>(token, &self.key, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature
                | jsonwebtoken::errors::ErrorKind::InvalidIssuer
                | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => SignatureError::Mismatch,
                _ => SignatureError::Malformed(NAME),
            })?
            .claims;
        // The body is public; what matters is that it is the one signed.
        if claims.data.as_bytes() == body {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

/// The key of a Standard Webhooks secret: the base64 after `whsec_`.
fn standard_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()
}

/// The `webhook-signature` value of a Standard Webhooks message:
/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed by the
/// base64-decoded part of the `whsec_` secret.
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = standard_key(secret)?;
    let mac = hmac_sha256(
        &key,
        &[
            id.as_bytes(),
            b".",
            timestamp.to_string().as_bytes(),
            b".",
            body,
        ],
    );
    Some(format!("v1,{}", STANDARD.encode(mac)))
}

/// Verifies a Standard Webhooks message as a receiver does: some
/// space-separated `v1,…` signature matches.
pub fn verify_standard(secret: &str, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let Some(expected) = standard_signature(secret, id, timestamp, body) else {
        return false;
    };
    header
        .split_whitespace()
        .any(|sig| bool::from(sig.as_bytes().ct_eq(expected.as_bytes())))
}

/// A new Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAGO_PUBLIC_KEY: &str = include_str!("../../../tests/fixtures/lago-webhook-public.pem");

    #[test]
    fn lagos_public_key_is_taken_as_pem_or_as_lagos_api_returns_it() {
        let base64_lines = STANDARD
            .encode(LAGO_PUBLIC_KEY)
            .as_bytes()
            .chunks(60)
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .collect::<Vec<_>>()
            .join("\n");

        assert!(LagoJwt::new(LAGO_PUBLIC_KEY, "https://api.getlago.com").is_ok());
        assert!(LagoJwt::new(&base64_lines, "https://api.getlago.com").is_ok());
        assert!(LagoJwt::new("not a key", "https://api.getlago.com").is_err());
        assert!(
            LagoJwt::new(
                &STANDARD.encode("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
                "x"
            )
            .is_err()
        );
    }

    #[test]
    fn the_lago_mode_is_the_algorithm_header_or_the_signatures_shape() {
        assert_eq!(LagoMode::of(Some(" HMAC "), None), Ok(LagoMode::Hmac));
        assert_eq!(LagoMode::of(Some("jwt"), Some("abc")), Ok(LagoMode::Jwt));
        assert_eq!(LagoMode::of(None, Some("a.b.c")), Ok(LagoMode::Jwt));
        assert_eq!(LagoMode::of(None, Some("c2lnbmF0dXJl")), Ok(LagoMode::Hmac));
        assert_eq!(
            LagoMode::of(Some("rsa"), Some("a.b.c")),
            Err(SignatureError::Malformed("X-Lago-Signature-Algorithm"))
        );
    }

    #[test]
    fn stripe_accepts_any_matching_v1_and_refuses_others() {
        let body = br#"{"id":"evt_1"}"#;
        let good = stripe_signature("whsec_new", 1000, body);
        let header = format!("t=1000,v1=deadbeef,v1={good}");
        assert_eq!(
            verify_stripe(Some(&header), body, &["whsec_new"], 1000),
            Ok(())
        );
        assert_eq!(
            verify_stripe(Some(&header), body, &["whsec_old"], 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_stripe(Some(&header), b"{}", &["whsec_new"], 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_stripe(Some(&header), body, &["whsec_new"], 1301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_stripe(Some(&header), body, &["whsec_new"], 699),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_stripe(Some("v1=abc"), body, &["whsec_new"], 1000),
            Err(SignatureError::Malformed("Stripe-Signature"))
        );
    }

    #[test]
    fn standard_signature_matches_the_spec_example() {
        // The example of the Standard Webhooks specification.
        let sig = standard_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn new_secrets_decode_to_32_bytes() {
        let secret = new_secret();
        assert_eq!(standard_key(&secret).map(|k| k.len()), Some(32));
    }
}
