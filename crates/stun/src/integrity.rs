//! Keys and MACs: MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 §14.5),
//! MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6), FINGERPRINT (CRC-32, §14.7),
//! long-term keys (§9.2.2, §18.5.1) and USERHASH (§14.4).

use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// RFC 8489 §14.7: the CRC-32 "XOR'ed with the 32-bit value 0x5354554e".
pub const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// Length of the MESSAGE-INTEGRITY value (an HMAC-SHA1).
pub const MESSAGE_INTEGRITY_LEN: usize = 20;
/// Full length of the MESSAGE-INTEGRITY-SHA256 value the builder writes.
pub const MESSAGE_INTEGRITY_SHA256_LEN: usize = 32;

/// Which integrity attribute protects a message.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Hash)]
pub enum Integrity {
    /// MESSAGE-INTEGRITY (HMAC-SHA1).
    Sha1,
    /// MESSAGE-INTEGRITY-SHA256.
    Sha256,
}

/// One entry of PASSWORD-ALGORITHMS, or the PASSWORD-ALGORITHM value
/// (RFC 8489 §14.11, §14.12).
#[derive(Copy, Clone, PartialEq, Eq, Debug, Hash)]
pub struct PasswordAlgorithm<'a> {
    /// Algorithm number (IANA "STUN Password Algorithms").
    pub algorithm: u16,
    /// Algorithm parameters (unpadded); empty for MD5 and SHA-256.
    pub params: &'a [u8],
}

impl PasswordAlgorithm<'_> {
    /// RFC 8489 §18.5.1.1.
    pub const MD5: u16 = 0x0001;
    /// RFC 8489 §18.5.1.2.
    pub const SHA256: u16 = 0x0002;
}

/// Long-term credential key, RFC 8489 §9.2.2:
/// `key = MD5(username ":" OpaqueString(realm) ":" OpaqueString(password))`.
/// The caller applies OpaqueString (coturn does not; neither do clients in practice).
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    h.finalize().into()
}

/// Long-term key for PASSWORD-ALGORITHM SHA-256, RFC 8489 §18.5.1.2:
/// `key = SHA-256(username ":" OpaqueString(realm) ":" OpaqueString(password))`.
pub fn long_term_key_sha256(username: &str, realm: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    h.finalize().into()
}

/// USERHASH value, RFC 8489 §14.4: `SHA-256(OpaqueString(username) ":" OpaqueString(realm))`.
pub fn userhash(username: &str, realm: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.finalize().into()
}

/// The bytes a MAC covers: the message up to `end` minus the header's
/// length field, which the caller replaces. RFC 8489 §14.5: "the length field
/// of the STUN message header is adjusted to point to the end of the
/// MESSAGE-INTEGRITY attribute". `None` if `end` is outside `msg` or inside
/// the length field.
fn covered(msg: &[u8], end: usize) -> Option<(&[u8], &[u8])> {
    Some((msg.get(..2)?, msg.get(4..end)?))
}

pub(crate) fn hmac_sha1(key: &[u8], msg: &[u8], end: usize, len_field: u16) -> Option<[u8; 20]> {
    let (typ, rest) = covered(msg, end)?;
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).ok()?;
    mac.update(typ);
    mac.update(&len_field.to_be_bytes());
    mac.update(rest);
    Some(mac.finalize().into_bytes().into())
}

pub(crate) fn hmac_sha256(key: &[u8], msg: &[u8], end: usize, len_field: u16) -> Option<[u8; 32]> {
    let (typ, rest) = covered(msg, end)?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    mac.update(typ);
    mac.update(&len_field.to_be_bytes());
    mac.update(rest);
    Some(mac.finalize().into_bytes().into())
}

/// FINGERPRINT value for the message bytes preceding the attribute (whose
/// header length field already counts the FINGERPRINT attribute).
pub(crate) fn fingerprint(msg_before_fp: &[u8]) -> u32 {
    crc32fast::hash(msg_before_fp) ^ FINGERPRINT_XOR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_term_key_matches_md5_of_joined_string() {
        // `echo -n user:realm:pass | md5sum` = 8493fbc53ba582fb4c044c456bdc40eb.
        let k = long_term_key("user", "realm", "pass");
        let expected = [
            0x84, 0x93, 0xfb, 0xc5, 0x3b, 0xa5, 0x82, 0xfb, 0x4c, 0x04, 0x4c, 0x45, 0x6b, 0xdc,
            0x40, 0xeb,
        ];
        assert_eq!(k, expected);
        assert_ne!(k, long_term_key("user", "realm", "pasS"));
    }

    #[test]
    fn covered_rejects_out_of_range() {
        assert!(hmac_sha1(b"k", &[0u8; 10], 20, 0).is_none());
        assert!(hmac_sha1(b"k", &[0u8; 20], 3, 0).is_none());
        assert!(hmac_sha1(b"k", &[0u8; 20], 20, 0).is_some());
    }
}
