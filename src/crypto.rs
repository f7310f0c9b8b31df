//! Field encryption for secrets stored in the database (integration credentials).
//!
//! AES-256-GCM under a key derived from `PAYLOAD_SECRET` with HKDF-SHA256. The stored value is a
//! key-version byte, the 96-bit nonce, then the ciphertext with its tag, so keys can rotate.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

const KEY_VERSION: u8 = 1;

/// Encrypts and decrypts secret fields.
pub struct FieldCipher {
    cipher: Aes256Gcm,
}

impl FieldCipher {
    pub fn new(payload_secret: &str) -> FieldCipher {
        let hk = Hkdf::<Sha256>::new(Some(b"cityos-field-encryption"), payload_secret.as_bytes());
        let mut key = [0u8; 32];
        hk.expand(b"aes-256-gcm v1", &mut key)
            .expect("32 bytes is a valid HKDF output length");
        FieldCipher {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
        }
    }

    pub fn encrypt(&self, plaintext: &str) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(1 + nonce.len() + ct.len());
        out.push(KEY_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// The plaintext, or `None` when the value was not produced under this key.
    pub fn decrypt(&self, stored: &[u8]) -> Option<String> {
        if stored.len() < 1 + 12 + 16 || stored[0] != KEY_VERSION {
            return None;
        }
        let nonce = Nonce::from_slice(&stored[1..13]);
        let pt = self.cipher.decrypt(nonce, &stored[13..]).ok()?;
        String::from_utf8(pt).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let c = FieldCipher::new("a-payload-secret-of-sufficient-length");
        let stored = c.encrypt("whsec_abc");
        assert!(
            !stored.windows(9).any(|w| w == b"whsec_abc"),
            "plaintext must not appear"
        );
        assert_eq!(c.decrypt(&stored).as_deref(), Some("whsec_abc"));
        let mut tampered = stored.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(c.decrypt(&tampered), None);
        assert_eq!(
            FieldCipher::new("another-secret-entirely-0123456789").decrypt(&stored),
            None
        );
    }
}
