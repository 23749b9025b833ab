//! Webhook signatures: Stripe's `Stripe-Signature`, Lago's HMAC
//! `X-Lago-Signature`, and the Standard Webhooks `webhook-signature` that
//! Tollgate's own deliveries carry. Every comparison is constant-time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
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

/// Verifies `X-Lago-Signature` (Lago's `hmac` mode; `jwt` mode is refused).
pub fn verify_lago(
    header: Option<&str>,
    algorithm: Option<&str>,
    body: &[u8],
    secret: &str,
) -> Result<(), SignatureError> {
    const NAME: &str = "X-Lago-Signature";
    if algorithm.is_some_and(|a| !a.trim().eq_ignore_ascii_case("hmac")) {
        return Err(SignatureError::Malformed("X-Lago-Signature-Algorithm"));
    }
    let header = header.ok_or(SignatureError::Missing(NAME))?.trim();
    let expected = lago_signature(secret, body);
    if bool::from(header.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
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
