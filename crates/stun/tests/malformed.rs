//! Bad input: every rejection rule of `Message::parse`, the integrity
//! ordering rules, typed-getter errors and builder limits.

use std::net::SocketAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchyard_stun::{
    AddressFamily, AttrError, BuildError, Class, IntegrityError, Message, MessageBuilder,
    MessageType, Method, ParseError, TransactionId, attr,
};

const TID: TransactionId = TransactionId([7; 12]);
const KEY: &[u8] = b"secret-key";

fn allocate() -> MessageType {
    MessageType::new(Class::Request, Method::ALLOCATE)
}

/// A small valid message: USERNAME, LIFETIME, MI, FINGERPRINT.
fn sample() -> Vec<u8> {
    let mut buf = [0u8; 256];
    let mut b = MessageBuilder::new(&mut buf, allocate(), TID).unwrap();
    b.add(attr::USERNAME, b"alice").unwrap();
    b.add_u32(attr::LIFETIME, 600).unwrap();
    b.add_message_integrity(KEY).unwrap();
    b.add_fingerprint().unwrap();
    let n = b.finish();
    buf[..n].to_vec()
}

/// Appends a raw TLV and fixes the header length (no integrity recomputed).
fn append_raw(msg: &mut Vec<u8>, typ: u16, value: &[u8]) {
    msg.extend_from_slice(&typ.to_be_bytes());
    msg.extend_from_slice(&(value.len() as u16).to_be_bytes());
    msg.extend_from_slice(value);
    while msg.len() % 4 != 0 {
        msg.push(0);
    }
    let body = (msg.len() - 20) as u16;
    msg[2..4].copy_from_slice(&body.to_be_bytes());
}

fn header_only(body_len: u16) -> Vec<u8> {
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&body_len.to_be_bytes());
    m.extend_from_slice(&0x2112_a442u32.to_be_bytes());
    m.extend_from_slice(&TID.0);
    m
}

#[test]
fn sample_is_valid() {
    let m = sample();
    let msg = Message::parse(&m).unwrap();
    assert_eq!(msg.username(), Ok(Some("alice")));
    assert_eq!(msg.lifetime(), Ok(Some(600)));
    assert_eq!(msg.verify_integrity(KEY), Ok(()));
    assert!(msg.has_fingerprint());
}

#[test]
fn truncated_header() {
    let m = sample();
    for n in 0..20 {
        assert_eq!(
            Message::parse(&m[..n]).unwrap_err(),
            ParseError::TruncatedHeader
        );
    }
}

#[test]
fn length_not_multiple_of_four() {
    let mut m = header_only(0);
    m[3] = 2;
    m.extend_from_slice(&[0, 0]);
    assert_eq!(Message::parse(&m).unwrap_err(), ParseError::UnalignedLength);
}

#[test]
fn length_exceeds_buffer_and_trailing_bytes() {
    let m = sample();
    assert_eq!(
        Message::parse(&m[..m.len() - 4]).unwrap_err(),
        ParseError::LengthExceedsBuffer
    );
    let mut longer = m.clone();
    longer.extend_from_slice(&[0; 4]);
    assert_eq!(
        Message::parse(&longer).unwrap_err(),
        ParseError::TrailingBytes
    );
}

#[test]
fn attribute_overrun() {
    // A USERNAME claiming 16 bytes inside an 8-byte body.
    let mut m = header_only(8);
    m.extend_from_slice(&[0x00, 0x06, 0x00, 0x10, b'a', b'b', b'c', b'd']);
    assert_eq!(
        Message::parse(&m).unwrap_err(),
        ParseError::AttributeOverrun {
            typ: attr::USERNAME
        }
    );
    // Value fits but its padding does not.
    let mut m = header_only(8);
    m.extend_from_slice(&[0x00, 0x06, 0x00, 0x05, b'a', b'b', b'c', b'd']);
    assert_eq!(
        Message::parse(&m).unwrap_err(),
        ParseError::AttributeOverrun {
            typ: attr::USERNAME
        }
    );
}

#[test]
fn bad_magic_cookie_and_top_bits() {
    let mut m = sample();
    m[4] ^= 1;
    assert_eq!(Message::parse(&m).unwrap_err(), ParseError::BadMagicCookie);
    for top in [0x40u8, 0x80, 0xc0] {
        let mut m = sample();
        m[0] |= top;
        assert_eq!(Message::parse(&m).unwrap_err(), ParseError::NotStun);
    }
}

#[test]
fn bad_fingerprint() {
    let mut m = sample();
    let last = m.len() - 1;
    m[last] ^= 0x01;
    assert_eq!(
        Message::parse(&m).unwrap_err(),
        ParseError::FingerprintMismatch
    );
    // A changed byte elsewhere also breaks the CRC.
    let mut m = sample();
    m[25] ^= 0x20;
    assert_eq!(
        Message::parse(&m).unwrap_err(),
        ParseError::FingerprintMismatch
    );
}

#[test]
fn fingerprint_bad_length() {
    let mut m = header_only(0);
    append_raw(&mut m, attr::FINGERPRINT, &[0; 8]);
    assert_eq!(
        Message::parse(&m).unwrap_err(),
        ParseError::BadFingerprintLength
    );
}

#[test]
fn fingerprint_not_last() {
    let mut m = sample();
    append_raw(&mut m, attr::SOFTWARE, b"late");
    assert_eq!(
        Message::parse(&m).unwrap_err(),
        ParseError::FingerprintNotLast
    );
    // Even an attribute that would otherwise be ignored.
    let mut m = sample();
    append_raw(&mut m, attr::MESSAGE_INTEGRITY, &[0; 20]);
    assert_eq!(
        Message::parse(&m).unwrap_err(),
        ParseError::FingerprintNotLast
    );
}

#[test]
fn builder_refuses_attributes_after_fingerprint() {
    let mut buf = [0u8; 128];
    let mut b = MessageBuilder::new(&mut buf, allocate(), TID).unwrap();
    b.add_fingerprint().unwrap();
    assert_eq!(
        b.add_u32(attr::LIFETIME, 1),
        Err(BuildError::AfterFingerprint)
    );
    assert_eq!(
        b.add_message_integrity(KEY),
        Err(BuildError::AfterFingerprint)
    );
    let n = b.finish();
    assert!(Message::parse(&buf[..n]).unwrap().has_fingerprint());
}

#[test]
fn message_integrity_wrong_key_and_tamper() {
    let mut buf = [0u8; 256];
    let mut b = MessageBuilder::new(&mut buf, allocate(), TID).unwrap();
    b.add(attr::USERNAME, b"alice").unwrap();
    b.add_message_integrity(KEY).unwrap();
    let n = b.finish();
    let m = buf[..n].to_vec();
    let msg = Message::parse(&m).unwrap();
    assert_eq!(msg.verify_integrity(KEY), Ok(()));
    assert_eq!(
        msg.verify_integrity(b"secret-kez"),
        Err(IntegrityError::Mismatch)
    );
    assert_eq!(msg.verify_integrity(b""), Err(IntegrityError::Mismatch));
    let mut tampered = m.clone();
    tampered[25] ^= 1; // inside USERNAME
    let msg = Message::parse(&tampered).unwrap();
    assert_eq!(msg.verify_integrity(KEY), Err(IntegrityError::Mismatch));
    // Tampering with the transaction id is caught too.
    let mut tampered = m.clone();
    tampered[10] ^= 1;
    let msg = Message::parse(&tampered).unwrap();
    assert_eq!(msg.verify_integrity(KEY), Err(IntegrityError::Mismatch));
    // No MI at all.
    let plain = header_only(0);
    let msg = Message::parse(&plain).unwrap();
    assert_eq!(msg.verify_integrity(KEY), Err(IntegrityError::Missing));
    assert_eq!(msg.integrity(), None);
}

#[test]
fn message_integrity_bad_length() {
    let mut m = header_only(0);
    append_raw(&mut m, attr::MESSAGE_INTEGRITY, &[0; 16]);
    assert_eq!(
        Message::parse(&m).unwrap_err(),
        ParseError::BadIntegrityLength {
            typ: attr::MESSAGE_INTEGRITY
        }
    );
    for bad in [12usize, 18, 36] {
        let mut m = header_only(0);
        append_raw(&mut m, attr::MESSAGE_INTEGRITY_SHA256, &vec![0; bad]);
        assert_eq!(
            Message::parse(&m).unwrap_err(),
            ParseError::BadIntegrityLength {
                typ: attr::MESSAGE_INTEGRITY_SHA256
            },
            "{bad}"
        );
    }
}

#[test]
fn attributes_after_message_integrity_are_ignored() {
    let mut buf = [0u8; 256];
    let mut b = MessageBuilder::new(&mut buf, allocate(), TID).unwrap();
    b.add(attr::USERNAME, b"alice").unwrap();
    b.add_message_integrity(KEY).unwrap();
    let n = b.finish();
    let mut m = buf[..n].to_vec();
    append_raw(&mut m, attr::SOFTWARE, b"injected");
    append_raw(&mut m, attr::USERNAME, b"mallory");
    append_raw(&mut m, attr::LIFETIME, &[0, 0, 0, 1]);
    let msg = Message::parse(&m).unwrap();
    assert_eq!(msg.software(), Ok(None));
    assert_eq!(msg.username(), Ok(Some("alice")));
    assert_eq!(msg.lifetime(), Ok(None));
    assert_eq!(msg.verify_integrity(KEY), Ok(()));
    let types: Vec<u16> = msg.attributes().map(|a| a.typ).collect();
    assert_eq!(types, [attr::USERNAME, attr::MESSAGE_INTEGRITY]);
    // An unknown comprehension-required attribute after MI is ignored too.
    append_raw(&mut m, 0x0077, b"x");
    let msg = Message::parse(&m).unwrap();
    let known = [attr::USERNAME, attr::MESSAGE_INTEGRITY];
    assert_eq!(msg.unknown_comprehension_required(&known).count(), 0);
}

#[test]
fn sha256_after_sha1_is_seen_and_sha1_after_sha256_ignored() {
    let mut buf = [0u8; 256];
    let mut b = MessageBuilder::new(&mut buf, allocate(), TID).unwrap();
    b.add(attr::USERNAME, b"alice").unwrap();
    b.add_message_integrity(KEY).unwrap();
    b.add_message_integrity_sha256(KEY).unwrap();
    b.add_fingerprint().unwrap();
    let n = b.finish();
    let msg = Message::parse(&buf[..n]).unwrap();
    assert_eq!(msg.verify_integrity(KEY), Ok(()));
    assert_eq!(msg.verify_integrity_sha256(KEY), Ok(()));
    assert_eq!(msg.integrity(), Some(switchyard_stun::Integrity::Sha256));
    assert!(msg.has_message_integrity() && msg.has_message_integrity_sha256());

    let mut buf = [0u8; 256];
    let mut b = MessageBuilder::new(&mut buf, allocate(), TID).unwrap();
    b.add(attr::USERNAME, b"alice").unwrap();
    b.add_message_integrity_sha256(KEY).unwrap();
    let n = b.finish();
    let mut m = buf[..n].to_vec();
    append_raw(&mut m, attr::MESSAGE_INTEGRITY, &[0; 20]);
    let msg = Message::parse(&m).unwrap();
    assert!(!msg.has_message_integrity());
    assert_eq!(msg.verify_integrity(KEY), Err(IntegrityError::Missing));
    assert_eq!(msg.verify_integrity_sha256(KEY), Ok(()));
}

#[test]
fn truncated_sha256_verifies_with_independent_hmac() {
    // RFC 8489 §14.6 allows 16..=32 bytes. Build the prefix, then compute the
    // MAC here with the hmac crate directly over the length-adjusted header.
    let mut m = header_only(0);
    append_raw(&mut m, attr::USERNAME, b"bob");
    for trunc in [16usize, 20, 24, 28] {
        let mut msg = m.clone();
        let body = (msg.len() - 20 + 4 + trunc) as u16;
        msg[2..4].copy_from_slice(&body.to_be_bytes());
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(KEY).unwrap();
        mac.update(&msg);
        let full = mac.finalize().into_bytes();
        append_raw(&mut msg, attr::MESSAGE_INTEGRITY_SHA256, &full[..trunc]);
        let parsed = Message::parse(&msg).unwrap();
        assert_eq!(parsed.verify_integrity_sha256(KEY), Ok(()), "{trunc}");
        assert_eq!(
            parsed.verify_integrity_sha256(b"other"),
            Err(IntegrityError::Mismatch)
        );
    }
}

#[test]
fn typed_getter_errors() {
    let mut m = header_only(0);
    append_raw(&mut m, attr::LIFETIME, &[0, 0, 1]);
    append_raw(&mut m, attr::USERNAME, &[0xff, 0xfe]);
    append_raw(&mut m, attr::ERROR_CODE, &[0, 0, 7, 1]);
    append_raw(&mut m, attr::REQUESTED_ADDRESS_FAMILY, &[3, 0, 0, 0]);
    append_raw(&mut m, attr::XOR_PEER_ADDRESS, &[0, 1, 0]);
    append_raw(&mut m, attr::UNKNOWN_ATTRIBUTES, &[0, 1, 0]);
    append_raw(&mut m, attr::EVEN_PORT, &[]);
    append_raw(&mut m, attr::PASSWORD_ALGORITHMS, &[0, 1, 0, 8, 0]);
    append_raw(&mut m, attr::PASSWORD_ALGORITHM, &[0, 2, 0, 0, 0, 0, 0, 0]);
    append_raw(&mut m, attr::REALM, &vec![b'a'; 764]);
    append_raw(&mut m, attr::CHANNEL_NUMBER, &[0x40, 0]);
    let msg = Message::parse(&m).unwrap();
    assert_eq!(
        msg.lifetime(),
        Err(AttrError::BadLength {
            typ: attr::LIFETIME
        })
    );
    assert_eq!(
        msg.username(),
        Err(AttrError::BadUtf8 {
            typ: attr::USERNAME
        })
    );
    assert_eq!(
        msg.error_code(),
        Err(AttrError::BadValue {
            typ: attr::ERROR_CODE
        })
    );
    assert_eq!(
        msg.requested_address_family(),
        Err(AttrError::UnknownFamily {
            typ: attr::REQUESTED_ADDRESS_FAMILY,
            family: 3
        })
    );
    let peers: Vec<_> = msg.xor_peer_addresses().collect();
    assert_eq!(
        peers,
        [Err(AttrError::BadLength {
            typ: attr::XOR_PEER_ADDRESS
        })]
    );
    assert!(msg.unknown_attributes().is_err());
    assert_eq!(
        msg.even_port(),
        Err(AttrError::BadLength {
            typ: attr::EVEN_PORT
        })
    );
    assert!(msg.password_algorithms().is_err());
    assert!(msg.password_algorithm().is_err());
    assert_eq!(msg.realm(), Err(AttrError::BadLength { typ: attr::REALM }));
    assert_eq!(
        msg.channel_number(),
        Err(AttrError::BadLength {
            typ: attr::CHANNEL_NUMBER
        })
    );
    // Absent attributes are Ok(None).
    assert_eq!(msg.nonce(), Ok(None));
    assert_eq!(msg.xor_relayed_address(), Ok(None));
    assert!(!msg.dont_fragment());

    let mut m = header_only(0);
    append_raw(&mut m, attr::ERROR_CODE, &[0, 0, 4, 100]);
    let msg = Message::parse(&m).unwrap();
    assert_eq!(
        msg.error_code(),
        Err(AttrError::BadValue {
            typ: attr::ERROR_CODE
        })
    );
}

#[test]
fn unknown_comprehension_required_reports_each_once() {
    let mut m = header_only(0);
    append_raw(&mut m, attr::USERNAME, b"u");
    append_raw(&mut m, 0x0030, b"");
    append_raw(&mut m, 0x8077, b""); // comprehension-optional: never reported
    append_raw(&mut m, 0x0031, b"");
    append_raw(&mut m, 0x0030, b"");
    let msg = Message::parse(&m).unwrap();
    let unknown: Vec<u16> = msg
        .unknown_comprehension_required(&[attr::USERNAME])
        .collect();
    assert_eq!(unknown, [0x0030, 0x0031]);
    let unknown: Vec<u16> = msg.unknown_comprehension_required(&[]).collect();
    assert_eq!(unknown, [attr::USERNAME, 0x0030, 0x0031]);
}

#[test]
fn builder_buffer_too_small_never_panics() {
    let peer: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
    // Size of the complete message.
    let full = build_all(&mut [0u8; 1024]).unwrap();
    for size in 0..full {
        let mut buf = vec![0u8; size];
        let r = build_all(&mut buf);
        assert_eq!(r, Err(BuildError::BufferTooSmall), "size {size}");
        // Whatever was written is still a valid message.
        if size >= 20 {
            let mut probe = vec![0u8; size];
            let _ = build_all(&mut probe);
            let len = 20 + u16::from_be_bytes([probe[2], probe[3]]) as usize;
            let msg = Message::parse(&probe[..len]).expect("prefix stays valid");
            let _ = msg.xor_peer_address();
        }
    }
    let mut buf = vec![0u8; full];
    assert_eq!(build_all(&mut buf), Ok(full));
    let msg = Message::parse(&buf).unwrap();
    assert_eq!(msg.xor_peer_address(), Ok(Some(peer)));
    assert_eq!(msg.verify_integrity(KEY), Ok(()));
    assert_eq!(msg.verify_integrity_sha256(KEY), Ok(()));
}

fn build_all(buf: &mut [u8]) -> Result<usize, BuildError> {
    let peer: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
    let mut b = MessageBuilder::new(buf, allocate(), TID)?;
    b.add(attr::USERNAME, b"alice")?;
    b.add_xor_address(attr::XOR_PEER_ADDRESS, peer)?;
    b.add_address(attr::ALTERNATE_SERVER, peer)?;
    b.add_error_code(438, "Stale Nonce")?;
    b.add_unknown_attributes(&[1, 2, 3])?;
    b.add_address_family(attr::REQUESTED_ADDRESS_FAMILY, AddressFamily::V6)?;
    b.add_message_integrity(KEY)?;
    b.add_message_integrity_sha256(KEY)?;
    b.add_fingerprint()?;
    Ok(b.finish())
}

#[test]
fn builder_value_limits() {
    let mut buf = vec![0u8; 70_000];
    let mut b = MessageBuilder::new(&mut buf, allocate(), TID).unwrap();
    assert_eq!(
        b.add(attr::DATA, &vec![0; 65_536]),
        Err(BuildError::TooLong)
    );
    assert_eq!(
        b.add(attr::DATA, &vec![0; 65_532]),
        Err(BuildError::TooLong)
    );
    b.add(attr::DATA, &vec![0; 65_528]).unwrap();
    assert_eq!(b.add_flag(attr::DONT_FRAGMENT), Err(BuildError::TooLong));
    assert_eq!(b.add_error_code(200, "no"), Err(BuildError::InvalidValue));
    let n = b.finish();
    assert_eq!(n, 20 + 65_532);
    assert_eq!(
        Message::parse(&buf[..n]).unwrap().data().map(<[u8]>::len),
        Some(65_528)
    );
    assert!(MessageBuilder::new(&mut [0u8; 19], allocate(), TID).is_err());
}
