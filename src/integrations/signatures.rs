//! One verifier per inbound signature scheme (integrations spec §3 and §5), all over the raw
//! body and all compared in constant time (`hmac`'s `verify_slice`). Each takes the list of
//! candidate secrets (endpoint secret, its predecessor during rotation, the env secret) and
//! answers which one matched.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8]) -> HmacSha256 {
    crate::util::hmac_sha256(key)
}

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    MissingSignature,
    NoSecret,
    Malformed,
    Mismatch,
    Stale,
}

impl Refusal {
    pub fn message(&self) -> &'static str {
        match self {
            Refusal::MissingSignature => "Missing webhook signature.",
            Refusal::NoSecret => "No webhook secret is configured for this source.",
            Refusal::Malformed => "Malformed webhook signature.",
            Refusal::Mismatch => "Invalid webhook signature.",
            Refusal::Stale => "Webhook timestamp is outside the replay window.",
        }
    }
}

/// The HMAC key of a Standard Webhooks secret: `whsec_` + base64 → the decoded bytes; any other
/// value is used as its UTF-8 bytes.
pub fn standard_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| STANDARD.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`.
pub fn standard_sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut m = mac(&standard_key(secret));
    m.update(format!("{id}.{timestamp}.").as_bytes());
    m.update(body);
    format!("v1,{}", STANDARD.encode(m.finalize().into_bytes()))
}

/// Standard Webhooks: any `v1,` entry of the space-separated header matching any secret.
/// Returns the index of the matching secret.
pub fn verify_standard(
    secrets: &[&str],
    id: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
) -> Result<usize, Refusal> {
    let sigs: Vec<Vec<u8>> = header
        .split(' ')
        .filter_map(|e| e.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .collect();
    if sigs.is_empty() {
        return Err(Refusal::Malformed);
    }
    for (i, secret) in secrets.iter().enumerate() {
        let mut m = mac(&standard_key(secret));
        m.update(id.as_bytes());
        m.update(b".");
        m.update(timestamp.as_bytes());
        m.update(b".");
        m.update(body);
        for sig in &sigs {
            if m.clone().verify_slice(sig).is_ok() {
                return Ok(i);
            }
        }
    }
    Err(Refusal::Mismatch)
}

/// The original orchestrator's Medusa format `t=<unix s>,v1=<hex>` over `{t}.{body}`, keyed with
/// the secret's UTF-8 bytes. Returns (matching secret index, t).
pub fn verify_medusa_legacy(secrets: &[&str], body: &[u8], header: &str) -> Result<(usize, i64), Refusal> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("t=") {
            t = v.parse::<i64>().ok();
        } else if let Some(v) = part.strip_prefix("v1=") {
            if let Ok(bytes) = hex::decode(v) {
                sigs.push(bytes);
            }
        }
    }
    let (Some(t), false) = (t, sigs.is_empty()) else {
        return Err(Refusal::Malformed);
    };
    for (i, secret) in secrets.iter().enumerate() {
        let mut m = mac(secret.as_bytes());
        m.update(format!("{t}.").as_bytes());
        m.update(body);
        for sig in &sigs {
            if m.clone().verify_slice(sig).is_ok() {
                return Ok((i, t));
            }
        }
    }
    Err(Refusal::Mismatch)
}

/// `t=<t>,v1=<hex>` for the original Medusa format (tests, tools).
pub fn medusa_legacy_sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut m = mac(secret.as_bytes());
    m.update(format!("{t}.").as_bytes());
    m.update(body);
    format!("t={t},v1={}", hex::encode(m.finalize().into_bytes()))
}

/// Fleetbase `Signature: <lowercase hex HMAC-SHA256(secret, body)>`.
pub fn verify_fleetbase(secrets: &[&str], body: &[u8], header: &str) -> Result<usize, Refusal> {
    let sig = hex::decode(header.trim()).map_err(|_| Refusal::Malformed)?;
    verify_plain(secrets, body, &sig)
}

pub fn fleetbase_sign(secret: &str, body: &[u8]) -> String {
    let mut m = mac(secret.as_bytes());
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

/// ERPNext/Frappe `X-Frappe-Webhook-Signature: <base64 HMAC-SHA256(secret, body)>`.
pub fn verify_erpnext(secrets: &[&str], body: &[u8], header: &str) -> Result<usize, Refusal> {
    let sig = STANDARD.decode(header.trim()).map_err(|_| Refusal::Malformed)?;
    verify_plain(secrets, body, &sig)
}

pub fn erpnext_sign(secret: &str, body: &[u8]) -> String {
    let mut m = mac(secret.as_bytes());
    m.update(body);
    STANDARD.encode(m.finalize().into_bytes())
}

fn verify_plain(secrets: &[&str], body: &[u8], sig: &[u8]) -> Result<usize, Refusal> {
    for (i, secret) in secrets.iter().enumerate() {
        let mut m = mac(secret.as_bytes());
        m.update(body);
        if m.verify_slice(sig).is_ok() {
            return Ok(i);
        }
    }
    Err(Refusal::Mismatch)
}

/// Equality of two secrets in time independent of where they differ (cron secret).
pub fn secret_eq(a: &str, b: &str) -> bool {
    // Compare MACs of both under a fixed key: equal lengths, constant-time verify.
    let mut m = mac(b"cityos-secret-compare");
    m.update(a.as_bytes());
    let tag = m.finalize().into_bytes();
    let mut m = mac(b"cityos-secret-compare");
    m.update(b.as_bytes());
    m.verify_slice(&tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from `python3 ../shared/recipes/sign-webhook.py vectors`.
    const MEDUSA_BODY: &str = r#"{"type":"product.updated","timestamp":"2026-11-24T10:19:17.689Z","data":{"id":"prod_01M86H29K34E9H744CVCB6KTD9"},"metadata":{"eventGroupId":"01M86H29JS5V292YFSPV7HTN2X"}}"#;
    const FLEETBASE_BODY: &str = r#"{"id":"event_6743a1b2c3d4e","api_version":"2024-03-12","event":"order.dispatched","created_at":"2026-11-24 10:00:00","data":{"id":"order_8x2kQd1","internal_id":"ORD-1001","status":"dispatched","tracking_number":"track_2LmQ9x","notes":"Caf\u00e9 \/ back door","meta":{"medusa_order_id":"order_01M86H2A0000000000000000","tenant_id":"t1"},"driver_assigned":"driver_9aF2kLq","dispatched_at":"2026-11-24 10:00:00"}}"#;
    const ERP_BODY: &str = r#"{"doctype": "Sales Order", "name": "SAL-ORD-2026-00001", "modified": "2026-11-24 10:00:00.123456", "status": "To Deliver and Bill", "grand_total": 119.0, "custom_tenant_id": "t1", "custom_medusa_order_id": "order_01M86H2A0000000000000000"}"#;

    #[test]
    fn standard_webhooks_spec_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            standard_sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            sig
        );
        assert_eq!(
            verify_standard(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body, sig),
            Ok(0)
        );
    }

    #[test]
    fn medusa_subscriber_vector_and_rotation() {
        let secret = "whsec_Y2l0eW9zLW1lZHVzYS10ZXN0LXNlY3JldC0zMmJ5dGU=";
        let id = "msg_01M86H29KZ7Q4T2W0Y3X5V6B8N";
        let sig = "v1,GXrF8A/p1JPM052Ym477EDW88nrkWiObO57ACjDuhqU=";
        assert_eq!(standard_sign(secret, id, 1795515557, MEDUSA_BODY.as_bytes()), sig);
        // Several entries (rotation on the sender's side), and several secrets on ours.
        let header = format!("v1,AAAA {sig}");
        assert_eq!(
            verify_standard(
                &["whsec_b3RoZXI=", secret],
                id,
                "1795515557",
                MEDUSA_BODY.as_bytes(),
                &header
            ),
            Ok(1)
        );
        let mut altered = MEDUSA_BODY.as_bytes().to_vec();
        altered[10] ^= 1;
        assert_eq!(
            verify_standard(&[secret], id, "1795515557", &altered, sig),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            verify_standard(&[secret], id, "1795515558", MEDUSA_BODY.as_bytes(), sig),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            verify_standard(&[secret], id, "1795515557", MEDUSA_BODY.as_bytes(), "v2,abc"),
            Err(Refusal::Malformed)
        );
    }

    #[test]
    fn medusa_original_format_vector() {
        let body = br#"{"event":"product.updated","data":{"id":"prod_01"}}"#;
        let header = "t=1795515311,v1=b31ecd9c43a8b780e5b7e1993b8668f6ed3c9ed7a9f8c6360fad1982737aadea";
        assert_eq!(
            medusa_legacy_sign("medusa-example-webhook-secret", 1795515311, body),
            header
        );
        assert_eq!(
            verify_medusa_legacy(&["medusa-example-webhook-secret"], body, header),
            Ok((0, 1795515311))
        );
        assert_eq!(
            verify_medusa_legacy(&["other"], body, header),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            verify_medusa_legacy(&["medusa-example-webhook-secret"], body, "v1=00"),
            Err(Refusal::Malformed)
        );
    }

    #[test]
    fn fleetbase_vector() {
        let sig = "95986c005ad31ba4782647aab42931913e0e2d64ed8c9fb043d8d966e52b26df";
        assert_eq!(
            fleetbase_sign("flb_test_secret_7f3a9c", FLEETBASE_BODY.as_bytes()),
            sig
        );
        assert_eq!(
            verify_fleetbase(
                &["internal", "flb_test_secret_7f3a9c"],
                FLEETBASE_BODY.as_bytes(),
                sig
            ),
            Ok(1)
        );
        assert_eq!(
            verify_fleetbase(&["internal"], FLEETBASE_BODY.as_bytes(), sig),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            verify_fleetbase(&["x"], FLEETBASE_BODY.as_bytes(), "zz"),
            Err(Refusal::Malformed)
        );
    }

    #[test]
    fn erpnext_vector() {
        let sig = "i+rzN1KWObBPBK2l0f1/9+13FsWDAIlQp8DPkT1KF2w=";
        assert_eq!(erpnext_sign("erp_test_secret_5b1d", ERP_BODY.as_bytes()), sig);
        assert_eq!(
            verify_erpnext(&["erp_test_secret_5b1d"], ERP_BODY.as_bytes(), sig),
            Ok(0)
        );
        let altered = ERP_BODY.replace("119.0", "119.1");
        assert_eq!(
            verify_erpnext(&["erp_test_secret_5b1d"], altered.as_bytes(), sig),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn secret_comparison() {
        assert!(secret_eq("abc", "abc"));
        assert!(!secret_eq("abc", "abd"));
        assert!(!secret_eq("abc", "abcd"));
    }
}
