//! RFC 5769 test vectors and RFC 8489 Appendix B.1 (as corrected by verified
//! erratum 6268). Each vector is parsed, checked attribute by attribute,
//! verified (MESSAGE-INTEGRITY and FINGERPRINT are self-checking: one wrong
//! byte fails them) and rebuilt byte for byte with the builder.

use std::net::SocketAddr;

use switchyard_stun::{
    Class, IntegrityError, Message, MessageBuilder, MessageType, Method, PasswordAlgorithm,
    TransactionId, attr, long_term_key, long_term_key_sha256, userhash,
};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";
const TID: TransactionId = TransactionId([
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
]);

/// RFC 5769 §2.1: sample request.
const SAMPLE_REQUEST: &str = "
    0001 0058 2112a442 b7e7a701 bc34d686 fa87dfae
    8022 0010 5354554e 20746573 7420636c 69656e74
    0024 0004 6e0001ff
    8029 0008 932ff9b1 51263b36
    0006 0009 6576746a 3a683676 59202020
    0008 0014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2
    8028 0004 e57a3bcf";

/// RFC 5769 §2.2: sample IPv4 response.
const SAMPLE_IPV4_RESPONSE: &str = "
    0101 003c 2112a442 b7e7a701 bc34d686 fa87dfae
    8022 000b 74657374 20766563 746f7220
    0020 0008 0001a147 e112a643
    0008 0014 2b91f599 fd9e90c3 8c7489f9 2af9ba53 f06be7d7
    8028 0004 c07d4c96";

/// RFC 5769 §2.3: sample IPv6 response.
const SAMPLE_IPV6_RESPONSE: &str = "
    0101 0048 2112a442 b7e7a701 bc34d686 fa87dfae
    8022 000b 74657374 20766563 746f7220
    0020 0014 0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9
    0008 0014 a382954e 4be67bf1 1784c97c 8292c275 bfe3ed41
    8028 0004 c8fb0b4c";

/// RFC 5769 §2.4: sample request with long-term authentication.
const SAMPLE_LONG_TERM: &str = "
    0001 0060 2112a442 78ad3433 c6ad72c0 29da412e
    0006 0012 e3839ee3 8388e383 aae38383 e382afe3 82b90000
    0015 001c 662f2f34 39396b39 35346436 4f4c3334 6f4c3946 53547679 36347341
    0014 000b 6578616d 706c652e 6f726700
    0008 0014 f6702465 6dd64a3e 02b8e071 2e85c9a2 8ca89666";

/// RFC 8489 Appendix B.1 with verified erratum 6268 (message length 0x90,
/// SHA-256 key, recomputed MESSAGE-INTEGRITY-SHA256).
const RFC8489_B1: &str = "
    0001 0090 2112a442 78ad3433 c6ad72c0 29da412e
    001e 0020 4a3cf38f ef6992bd a952c678 0417da0f 24819415 569e60b2 05c46e41 407f1704
    0015 0029 6f624d61 744a6f73 32414141 43662f2f 3439396b 39353464 364f4c33 346f4c39
              46535476 79363473 41000000
    0014 000b 6578616d 706c652e 6f726700
    001d 0004 00020000
    001c 0020 b5c7bf00 5b6c52a2 1c51c5e8 92f81924 136296cb 927c4314 9309278c c6518e65";

const MATRIX_USER: &str = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
const LT_TID: TransactionId = TransactionId([
    0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e,
]);

#[test]
fn rfc5769_sample_request() {
    let bytes = hex(SAMPLE_REQUEST);
    assert_eq!(bytes.len(), 108);
    let m = Message::parse(&bytes).expect("parses");
    assert_eq!(
        m.message_type(),
        MessageType::new(Class::Request, Method::BINDING)
    );
    assert_eq!(m.transaction_id(), TID);
    assert_eq!(m.software(), Ok(Some("STUN test client")));
    assert_eq!(m.priority(), Ok(Some(0x6e00_01ff)));
    assert_eq!(m.ice_controlled(), Ok(Some(0x932f_f9b1_5126_3b36)));
    assert_eq!(m.ice_controlling(), Ok(None));
    assert_eq!(m.username(), Ok(Some("evtj:h6vY")));
    assert!(m.has_fingerprint());
    assert_eq!(m.integrity(), Some(switchyard_stun::Integrity::Sha1));
    assert_eq!(m.verify_integrity(PASSWORD.as_bytes()), Ok(()));
    assert_eq!(
        m.verify_integrity(b"VOkJxbRl1RmTxUk/WvJxBT"),
        Err(IntegrityError::Mismatch)
    );
    assert_eq!(
        m.verify_integrity_sha256(PASSWORD.as_bytes()),
        Err(IntegrityError::Missing)
    );
    let types: Vec<u16> = m.attributes().map(|a| a.typ).collect();
    assert_eq!(
        types,
        [
            attr::SOFTWARE,
            attr::PRIORITY,
            attr::ICE_CONTROLLED,
            attr::USERNAME,
            attr::MESSAGE_INTEGRITY,
            attr::FINGERPRINT
        ]
    );

    let mut buf = [0u8; 200];
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::new(Class::Request, Method::BINDING),
        TID,
    )
    .unwrap();
    b.set_padding(0x20);
    b.add(attr::SOFTWARE, b"STUN test client").unwrap();
    b.add_u32(attr::PRIORITY, 0x6e00_01ff).unwrap();
    b.add_u64(attr::ICE_CONTROLLED, 0x932f_f9b1_5126_3b36)
        .unwrap();
    b.add(attr::USERNAME, b"evtj:h6vY").unwrap();
    b.add_message_integrity(PASSWORD.as_bytes()).unwrap();
    b.add_fingerprint().unwrap();
    let n = b.finish();
    assert_eq!(&buf[..n], &bytes[..]);
}

fn check_response(vector: &str, addr: &str) {
    let bytes = hex(vector);
    let m = Message::parse(&bytes).expect("parses");
    assert_eq!(
        m.message_type(),
        MessageType::new(Class::Success, Method::BINDING)
    );
    assert_eq!(m.transaction_id(), TID);
    assert_eq!(m.software(), Ok(Some("test vector")));
    let addr: SocketAddr = addr.parse().unwrap();
    assert_eq!(m.xor_mapped_address(), Ok(Some(addr)));
    assert_eq!(m.mapped_address(), Ok(None));
    assert!(m.has_fingerprint());
    assert_eq!(m.verify_integrity(PASSWORD.as_bytes()), Ok(()));
    assert_eq!(m.verify_integrity(b"wrong"), Err(IntegrityError::Mismatch));

    let mut buf = [0u8; 200];
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::new(Class::Success, Method::BINDING),
        TID,
    )
    .unwrap();
    b.set_padding(0x20);
    b.add(attr::SOFTWARE, b"test vector").unwrap();
    b.add_xor_address(attr::XOR_MAPPED_ADDRESS, addr).unwrap();
    b.add_message_integrity(PASSWORD.as_bytes()).unwrap();
    b.add_fingerprint().unwrap();
    let n = b.finish();
    assert_eq!(&buf[..n], &bytes[..]);
}

#[test]
fn rfc5769_sample_ipv4_response() {
    check_response(SAMPLE_IPV4_RESPONSE, "192.0.2.1:32853");
}

#[test]
fn rfc5769_sample_ipv6_response() {
    check_response(
        SAMPLE_IPV6_RESPONSE,
        "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
    );
}

#[test]
fn rfc5769_long_term_request() {
    let bytes = hex(SAMPLE_LONG_TERM);
    let m = Message::parse(&bytes).expect("parses");
    assert_eq!(
        m.message_type(),
        MessageType::new(Class::Request, Method::BINDING)
    );
    assert_eq!(m.transaction_id(), LT_TID);
    assert_eq!(m.username(), Ok(Some(MATRIX_USER)));
    assert_eq!(m.nonce(), Ok(Some("f//499k954d6OL34oL9FSTvy64sA")));
    assert_eq!(m.realm(), Ok(Some("example.org")));
    assert!(!m.has_fingerprint());
    let key = long_term_key(MATRIX_USER, "example.org", "TheMatrIX");
    assert_eq!(m.verify_integrity(&key), Ok(()));
    let wrong = long_term_key(MATRIX_USER, "example.org", "TheMatrix");
    assert_eq!(m.verify_integrity(&wrong), Err(IntegrityError::Mismatch));

    let mut buf = [0u8; 200];
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::new(Class::Request, Method::BINDING),
        LT_TID,
    )
    .unwrap();
    b.add(attr::USERNAME, MATRIX_USER.as_bytes()).unwrap();
    b.add(attr::NONCE, b"f//499k954d6OL34oL9FSTvy64sA").unwrap();
    b.add(attr::REALM, b"example.org").unwrap();
    b.add_message_integrity(&key).unwrap();
    let n = b.finish();
    assert_eq!(&buf[..n], &bytes[..]);
}

#[test]
fn rfc8489_b1_sha256_with_userhash() {
    let bytes = hex(RFC8489_B1);
    let m = Message::parse(&bytes).expect("parses");
    assert_eq!(m.transaction_id(), LT_TID);
    let uh = userhash(MATRIX_USER, "example.org");
    assert_eq!(m.userhash(), Ok(Some(uh)));
    assert_eq!(m.username(), Ok(None));
    assert_eq!(
        m.nonce(),
        Ok(Some("obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA"))
    );
    assert_eq!(m.realm(), Ok(Some("example.org")));
    assert_eq!(
        m.password_algorithm(),
        Ok(Some(PasswordAlgorithm {
            algorithm: PasswordAlgorithm::SHA256,
            params: &[]
        }))
    );
    assert_eq!(m.integrity(), Some(switchyard_stun::Integrity::Sha256));
    let key = long_term_key_sha256(MATRIX_USER, "example.org", "TheMatrIX");
    assert_eq!(m.verify_integrity_sha256(&key), Ok(()));
    assert_eq!(m.verify_integrity(&key), Err(IntegrityError::Missing));
    let md5_key = long_term_key(MATRIX_USER, "example.org", "TheMatrIX");
    assert_eq!(
        m.verify_integrity_sha256(&md5_key),
        Err(IntegrityError::Mismatch)
    );

    let mut buf = [0u8; 256];
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::new(Class::Request, Method::BINDING),
        LT_TID,
    )
    .unwrap();
    b.add(attr::USERHASH, &uh).unwrap();
    b.add(attr::NONCE, b"obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA")
        .unwrap();
    b.add(attr::REALM, b"example.org").unwrap();
    b.add_password_algorithm(PasswordAlgorithm {
        algorithm: PasswordAlgorithm::SHA256,
        params: &[],
    })
    .unwrap();
    b.add_message_integrity_sha256(&key).unwrap();
    let n = b.finish();
    assert_eq!(&buf[..n], &bytes[..]);
}
