//! Stateless nonces (coturn `stateless-nonce`, turn-anchors §3.6).
//!
//! A 401 must not cost the server memory: a spoofed Allocate flood would otherwise create
//! per-source state. The nonce carries its own issue time and a MAC binding it to the client
//! transport address, so any worker holding the shared `nonce_key` can check it:
//!
//! `nonce = base64url(issue_unix_secs_be32 || HMAC-SHA1(nonce_key, ip || port || issue)[..8])`
//!
//! 16 ASCII characters (12 bytes, base64url without padding, so exactly one spelling):
//! inside RFC 8489 §14.10's 763-byte limit and as short as a 64-bit MAC allows, to keep the
//! 401 small (a forged nonce has a 2^-64 chance per try, and every try costs a round trip).

use std::net::SocketAddr;

use hmac::{Hmac, Mac};
use sha1::Sha1;

pub const NONCE_LEN: usize = 16;

/// The verdict on a client's NONCE.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NonceCheck {
    Valid,
    /// Well formed and ours, but older than `stale-nonce` → 438.
    Stale,
    /// Not a nonce this server (cluster) issued for this client → 438 as well: RFC 8489
    /// §9.2.4 says "If the NONCE is no longer valid, the server MUST generate an error
    /// response with an error code of 438", and libwebrtc only retries after a 438.
    Invalid,
}

fn mac(key: &[u8; 32], client: SocketAddr, issued: u32) -> [u8; 8] {
    let mut m = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    match client {
        SocketAddr::V4(a) => m.update(&a.ip().octets()),
        SocketAddr::V6(a) => m.update(&a.ip().octets()),
    }
    m.update(&client.port().to_be_bytes());
    m.update(&issued.to_be_bytes());
    let full = m.finalize().into_bytes();
    let mut out = [0u8; 8];
    out.copy_from_slice(&full[..8]);
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url of 12 bytes: 16 characters, no padding, no leftover bits.
fn encode(src: &[u8; 12]) -> [u8; NONCE_LEN] {
    let mut out = [0u8; NONCE_LEN];
    for (i, chunk) in src.chunks_exact(3).enumerate() {
        let v = u32::from(chunk[0]) << 16 | u32::from(chunk[1]) << 8 | u32::from(chunk[2]);
        for j in 0..4 {
            out[4 * i + j] = B64[((v >> (18 - 6 * j)) & 63) as usize];
        }
    }
    out
}

fn decode(src: &[u8]) -> Option<[u8; 12]> {
    if src.len() != NONCE_LEN {
        return None;
    }
    let mut out = [0u8; 12];
    for (i, quad) in src.chunks_exact(4).enumerate() {
        let mut v = 0u32;
        for &c in quad {
            let d = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'-' => 62,
                b'_' => 63,
                _ => return None,
            };
            v = v << 6 | u32::from(d);
        }
        out[3 * i..3 * i + 3].copy_from_slice(&v.to_be_bytes()[1..]);
    }
    Some(out)
}

/// Issue a nonce for `client` at `now_unix`.
pub fn issue(key: &[u8; 32], client: SocketAddr, now_unix: u64) -> [u8; NONCE_LEN] {
    let issued = now_unix as u32;
    let mut raw = [0u8; 12];
    raw[..4].copy_from_slice(&issued.to_be_bytes());
    raw[4..].copy_from_slice(&mac(key, client, issued));
    encode(&raw)
}

/// Check a nonce the client sent back. `stale_after = None` means nonces never go stale.
pub fn check(
    key: &[u8; 32],
    client: SocketAddr,
    nonce: &[u8],
    now_unix: u64,
    stale_after: Option<u64>,
) -> NonceCheck {
    let Some(raw) = decode(nonce) else {
        return NonceCheck::Invalid;
    };
    let issued = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
    let tag = &raw[4..];
    let want = mac(key, client, issued);
    // Constant time: the tag is a MAC.
    let diff = want
        .iter()
        .zip(tag.iter())
        .fold(0u8, |d, (a, b)| d | (a ^ b));
    if diff != 0 {
        return NonceCheck::Invalid;
    }
    // Serial arithmetic on the 32-bit issue time; a nonce from the future (clock skew
    // between nodes sharing the key) is accepted up to a minute ahead.
    let age = (now_unix as u32).wrapping_sub(issued) as i32;
    if age < -60 {
        return NonceCheck::Invalid;
    }
    match stale_after {
        Some(limit) if i64::from(age) > limit as i64 => NonceCheck::Stale,
        _ => NonceCheck::Valid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_staleness() {
        let key = [7u8; 32];
        let c: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let n = issue(&key, c, 1_700_000_000);
        assert_eq!(n.len(), 16);
        assert!(
            n.iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        );
        assert_eq!(decode(&n).map(|r| encode(&r)), Some(n));
        assert_eq!(
            check(&key, c, &n, 1_700_000_000, Some(600)),
            NonceCheck::Valid
        );
        assert_eq!(
            check(&key, c, &n, 1_700_000_600, Some(600)),
            NonceCheck::Valid
        );
        assert_eq!(
            check(&key, c, &n, 1_700_000_601, Some(600)),
            NonceCheck::Stale
        );
        assert_eq!(check(&key, c, &n, 1_800_000_000, None), NonceCheck::Valid);
        // Bound to the client address and key.
        let other: SocketAddr = "192.0.2.1:5001".parse().unwrap();
        assert_eq!(
            check(&key, other, &n, 1_700_000_000, Some(600)),
            NonceCheck::Invalid
        );
        assert_eq!(
            check(&[8; 32], c, &n, 1_700_000_000, Some(600)),
            NonceCheck::Invalid
        );
        let mut bad = n;
        bad[15] = if bad[15] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            check(&key, c, &bad, 1_700_000_000, Some(600)),
            NonceCheck::Invalid
        );
        assert_eq!(
            check(&key, c, b"short", 1_700_000_000, Some(600)),
            NonceCheck::Invalid
        );
        let mut other_alphabet = n;
        other_alphabet[0] = b'+';
        assert_eq!(
            check(&key, c, &other_alphabet, 1_700_000_000, Some(600)),
            NonceCheck::Invalid
        );
        // From the future.
        assert_eq!(
            check(&key, c, &n, 1_699_999_000, Some(600)),
            NonceCheck::Invalid
        );
    }
}
