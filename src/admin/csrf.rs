//! CSRF tokens: an HMAC of the session id with a key derived from the server secret. Every
//! admin POST carries it in a hidden `_csrf` field, checked before anything else happens.

use hmac::Mac;

/// The token for a session.
pub fn token(secret: &str, session: &str) -> String {
    let mut mac = crate::util::hmac_sha256(format!("cityos-admin-csrf:{secret}").as_bytes());
    mac.update(session.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `presented` is the session's token (constant time).
pub fn verify(secret: &str, session: &str, presented: &str) -> bool {
    let Ok(bytes) = hex::decode(presented) else {
        return false;
    };
    let mut mac = crate::util::hmac_sha256(format!("cityos-admin-csrf:{secret}").as_bytes());
    mac.update(session.as_bytes());
    mac.verify_slice(&bytes).is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_token_belongs_to_its_session_and_secret() {
        let t = super::token("s", "session-1");
        assert!(super::verify("s", "session-1", &t));
        assert!(!super::verify("s", "session-2", &t));
        assert!(!super::verify("other", "session-1", &t));
        assert!(!super::verify("s", "session-1", "zz"));
    }
}
