//! The unauthenticated-reply limit (coturn `unauthorized-ratelimit`, on by default here) and
//! the size of replies to unauthenticated requests (issue 4: no amplification).

mod harness;

use std::time::Duration;

use harness::*;
use switchyard_stun::{Method, attr};
use switchyard_turn::{ClientOutcome, DropReason, Transport};

const LIMIT: u64 = 10;

fn spoofed(ip: &str, port: u16, transport: Transport) -> Client {
    Client::on(transport, &format!("{ip}:{port}"), "x", "y")
}

/// Unauthenticated Allocates from `n` source ports of `ip`; returns (replies, rate-limited).
fn flood(h: &mut H, ip: &str, first_port: u16, n: u16, transport: Transport) -> (u64, u64) {
    let (mut replies, mut limited) = (0, 0);
    for port in first_port..first_port + n {
        let mut c = spoofed(ip, port, transport);
        let r = h.once(&mut c, Method::ALLOCATE, &[udp()]);
        match r.outcome {
            ClientOutcome::Reply { .. } => {
                assert_eq!(r.code(), Some(401));
                replies += 1;
            }
            ClientOutcome::Drop(DropReason::RateLimited) => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    (replies, limited)
}

#[test]
fn default_is_ten_per_second() {
    let h = H::new();
    let cfg = base_config(h.start);
    assert_eq!(cfg.unauth_rate_limit, 10);
    assert!(!cfg.include_reason_string);
}

#[test]
fn flood_from_one_ip_gets_at_most_the_limit_per_second() {
    let mut h = H::new();
    let (replies, limited) = flood(&mut h, "203.0.113.5", 10000, 1000, Transport::Udp);
    assert_eq!((replies, limited), (LIMIT, 1000 - LIMIT));
    assert_eq!(
        h.server.stats().drops(DropReason::RateLimited),
        1000 - LIMIT
    );
    assert_eq!(h.server.stats().errors_sent(401), LIMIT);
    // Another IP in the same second is unaffected.
    let (replies, _) = flood(&mut h, "203.0.113.6", 10000, 5, Transport::Udp);
    assert_eq!(replies, 5);
    // So is a Binding from the flooded IP (Binding successes are not limited).
    let mut c = spoofed("203.0.113.5", 9999, Transport::Udp);
    assert!(h.once(&mut c, Method::BINDING, &[]).ok());
    // ... but a Binding error (420) is an unauthenticated error reply and is limited.
    let r = h.once(&mut c, Method::BINDING, &[A::Raw(0x0003, vec![0; 4])]);
    assert_eq!(r.outcome, ClientOutcome::Drop(DropReason::RateLimited));
}

#[test]
fn the_window_resets_every_second() {
    let mut h = H::new();
    // The harness starts on a second boundary of the server's (Unix) clock.
    for second in 0..5u16 {
        let (replies, limited) = flood(
            &mut h,
            "203.0.113.5",
            10000 + second * 100,
            30,
            Transport::Udp,
        );
        assert_eq!((replies, limited), (LIMIT, 30 - LIMIT), "second {second}");
        h.advance(Duration::from_secs(1));
    }
    // Within one second the limit holds however the requests are spread.
    let (replies, _) = flood(&mut h, "203.0.113.5", 20000, 5, Transport::Udp);
    h.advance(Duration::from_millis(100));
    let (more, _) = flood(&mut h, "203.0.113.5", 20005, 20, Transport::Udp);
    assert_eq!(replies + more, LIMIT);
}

#[test]
fn ipv6_sources_are_limited_by_their_64() {
    let mut h = H::new();
    let mut replies = 0;
    for i in 0..100u16 {
        let mut c = spoofed(&format!("[2001:db8:1:2::{i:x}]"), 5000, Transport::Udp);
        if h.once(&mut c, Method::ALLOCATE, &[udp()]).is_reply() {
            replies += 1;
        }
    }
    assert_eq!(replies, LIMIT);
    let mut c = spoofed("[2001:db8:1:3::1]", 5000, Transport::Udp);
    assert!(h.once(&mut c, Method::ALLOCATE, &[udp()]).is_reply());
}

#[test]
fn tcp_and_tls_are_exempt() {
    let mut h = H::new();
    let (replies, limited) = flood(&mut h, "203.0.113.5", 10000, 100, Transport::Tcp);
    assert_eq!((replies, limited), (100, 0));
    let (replies, limited) = flood(&mut h, "203.0.113.5", 20000, 100, Transport::Tls);
    assert_eq!((replies, limited), (100, 0));
}

#[test]
fn zero_turns_it_off() {
    let mut h = H::with(|c| c.unauth_rate_limit = 0);
    let (replies, limited) = flood(&mut h, "203.0.113.5", 10000, 500, Transport::Udp);
    assert_eq!((replies, limited), (500, 0));
}

#[test]
fn established_allocations_keep_working_under_a_flood() {
    let mut h = H::new();
    // A client behind the flooded IP (same NAT) with an allocation made before the flood.
    let mut c = Client::rest(
        "203.0.113.5:4000",
        h.unix_now() + 3600,
        "@alice:example.org",
        SECRET,
    );
    let relayed = h.alloc_ok(&mut c);
    let relay = h.relays.id_of(relayed).unwrap();
    let peer = sa("8.8.8.8:40000");
    let (replies, _) = flood(&mut h, "203.0.113.5", 10000, 1000, Transport::Udp);
    assert_eq!(replies, LIMIT - 1, "the allocation's own 401 counted too");
    // Authenticated requests are not limited: they pass authentication.
    for _ in 0..50 {
        assert!(h.permit(&mut c, &[peer]).ok());
    }
    assert!(h.bind(&mut c, 0x4000, peer).ok());
    assert!(h.request(&mut c, Method::REFRESH, &[A::Lifetime(600)]).ok());
    for _ in 0..100 {
        assert!(matches!(
            h.channel_data(&c, 0x4000, b"media").outcome,
            ClientOutcome::ToPeer { .. }
        ));
        assert!(h.peer_sends(relay, peer, b"media").delivered());
    }
    // A wrong password from that IP is an unauthenticated request: no reply now.
    let mut mallory = Client::rest("203.0.113.5:4001", h.unix_now() + 3600, "@m:x", "wrong");
    mallory.nonce = c.nonce.clone();
    let r = h.once(&mut mallory, Method::ALLOCATE, &[udp()]);
    assert_eq!(r.outcome, ClientOutcome::Drop(DropReason::RateLimited));
}

#[test]
fn unauthenticated_replies_are_small() {
    let mut h = H::with(|c| c.software = Some("switchyard/0.1 a long software string".into()));
    let mut c = spoofed("192.0.2.1", 5000, Transport::Udp);
    let r = h.once(&mut c, Method::ALLOCATE, &[udp()]);
    assert_eq!(r.code(), Some(401));
    assert_eq!(
        r.attr_types(),
        vec![attr::ERROR_CODE, attr::REALM, attr::NONCE],
        "no SOFTWARE, no MESSAGE-INTEGRITY"
    );
    // ERROR-CODE is class and number only: no reason phrase.
    assert_eq!(r.msg().get(attr::ERROR_CODE).unwrap().len(), 4);
    let nonce = r.msg().get(attr::NONCE).unwrap().len();
    assert_eq!(nonce, 16);
    // 20 header + 8 ERROR-CODE + 4+16 REALM + 4+16 NONCE.
    assert_eq!(
        r.bytes.len(),
        20 + 8 + 4 + REALM.len().next_multiple_of(4) + 4 + 16
    );
    eprintln!(
        "401 to a {}-byte Allocate: {} bytes (realm {} bytes)",
        c.build(
            switchyard_stun::Class::Request,
            Method::ALLOCATE,
            switchyard_stun::TransactionId([0; 12]),
            &[udp()]
        )
        .len(),
        r.bytes.len(),
        REALM.len()
    );
    // 438 (stale or foreign nonce) likewise.
    c.nonce = b"AAAAAAAAAAAAAAAA".to_vec();
    let r = h.once(&mut c, Method::ALLOCATE, &[udp()]);
    assert_eq!(r.code(), Some(438));
    assert_eq!(r.msg().get(attr::ERROR_CODE).unwrap().len(), 4);
    assert!(!r.has(attr::SOFTWARE));
    // Unknown method before authentication: 400, code only.
    let r = h.once(&mut c, Method(0x0FF), &[]);
    assert_eq!(r.code(), Some(400));
    assert_eq!(r.msg().get(attr::ERROR_CODE).unwrap().len(), 4);
}

#[test]
fn include_reason_string_adds_phrases() {
    let mut h = H::with(|c| c.include_reason_string = true);
    let mut c = spoofed("192.0.2.1", 5000, Transport::Udp);
    let r = h.once(&mut c, Method::ALLOCATE, &[udp()]);
    assert_eq!(r.code(), Some(401));
    assert_eq!(
        &r.msg().get(attr::ERROR_CODE).unwrap()[4..],
        b"Unauthorized"
    );
}

#[test]
fn authenticated_errors_keep_their_phrase() {
    let mut h = H::new();
    let mut c = Client::rest(
        "192.0.2.1:5000",
        h.unix_now() + 3600,
        "@alice:example.org",
        SECRET,
    );
    h.alloc_ok(&mut c);
    // A second Allocate on the same 5-tuple: 437, signed, with its phrase.
    let r = h.allocate(&mut c, &[]);
    assert_eq!(r.code(), Some(437));
    assert_eq!(
        &r.msg().get(attr::ERROR_CODE).unwrap()[4..],
        b"Allocation Mismatch"
    );
}
