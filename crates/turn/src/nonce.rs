//! Stateless nonces (coturn `stateless-nonce`, turn-anchors §3.6).
//!
//! A 401 must not cost the server memory: a spoofed Allocate flood would otherwise create
//! per-source state. The nonce carries its own issue time and a MAC binding it to the client
//! transport address, so any worker holding the shared `nonce_key` can check it:
//!
//! `nonce = hex8(issue_unix_secs) || hex16(HMAC-SHA1(nonce_key, ip || port || issue)[..8])`
//!
//! 24 ASCII characters, inside RFC 8489 §14.10's 763-byte limit and short enough to keep
//! the 401 small.

use std::net::SocketAddr;

use hmac::{Hmac, Mac};
use sha1::Sha1;

pub const NONCE_LEN: usize = 24;

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

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_into(src: &[u8], dst: &mut [u8]) {
    for (i, b) in src.iter().enumerate() {
        dst[2 * i] = HEX[usize::from(b >> 4)];
        dst[2 * i + 1] = HEX[usize::from(b & 15)];
    }
}

fn unhex(src: &[u8], dst: &mut [u8]) -> bool {
    if src.len() != dst.len() * 2 {
        return false;
    }
    for (i, pair) in src.chunks_exact(2).enumerate() {
        let (Some(hi), Some(lo)) = (
            (pair[0] as char).to_digit(16),
            (pair[1] as char).to_digit(16),
        ) else {
            return false;
        };
        // Only lower-case, so a nonce has exactly one spelling.
        if pair[0].is_ascii_uppercase() || pair[1].is_ascii_uppercase() {
            return false;
        }
        dst[i] = (hi * 16 + lo) as u8;
    }
    true
}

/// Issue a nonce for `client` at `now_unix`.
pub fn issue(key: &[u8; 32], client: SocketAddr, now_unix: u64) -> [u8; NONCE_LEN] {
    let issued = now_unix as u32;
    let mut out = [0u8; NONCE_LEN];
    hex_into(&issued.to_be_bytes(), &mut out[..8]);
    hex_into(&mac(key, client, issued), &mut out[8..]);
    out
}

/// Check a nonce the client sent back. `stale_after = None` means nonces never go stale.
pub fn check(
    key: &[u8; 32],
    client: SocketAddr,
    nonce: &[u8],
    now_unix: u64,
    stale_after: Option<u64>,
) -> NonceCheck {
    if nonce.len() != NONCE_LEN {
        return NonceCheck::Invalid;
    }
    let mut ts = [0u8; 4];
    let mut tag = [0u8; 8];
    if !unhex(&nonce[..8], &mut ts) || !unhex(&nonce[8..], &mut tag) {
        return NonceCheck::Invalid;
    }
    let issued = u32::from_be_bytes(ts);
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
        assert!(n.iter().all(|b| b.is_ascii_hexdigit()));
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
        bad[23] = if bad[23] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            check(&key, c, &bad, 1_700_000_000, Some(600)),
            NonceCheck::Invalid
        );
        assert_eq!(
            check(&key, c, b"short", 1_700_000_000, Some(600)),
            NonceCheck::Invalid
        );
        let mut upper = n;
        upper.make_ascii_uppercase();
        if upper != n {
            assert_eq!(
                check(&key, c, &upper, 1_700_000_000, Some(600)),
                NonceCheck::Invalid
            );
        }
        // From the future.
        assert_eq!(
            check(&key, c, &n, 1_699_999_000, Some(600)),
            NonceCheck::Invalid
        );
    }
}
