//! Small helpers shared by several modules.

use rand::RngCore;

/// `n` random bytes from the OS generator, as lower-case hex.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Formats a timestamp the way Payload sends it: UTC, three fractional digits, `Z`.
pub fn format_timestamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Lower-case hex SHA-256 of `bytes`.
/// An HMAC-SHA256 keyed with `key`. HMAC accepts keys of any length (long ones are hashed),
/// so this cannot fail; the one `expect` for it lives here.
pub fn hmac_sha256(key: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    use hmac::Mac;
    hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Base64url without padding (JWT segments).
pub fn base64url_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 3);
    for chunk in bytes.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..=chunk.len() {
            out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Decodes base64url (padding optional); `None` on any other character.
pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            b'=' => continue,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// PostgreSQL's JSON form of a UTC timestamp (`2026-11-24T10:15:11.665123+00:00`) in Payload's
/// form (`2026-11-24T10:15:11.665Z`, milliseconds truncated as JavaScript dates hold them).
pub fn payload_timestamp(pg: &str) -> Option<String> {
    let (main, offset) = match pg.len() {
        n if n > 6 && (pg.ends_with("+00:00") || pg.ends_with("-00:00")) => (&pg[..n - 6], true),
        n if n > 1 && pg.ends_with('Z') => (&pg[..n - 1], true),
        _ => (pg, false),
    };
    if !offset || main.len() < 19 || main.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    let (secs, frac) = match main.split_once('.') {
        Some((s, f)) => (s, f),
        None => (main, ""),
    };
    if secs.len() != 19 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut ms: String = frac.chars().take(3).collect();
    while ms.len() < 3 {
        ms.push('0');
    }
    Some(format!("{secs}.{ms}Z"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64url_round_trips() {
        for input in [&b""[..], b"a", b"ab", b"abc", b"\xff\xfe\x00{\"alg\":\"RS256\"}"] {
            assert_eq!(
                super::base64url_decode(&super::base64url_encode(input)).unwrap(),
                input
            );
        }
        assert_eq!(super::base64url_encode(b"{\"a\":1}"), "eyJhIjoxfQ");
        assert_eq!(super::base64url_decode("not base64!"), None);
    }

    #[test]
    fn postgres_timestamps_become_payload_timestamps() {
        use super::payload_timestamp as p;
        assert_eq!(
            p("2026-11-24T10:15:11.665123+00:00").as_deref(),
            Some("2026-11-24T10:15:11.665Z")
        );
        assert_eq!(
            p("2026-11-24T10:15:11+00:00").as_deref(),
            Some("2026-11-24T10:15:11.000Z")
        );
        assert_eq!(
            p("2026-11-24T10:15:11.5+00:00").as_deref(),
            Some("2026-11-24T10:15:11.500Z")
        );
        assert_eq!(
            p("2026-11-24T10:15:11.665Z").as_deref(),
            Some("2026-11-24T10:15:11.665Z")
        );
        assert_eq!(p("2026-11-24T13:15:11.665+03:00"), None, "only UTC is converted");
        assert_eq!(p("not a date"), None);
    }
}
