//! Parses arbitrary bytes as STUN, calls every getter, verifies integrity with
//! a fixed key, and when parsing succeeds re-encodes the visible attributes
//! with the builder and checks the copy parses to the same attributes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_stun::{Message, MessageBuilder, attr};

const KEY: &[u8] = b"fuzz-key";

fn touch_everything(m: &Message<'_>) {
    let _ = (m.message_type(), m.class(), m.method(), m.transaction_id());
    let _ = m.as_bytes().len();
    let _ = m.attributes().count();
    let _ = m
        .unknown_comprehension_required(&[attr::USERNAME, attr::MESSAGE_INTEGRITY])
        .count();
    let _ = (
        m.username(),
        m.userhash(),
        m.realm(),
        m.nonce(),
        m.software(),
    );
    let _ = (m.alternate_domain(), m.error_code(), m.address_error_code());
    let _ = m.unknown_attributes().map(|u| u.map(Iterator::count));
    let _ = (
        m.mapped_address(),
        m.xor_mapped_address(),
        m.xor_relayed_address(),
    );
    let _ = m.xor_relayed_addresses().count();
    let _ = m.xor_peer_addresses().count();
    let _ = m.xor_peer_address();
    let _ = (m.alternate_server(), m.response_origin(), m.other_address());
    let _ = (
        m.channel_number(),
        m.lifetime(),
        m.data(),
        m.requested_address_family(),
    );
    let _ = (
        m.additional_address_family(),
        m.even_port(),
        m.requested_transport(),
    );
    let _ = (
        m.dont_fragment(),
        m.reservation_token(),
        m.icmp(),
        m.connection_id(),
    );
    let _ = (
        m.change_request(),
        m.response_port(),
        m.padding(),
        m.mobility_ticket(),
    );
    let _ = (m.access_token(), m.priority(), m.use_candidate());
    let _ = (m.ice_controlled(), m.ice_controlling());
    let _ = m.password_algorithms().map(|p| p.map(Iterator::count));
    let _ = m.password_algorithm();
    let _ = (m.has_fingerprint(), m.integrity());
    let _ = (m.has_message_integrity(), m.has_message_integrity_sha256());
    let _ = m.verify_integrity(KEY);
    let _ = m.verify_integrity_sha256(KEY);
    for a in m.attributes() {
        let _ = m.get(a.typ);
        let _ = m.get_all(a.typ).count();
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::parse(data) else {
        return;
    };
    touch_everything(&m);

    // Re-encode everything except the integrity attributes and FINGERPRINT,
    // which the builder computes itself.
    let mut buf = [0u8; 70_000];
    let mut b =
        MessageBuilder::new(&mut buf, m.message_type(), m.transaction_id()).expect("header fits");
    let mut copied = 0usize;
    for a in m.attributes() {
        if matches!(
            a.typ,
            attr::MESSAGE_INTEGRITY | attr::MESSAGE_INTEGRITY_SHA256 | attr::FINGERPRINT
        ) {
            continue;
        }
        b.add(a.typ, a.value)
            .expect("attributes of a parsed message fit");
        copied += 1;
    }
    b.add_message_integrity(KEY)
        .expect("room for MESSAGE-INTEGRITY");
    b.add_fingerprint().expect("room for FINGERPRINT");
    let n = b.finish();
    let again = Message::parse(&buf[..n]).expect("builder output parses");
    assert_eq!(again.message_type(), m.message_type());
    assert_eq!(again.transaction_id(), m.transaction_id());
    assert!(again.has_fingerprint());
    assert_eq!(again.verify_integrity(KEY), Ok(()));
    let originals = m.attributes().filter(|a| {
        !matches!(
            a.typ,
            attr::MESSAGE_INTEGRITY | attr::MESSAGE_INTEGRITY_SHA256 | attr::FINGERPRINT
        )
    });
    let copies = again.attributes().take(copied);
    assert!(originals.eq(copies), "re-encoded attributes differ");
    touch_everything(&again);
});
