//! End-to-end tests of the TURN core through the in-memory harness.

mod harness;

use std::time::Duration;

use harness::*;
use switchyard_stun::{Class, Message, Method, attr};
use switchyard_turn::{
    Auth, AuthFailure, ClientOutcome, DropReason, Event, ExternalIp, FreeReason, PeerOutcome,
    RelayId, Transport, User, auth,
};

const PEER: &str = "8.8.8.8:40000";

fn alice(h: &H, port: u16) -> Client {
    Client::rest(
        &format!("192.0.2.10:{port}"),
        h.unix_now() + 3600,
        "@alice:example.org",
        SECRET,
    )
}

fn events(h: &mut H) -> Vec<Event> {
    std::iter::from_fn(|| h.server.poll_event()).collect()
}

#[test]
fn binding_is_minimal() {
    let mut h = H::new();
    let mut c = Client::new("192.0.2.1:5000", "x", "y");
    let r = h.once(&mut c, Method::BINDING, &[]);
    assert!(r.ok());
    assert_eq!(r.attr_types(), vec![attr::XOR_MAPPED_ADDRESS]);
    assert_eq!(r.xor_addr(attr::XOR_MAPPED_ADDRESS), Some(c.addr.remote));
    assert_eq!(r.bytes.len(), 32, "20 B request → 32 B answer");
    // FINGERPRINT only when the request had one.
    c.fingerprint = true;
    let r = h.once(&mut c, Method::BINDING, &[]);
    assert_eq!(
        r.attr_types(),
        vec![attr::XOR_MAPPED_ADDRESS, attr::FINGERPRINT]
    );
    assert!(r.msg().has_fingerprint());
    // An unknown comprehension-required attribute → 420 listing it.
    c.fingerprint = false;
    let r = h.once(&mut c, Method::BINDING, &[A::Raw(0x0003, vec![0, 0, 0, 0])]);
    assert_eq!(r.code(), Some(420));
    assert_eq!(
        r.msg().get(attr::UNKNOWN_ATTRIBUTES),
        Some(&[0x00, 0x03][..])
    );
    // Comprehension-optional unknowns are ignored.
    let r = h.once(&mut c, Method::BINDING, &[A::Raw(0x8077, vec![1, 2, 3, 4])]);
    assert!(r.ok());
    // coturn's stun_binding_{request,response,error} counters.
    let s = h.server.stats();
    assert_eq!(
        (s.binding_requests, s.binding_responses, s.binding_errors),
        (4, 3, 1)
    );
}

#[test]
fn binding_software_and_fingerprint_config() {
    let mut h = H::with(|c| {
        c.software = Some("switchyard".into());
        c.fingerprint = true;
    });
    let mut c = Client::new("192.0.2.1:5000", "x", "y");
    let r = h.once(&mut c, Method::BINDING, &[]);
    assert_eq!(
        r.attr_types(),
        vec![attr::XOR_MAPPED_ADDRESS, attr::SOFTWARE, attr::FINGERPRINT]
    );
}

#[test]
fn no_stun_and_stun_only() {
    let mut h = H::with(|c| c.no_stun = true);
    let mut c = alice(&h, 5000);
    let r = h.once(&mut c, Method::BINDING, &[]);
    assert_eq!(r.outcome, ClientOutcome::Drop(DropReason::StunDisabled));
    assert!(h.allocate(&mut c, &[]).ok());

    let mut h = H::with(|c| c.stun_only = true);
    let mut c = alice(&h, 5000);
    assert!(h.once(&mut c, Method::BINDING, &[]).ok());
    let r = h.allocate(&mut c, &[]);
    assert_eq!(r.outcome, ClientOutcome::Drop(DropReason::StunDisabled));
}

#[test]
fn synapse_flow_end_to_end() {
    let mut h = H::new();
    let mut c = alice(&h, 5000);
    // First Allocate without credentials → 401 with REALM and NONCE, no MI, small.
    let r = h.once(&mut c, Method::ALLOCATE, &[udp()]);
    assert_eq!(r.code(), Some(401));
    assert!(r.msg().integrity().is_none());
    assert_eq!(
        r.attr_types(),
        vec![attr::ERROR_CODE, attr::REALM, attr::NONCE]
    );
    assert!(r.bytes.len() <= 80, "401 is {} bytes", r.bytes.len());
    assert_eq!(h.server.allocation_count(), 0);

    let r = h.allocate(&mut c, &[]);
    assert!(r.ok(), "{:?}", r.code());
    let m = r.msg();
    m.verify_integrity(&c.key)
        .expect("response signed with the same key");
    let relayed = r.xor_addr(attr::XOR_RELAYED_ADDRESS).unwrap();
    assert_eq!(relayed.ip().to_string(), RELAY_V4);
    assert!((50000..=50099).contains(&relayed.port()));
    assert_eq!(r.xor_addr(attr::XOR_MAPPED_ADDRESS), Some(c.addr.remote));
    assert_eq!(r.lifetime(), Some(600));
    assert!(!r.has(attr::FINGERPRINT));
    assert_eq!(h.server.allocation_count(), 1);
    let relay = h.relays.id_of(relayed).unwrap();
    assert!(matches!(
        events(&mut h).as_slice(),
        [Event::AllocationCreated { username, .. }] if username == &c.username
    ));

    let peer = sa(PEER);
    // Before any permission: Send is dropped, peer data dropped.
    let r = h.send_indication(&mut c, peer, b"hello");
    assert_eq!(r.outcome, ClientOutcome::Drop(DropReason::NoPermission));
    let p = h.peer_sends(relay, peer, b"x");
    assert_eq!(p.outcome, PeerOutcome::Drop(DropReason::NoPermission));

    let r = h.permit(&mut c, &[peer]);
    assert!(r.ok());
    r.msg().verify_integrity(&c.key).unwrap();

    // Send indication → ToPeer with the DATA bytes.
    let r = h.send_indication(&mut c, peer, b"hello");
    match &r.outcome {
        ClientOutcome::ToPeer {
            relay: rid,
            peer: p,
            ..
        } => {
            assert_eq!((*rid, *p), (relay, peer));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.bytes, b"hello");

    // Peer → client as a Data indication (no channel yet).
    let p = h.peer_sends(relay, peer, b"abcde");
    assert!(p.delivered());
    let m = Message::parse(&p.bytes).expect("Data indication parses");
    assert_eq!(m.class(), Class::Indication);
    assert_eq!(m.method(), Method::DATA);
    assert_eq!(m.data(), Some(&b"abcde"[..]));
    assert_eq!(
        decode_xor(
            m.get(attr::XOR_PEER_ADDRESS).unwrap(),
            &m.transaction_id().0
        ),
        Some(peer)
    );
    // Permission is per IP: another port of the same peer IP also gets through.
    assert!(h.peer_sends(relay, sa("8.8.8.8:1"), b"x").delivered());

    // ChannelBind, then ChannelData both ways.
    let r = h.bind(&mut c, 0x4001, peer);
    assert!(r.ok(), "{:?}", r.code());
    let r = h.channel_data(&c, 0x4001, b"payload!!");
    match &r.outcome {
        ClientOutcome::ToPeer {
            relay: rid,
            peer: p,
            payload,
        } => {
            assert_eq!((*rid, *p, payload.clone()), (relay, peer, 4..13));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.bytes, b"payload!!");
    let p = h.peer_sends(relay, peer, b"12345");
    assert!(p.delivered());
    // UDP: no padding.
    assert_eq!(
        p.bytes,
        [0x40, 0x01, 0x00, 0x05, b'1', b'2', b'3', b'4', b'5']
    );
    match p.outcome {
        PeerOutcome::ToClient { client, .. } => assert_eq!(client, c.addr),
        other => panic!("{other:?}"),
    }
    // Unbound channel number → drop.
    let r = h.channel_data(&c, 0x4002, b"x");
    assert_eq!(r.outcome, ClientOutcome::Drop(DropReason::UnboundChannel));
    // Truncated ChannelData → drop.
    let r = h.raw(c.addr, &[0x40, 0x01, 0x00, 0x09, 1, 2]);
    assert_eq!(r.outcome, ClientOutcome::Drop(DropReason::BadChannelData));
    // Padding after the data is accepted (and not relayed).
    let r = h.raw(c.addr, &[0x40, 0x01, 0x00, 0x01, 9, 0, 0, 0]);
    assert_eq!(r.bytes, [9]);

    // Refresh with LIFETIME 0 deletes: relay closed, events.
    let r = h.request(&mut c, Method::REFRESH, &[A::Lifetime(0)]);
    assert!(r.ok());
    assert_eq!(r.lifetime(), Some(0));
    assert_eq!(h.server.allocation_count(), 0);
    assert_eq!(h.relays.closed, vec![relay]);
    assert!(events(&mut h).iter().any(|e| matches!(
        e,
        Event::AllocationFreed {
            reason: FreeReason::Deleted,
            ..
        }
    )));
    assert_eq!(
        h.peer_sends(relay, peer, b"x").outcome,
        PeerOutcome::Drop(DropReason::NoAllocation)
    );
    let s = h.server.stats();
    assert_eq!(s.allocations_created, 1);
    assert_eq!(s.allocations_freed, 1);
    assert!(s.channel_data_out >= 1 && s.data_indications_out >= 2);
    assert!(s.errors_sent(401) >= 1);
}

#[test]
fn published_test_vector_password() {
    // turn-anchors §2.1: Synapse would hand out exactly this password for this username.
    let mut h = H::with(|c| c.clock.unix_secs = 1_699_990_000);
    let mut c = Client::new(
        "192.0.2.10:5000",
        "1700000000:@alice:example.org",
        "Q3QFGwAasTAzWYffazEl6DtxxBg=",
    );
    assert_eq!(
        c.key.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "8abac9f92c49a921b09b4da0663dea0a"
    );
    assert!(h.allocate(&mut c, &[]).ok());
    // A wrong password with the same username → 401, no state.
    let mut bad = Client::new(
        "192.0.2.10:5001",
        "1700000000:@alice:example.org",
        "Q3QFGwAasTAzWYffazEl6DtxxBh=",
    );
    let r = h.allocate(&mut bad, &[]);
    assert_eq!(r.code(), Some(401));
    assert!(r.msg().integrity().is_none());
    assert_eq!(h.server.allocation_count(), 1);
}

#[test]
fn secret_rotation_either_secret_verifies() {
    let mut h = H::with(|c| {
        c.auth = Auth::LongTerm {
            users: vec![],
            secrets: vec!["old-secret".into(), "new-secret".into()],
            separator: ':',
        };
    });
    let exp = h.unix_now() + 60;
    let mut a = Client::rest("192.0.2.10:5000", exp, "@a:x", "old-secret");
    let mut b = Client::rest("192.0.2.10:5001", exp, "@b:x", "new-secret");
    let mut c = Client::rest("192.0.2.10:5002", exp, "@c:x", "other-secret");
    assert!(h.allocate(&mut a, &[]).ok());
    assert!(h.allocate(&mut b, &[]).ok());
    assert_eq!(h.allocate(&mut c, &[]).code(), Some(401));
}

#[test]
fn rest_expiry_forms() {
    let mut h = H::new();
    let now = h.unix_now();
    // Expired → 401 and an AuthFailed event, no allocation.
    let mut old = Client::rest("192.0.2.10:5000", now - 1, "@a:x", SECRET);
    let r = h.allocate(&mut old, &[]);
    assert_eq!(r.code(), Some(401));
    assert!(events(&mut h).iter().any(|e| matches!(
        e,
        Event::AuthFailed {
            reason: AuthFailure::Expired,
            ..
        }
    )));
    assert_eq!(h.server.allocation_count(), 0);
    // Expiry exactly now is accepted (coturn: !turn_time_before(ts, now)).
    let mut edge = Client::rest("192.0.2.10:5001", now, "@a:x", SECRET);
    assert!(h.allocate(&mut edge, &[]).ok());
    // `user:ts` (coturn accepts either order).
    let name = format!("@b:{}", now + 100);
    let pwd = auth::rest_password(SECRET.as_bytes(), &name);
    let mut rev = Client::new("192.0.2.10:5002", &name, &pwd);
    assert!(h.allocate(&mut rev, &[]).ok());
    // 99999999999 wraps as uint32 into the past → rejected.
    let name = "99999999999:carol";
    let pwd = auth::rest_password(SECRET.as_bytes(), name);
    let mut wrap = Client::new("192.0.2.10:5003", name, &pwd);
    assert_eq!(h.allocate(&mut wrap, &[]).code(), Some(401));
    // Bare timestamp username.
    let name = format!("{}", now + 5);
    let pwd = auth::rest_password(SECRET.as_bytes(), &name);
    let mut bare = Client::new("192.0.2.10:5004", &name, &pwd);
    assert!(h.allocate(&mut bare, &[]).ok());
}

#[test]
fn expired_credential_can_refresh_existing_allocation() {
    let mut h = H::new();
    let mut c = Client::rest("192.0.2.10:5000", h.unix_now() + 10, "@a:x", SECRET);
    assert!(h.allocate(&mut c, &[]).ok());
    h.advance(Duration::from_secs(300));
    // Credential expired 290 s ago; the allocation's cached key still verifies (coturn).
    let r = h.request(&mut c, Method::REFRESH, &[A::Lifetime(600)]);
    assert!(r.ok(), "{:?}", r.code());
}

#[test]
fn static_users_password_and_key() {
    let mut h = H::with(|c| {
        c.auth = Auth::LongTerm {
            users: vec![
                User::parse("bob:hunter2", REALM).unwrap(),
                User::parse(
                    &format!(
                        "carol:0x{}",
                        auth::long_term_key("carol", REALM, "pw")
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<String>()
                    ),
                    REALM,
                )
                .unwrap(),
            ],
            secrets: vec![],
            separator: ':',
        };
    });
    let mut bob = Client::new("192.0.2.10:5000", "bob", "hunter2");
    assert!(h.allocate(&mut bob, &[]).ok());
    let mut carol = Client::new("192.0.2.10:5001", "carol", "pw");
    assert!(h.allocate(&mut carol, &[]).ok());
    let mut wrong = Client::new("192.0.2.10:5002", "bob", "hunter3");
    assert_eq!(h.allocate(&mut wrong, &[]).code(), Some(401));
    let mut nobody = Client::new("192.0.2.10:5003", "dave", "x");
    assert_eq!(h.allocate(&mut nobody, &[]).code(), Some(401));
    assert!(events(&mut h).iter().any(|e| matches!(
        e,
        Event::AuthFailed {
            reason: AuthFailure::UnknownUser,
            ..
        }
    )));
}

#[test]
fn anonymous_mode() {
    let mut h = H::with(|c| {
        c.auth = Auth::None;
        c.user_quota = 1;
        c.total_quota = 2;
    });
    let mut c = Client::new("192.0.2.10:5000", "", "");
    let r = h.allocate(&mut c, &[]);
    assert!(r.ok());
    assert!(r.msg().integrity().is_none());
    assert!(h.permit(&mut c, &[sa(PEER)]).ok());
    // user-quota does not lump all anonymous clients together; total-quota applies.
    let mut d = Client::new("192.0.2.10:5001", "", "");
    assert!(h.allocate(&mut d, &[]).ok());
    let mut e = Client::new("192.0.2.10:5002", "", "");
    assert_eq!(h.allocate(&mut e, &[]).code(), Some(486));
    // `no-auth` with credentials configured is anonymous too.
    let mut h = H::with(|c| c.no_auth = true);
    let mut c = Client::new("192.0.2.10:5000", "", "");
    assert!(h.allocate(&mut c, &[]).ok());
}

#[test]
fn sha256_integrity_is_answered_in_kind() {
    let mut h = H::new();
    let mut c = alice(&h, 5000);
    c.sha256 = true;
    let r = h.allocate(&mut c, &[]);
    assert!(r.ok(), "{:?}", r.code());
    let m = r.msg();
    assert!(m.get(attr::MESSAGE_INTEGRITY_SHA256).is_some());
    assert!(m.get(attr::MESSAGE_INTEGRITY).is_none());
    m.verify_integrity_sha256(&c.key).unwrap();
    c.sha256 = false;
    let r = h.permit(&mut c, &[sa(PEER)]);
    assert!(r.ok());
    assert!(r.msg().get(attr::MESSAGE_INTEGRITY).is_some());
}

#[test]
fn fingerprint_on_responses_when_requested() {
    let mut h = H::new();
    let mut c = alice(&h, 5000);
    c.fingerprint = true;
    let r = h.allocate(&mut c, &[]);
    assert!(r.ok());
    assert_eq!(r.attr_types().last(), Some(&attr::FINGERPRINT));
    assert_eq!(
        r.attr_types()[r.attr_types().len() - 2],
        attr::MESSAGE_INTEGRITY
    );
}

#[test]
fn allocation_lifetime_expiry_and_refresh() {
    let mut h = H::new();
    let mut c = alice(&h, 5000);
    let relayed = h.alloc_ok(&mut c);
    let relay = h.relays.id_of(relayed).unwrap();
    h.advance(Duration::from_secs(599));
    assert_eq!(h.server.allocation_count(), 1);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.server.allocation_count(), 0);
    assert_eq!(h.relays.closed, vec![relay]);
    assert!(events(&mut h).iter().any(|e| matches!(
        e,
        Event::AllocationFreed {
            reason: FreeReason::Expired,
            ..
        }
    )));
    // Gone: requests on it get 437.
    let r = h.request(&mut c, Method::REFRESH, &[]);
    assert_eq!(r.code(), Some(437));

    // Refresh keeps it alive; lifetime clamp like coturn.
    let mut c = alice(&h, 5001);
    let r = h.allocate(&mut c, &[A::Lifetime(30)]);
    assert_eq!(r.lifetime(), Some(600), "below 600 is raised");
    let r = h.request(&mut c, Method::REFRESH, &[A::Lifetime(100_000)]);
    assert_eq!(r.lifetime(), Some(3600), "capped at max-allocate-lifetime");
    h.advance(Duration::from_secs(3000));
    let r = h.request(&mut c, Method::REFRESH, &[]);
    assert_eq!(r.lifetime(), Some(600), "absent → default");
    h.advance(Duration::from_secs(599));
    assert_eq!(h.server.allocation_count(), 1);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.server.allocation_count(), 0);
}

#[test]
fn permission_and_channel_expiry() {
    let mut h = H::new();
    let mut c = alice(&h, 5000);
    let relayed = h.alloc_ok(&mut c);
    let relay = h.relays.id_of(relayed).unwrap();
    assert!(
        h.request(&mut c, Method::REFRESH, &[A::Lifetime(3600)])
            .ok()
    );
    let peer = sa(PEER);
    assert!(h.permit(&mut c, &[peer]).ok());
    h.advance(Duration::from_secs(299));
    assert!(h.peer_sends(relay, peer, b"x").delivered());
    h.advance(Duration::from_secs(1));
    assert!(!h.peer_sends(relay, peer, b"x").delivered());
    assert_eq!(
        h.send_indication(&mut c, peer, b"x").outcome,
        ClientOutcome::Drop(DropReason::NoPermission)
    );

    // Channel: 600 s (and it holds the permission as long as the channel).
    assert!(h.bind(&mut c, 0x4000, peer).ok());
    h.advance(Duration::from_secs(599));
    assert_eq!(h.peer_sends(relay, peer, b"x").bytes[..2], [0x40, 0x00]);
    assert!(matches!(
        h.channel_data(&c, 0x4000, b"x").outcome,
        ClientOutcome::ToPeer { .. }
    ));
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.channel_data(&c, 0x4000, b"x").outcome,
        ClientOutcome::Drop(DropReason::UnboundChannel)
    );
    // Within the 5-minute quarantine the number cannot go to another peer...
    let other = sa("8.8.4.4:1");
    assert_eq!(h.bind(&mut c, 0x4000, other).code(), Some(400));
    // ...but can be re-bound to the same one.
    assert!(h.bind(&mut c, 0x4000, peer).ok());
    // A refresh of the binding extends it.
    h.advance(Duration::from_secs(500));
    assert!(h.bind(&mut c, 0x4000, peer).ok());
    h.advance(Duration::from_secs(500));
    assert!(h.peer_sends(relay, peer, b"x").delivered());
}

#[test]
fn stale_nonce_gives_438_then_succeeds() {
    let mut h = H::new();
    let mut c = alice(&h, 5000);
    h.alloc_ok(&mut c);
    assert!(
        h.request(&mut c, Method::REFRESH, &[A::Lifetime(3600)])
            .ok()
    );
    let old_nonce = c.nonce.clone();
    h.advance(Duration::from_secs(601));
    // Mid-call, the nonce went stale: 438 (never 401) with a fresh NONCE and REALM.
    let r = h.once(&mut c, Method::CREATE_PERMISSION, &[A::Peer(sa(PEER))]);
    assert_eq!(r.code(), Some(438));
    let m = r.msg();
    assert!(m.integrity().is_none());
    assert_eq!(m.get(attr::REALM), Some(REALM.as_bytes()));
    assert_ne!(m.get(attr::NONCE).unwrap(), &old_nonce[..]);
    // The client retries with it.
    let r = h.permit(&mut c, &[sa(PEER)]);
    assert!(r.ok(), "{:?}", r.code());
    assert_ne!(c.nonce, old_nonce);
    // A nonce issued to another client address is not valid here either → 438.
    let mut other = alice(&h, 5001);
    other.nonce = c.nonce.clone();
    let r = h.once(&mut other, Method::ALLOCATE, &[udp()]);
    assert_eq!(r.code(), Some(438));
}

#[test]
fn quotas_486() {
    let mut h = H::with(|c| c.user_quota = 1);
    let mut a1 = alice(&h, 5000);
    let mut a2 = alice(&h, 5001);
    assert!(h.allocate(&mut a1, &[]).ok());
    let r = h.allocate(&mut a2, &[]);
    assert_eq!(r.code(), Some(486));
    r.msg().verify_integrity(&a2.key).unwrap();
    // Another Matrix user is not affected (quota key = user part of the REST name).
    let mut b = Client::rest("192.0.2.10:5002", h.unix_now() + 60, "@bob:x", SECRET);
    assert!(h.allocate(&mut b, &[]).ok());
    // Freeing releases the quota.
    assert!(h.request(&mut a1, Method::REFRESH, &[A::Lifetime(0)]).ok());
    assert!(h.allocate(&mut a2, &[]).ok());

    let mut h = H::with(|c| c.total_quota = 2);
    for port in 0..2 {
        let mut c = Client::rest(
            &format!("192.0.2.10:{}", 6000 + port),
            h.unix_now() + 60,
            &format!("@u{port}:x"),
            SECRET,
        );
        assert!(h.allocate(&mut c, &[]).ok());
    }
    let mut c = alice(&h, 7000);
    assert_eq!(h.allocate(&mut c, &[]).code(), Some(486));
}

#[test]
fn port_exhaustion_508_and_ports_freed_on_expiry() {
    let mut h = H::with(|c| c.port_range = 50000..=50001);
    let mut a = alice(&h, 5000);
    let mut b = alice(&h, 5001);
    let mut c = alice(&h, 5002);
    let ra = h.alloc_ok(&mut a);
    h.advance(Duration::from_secs(10));
    let rb = h.alloc_ok(&mut b);
    assert_ne!(ra.port(), rb.port());
    let r = h.allocate(&mut c, &[]);
    assert_eq!(r.code(), Some(508));
    assert_eq!(h.server.stats().errors_sent(508), 1);
    h.advance(Duration::from_secs(591));
    assert_eq!(h.server.allocation_count(), 1);
    let rc = h.alloc_ok(&mut c);
    assert_eq!(rc.port(), ra.port());
    // A port taken by another process is skipped.
    let mut h = H::with(|c| c.port_range = 50000..=50001);
    h.relays.taken.insert(sa(&format!("{RELAY_V4}:50000")));
    let mut a = alice(&h, 5000);
    assert_eq!(h.alloc_ok(&mut a).port(), 50001);
    // A bind error other than InUse → 508 without retrying forever; quota released.
    let mut h = H::with(|c| c.user_quota = 1);
    h.relays.fail_all = true;
    let mut a = alice(&h, 5000);
    assert_eq!(h.allocate(&mut a, &[]).code(), Some(508));
    h.relays.fail_all = false;
    assert!(h.allocate(&mut a, &[]).ok());
}

#[test]
fn even_port_and_reservation_token() {
    let mut h = H::with(|c| c.port_range = 50000..=50003);
    let mut a = alice(&h, 5000);
    let r = h.allocate(&mut a, &[A::EvenPort(true)]);
    assert!(r.ok());
    let even = r.xor_addr(attr::XOR_RELAYED_ADDRESS).unwrap();
    assert_eq!(even.port() % 2, 0);
    let token: [u8; 8] = r
        .msg()
        .get(attr::RESERVATION_TOKEN)
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(h.server.reservation_count(), 1);
    // Another client uses the token and gets the odd sibling.
    let mut b = alice(&h, 5001);
    let r = h.allocate(&mut b, &[A::Token(token)]);
    assert!(r.ok(), "{:?}", r.code());
    assert_eq!(
        r.xor_addr(attr::XOR_RELAYED_ADDRESS).unwrap().port(),
        even.port() + 1
    );
    assert_eq!(h.server.reservation_count(), 0);
    // Used tokens do not work twice.
    let mut c = alice(&h, 5002);
    assert_eq!(h.allocate(&mut c, &[A::Token(token)]).code(), Some(508));
    // Together with EVEN-PORT → 400; with REQUESTED-ADDRESS-FAMILY → 400.
    assert_eq!(
        h.allocate(&mut c, &[A::EvenPort(false), A::Token(token)])
            .code(),
        Some(400)
    );
    assert_eq!(
        h.allocate(&mut c, &[A::Token(token), A::Family(1)]).code(),
        Some(400)
    );
}

#[test]
fn reservation_expires_after_30s_and_frees_the_odd_port() {
    let mut h = H::with(|c| c.port_range = 50000..=50001);
    let mut a = alice(&h, 5000);
    let r = h.allocate(&mut a, &[A::EvenPort(true)]);
    assert!(r.ok());
    let token: [u8; 8] = r
        .msg()
        .get(attr::RESERVATION_TOKEN)
        .unwrap()
        .try_into()
        .unwrap();
    // Both ports are held: a plain allocation finds nothing.
    let mut b = alice(&h, 5001);
    assert_eq!(h.allocate(&mut b, &[]).code(), Some(508));
    h.advance(Duration::from_secs(30));
    assert_eq!(h.server.reservation_count(), 0);
    let mut c = alice(&h, 5002);
    assert_eq!(h.allocate(&mut c, &[A::Token(token)]).code(), Some(508));
    // The odd port is free again (no leak).
    let r = h.allocate(&mut b, &[]);
    assert!(r.ok(), "{:?}", r.code());
    assert_eq!(r.xor_addr(attr::XOR_RELAYED_ADDRESS).unwrap().port(), 50001);
}

#[test]
fn even_port_without_reservation_does_not_leak() {
    let mut h = H::with(|c| c.port_range = 50000..=50001);
    let mut a = alice(&h, 5000);
    let r = h.allocate(&mut a, &[A::EvenPort(false)]);
    assert!(r.ok());
    assert_eq!(r.xor_addr(attr::XOR_RELAYED_ADDRESS).unwrap().port(), 50000);
    assert!(!r.has(attr::RESERVATION_TOKEN));
    let mut b = alice(&h, 5001);
    let r = h.allocate(&mut b, &[]);
    assert_eq!(r.xor_addr(attr::XOR_RELAYED_ADDRESS).unwrap().port(), 50001);
    // No even port left → 508.
    let mut c = alice(&h, 5002);
    assert_eq!(h.allocate(&mut c, &[A::EvenPort(false)]).code(), Some(508));
}

#[test]
fn allocate_errors() {
    let mut h = H::new();
    let mut c = alice(&h, 5000);
    // Missing REQUESTED-TRANSPORT → 400 (after auth, so signed).
    let r = h.request(&mut c, Method::ALLOCATE, &[]);
    assert_eq!(r.code(), Some(400));
    r.msg().verify_integrity(&c.key).unwrap();
    // TCP over UDP → 400 (RFC 6062 §5.1: TCP allocations need a TCP/TLS client);
    // another protocol → 442.
    let r = h.request(&mut c, Method::ALLOCATE, &[A::Transport(6)]);
    assert_eq!(r.code(), Some(400));
    let r = h.request(&mut c, Method::ALLOCATE, &[A::Transport(132)]);
    assert_eq!(r.code(), Some(442));
    // IPv6 without an IPv6 relay address → 440; unknown family → 440.
    assert_eq!(h.allocate(&mut c, &[A::Family(2)]).code(), Some(440));
    assert_eq!(h.allocate(&mut c, &[A::Family(3)]).code(), Some(440));
    // REQUESTED- and ADDITIONAL-ADDRESS-FAMILY together → 400; ADDITIONAL v4 → 400.
    assert_eq!(
        h.allocate(&mut c, &[A::Family(1), A::AddFamily(2)]).code(),
        Some(400)
    );
    assert_eq!(h.allocate(&mut c, &[A::AddFamily(1)]).code(), Some(400));
    // DONT-FRAGMENT is accepted.
    let first = h.allocate(&mut c, &[A::DontFragment]);
    assert!(first.ok());
    // A new Allocate on the same 5-tuple → 437.
    assert_eq!(h.allocate(&mut c, &[]).code(), Some(437));
    // Unknown comprehension-required attribute → 420 with UNKNOWN-ATTRIBUTES, signed.
    let r = h.request(
        &mut c,
        Method::CREATE_PERMISSION,
        &[A::Peer(sa(PEER)), A::Raw(0x0077, vec![0; 4])],
    );
    assert_eq!(r.code(), Some(420));
    assert_eq!(
        r.msg().get(attr::UNKNOWN_ATTRIBUTES),
        Some(&[0x00, 0x77][..])
    );
    r.msg().verify_integrity(&c.key).unwrap();
    // Unknown method → 400.
    let r = h.request(&mut c, Method(0x0F0), &[]);
    assert_eq!(r.code(), Some(400));
    // Connect (RFC 6062) → 400 until TCP allocations exist.
    let r = h.request(&mut c, Method::CONNECT, &[A::Peer(sa(PEER))]);
    assert_eq!(r.code(), Some(400));
}

#[test]
fn additional_address_family_reports_440_for_ipv6() {
    let mut h = H::new();
    let mut c = alice(&h, 5000);
    let r = h.allocate(&mut c, &[A::AddFamily(2)]);
    assert!(r.ok());
    let v = r.msg().get(attr::ADDRESS_ERROR_CODE).unwrap().to_vec();
    assert_eq!((v[0], v[2], v[3]), (0x02, 4, 40));
    assert!(r.xor_addr(attr::XOR_RELAYED_ADDRESS).unwrap().is_ipv4());
}

#[test]
fn retransmitted_allocate_gets_the_same_answer() {
    let mut h = H::new();
    let mut c = alice(&h, 5000);
    h.once(&mut c, Method::ALLOCATE, &[udp()]); // 401, nonce
    let r = h.once(&mut c, Method::ALLOCATE, &[udp()]);
    assert_eq!(r.code(), Some(401)); // no nonce known yet in the client → take it
    c.nonce = r.msg().get(attr::NONCE).unwrap().to_vec();
    let tid = c.next_tid();
    let req = c.build(Class::Request, Method::ALLOCATE, tid, &[udp()]);
    let first = h.raw(c.addr, &req);
    assert!(first.ok());
    h.advance(Duration::from_millis(500));
    let again = h.raw(c.addr, &req);
    assert!(again.ok(), "{:?}", again.code());
    assert_eq!(
        first.xor_addr(attr::XOR_RELAYED_ADDRESS),
        again.xor_addr(attr::XOR_RELAYED_ADDRESS)
    );
    assert_eq!(h.server.allocation_count(), 1);
    assert_eq!(h.relays.bound.len(), 1);
}

#[test]
fn auth_error_order() {
    let mut h = H::new();
    let mut c = alice(&h, 5000);
    h.alloc_ok(&mut c);
    // MI present, NONCE missing → 400 (built by hand).
    let tid = c.next_tid();
    let mut buf = vec![0u8; 512];
    let mut b = switchyard_stun::MessageBuilder::new(
        &mut buf,
        switchyard_stun::MessageType {
            class: Class::Request,
            method: Method::REFRESH,
        },
        tid,
    )
    .unwrap();
    b.add(attr::USERNAME, c.username.as_bytes()).unwrap();
    b.add(attr::REALM, REALM.as_bytes()).unwrap();
    b.add_message_integrity(&c.key).unwrap();
    let n = b.finish();
    let r = h.raw(c.addr, &buf[..n]);
    assert_eq!(r.code(), Some(400));
    assert!(r.msg().integrity().is_none());
    // Wrong key → 401 (no MI in the answer).
    let saved = c.key;
    c.key = [0; 16];
    let r = h.once(&mut c, Method::REFRESH, &[]);
    assert_eq!(r.code(), Some(401));
    assert!(r.msg().integrity().is_none());
    c.key = saved;
    // Another user on this allocation → 441 (Refresh) and 437 (Allocate).
    let mut bob = Client::rest(
        &c.addr.remote.to_string(),
        h.unix_now() + 60,
        "@bob:x",
        SECRET,
    );
    bob.nonce = c.nonce.clone();
    let r = h.once(&mut bob, Method::REFRESH, &[]);
    assert_eq!(r.code(), Some(441));
    r.msg().verify_integrity(&bob.key).unwrap();
    let r = h.once(&mut bob, Method::ALLOCATE, &[udp()]);
    assert_eq!(r.code(), Some(437));
    // Wrong REALM → 401.
    c.realm = "other".into();
    assert_eq!(h.once(&mut c, Method::REFRESH, &[]).code(), Some(401));
}

#[test]
fn refresh_without_allocation_and_family_mismatch() {
    let mut h = H::new();
    let mut c = alice(&h, 5000);
    let r = h.request(&mut c, Method::REFRESH, &[]);
    assert_eq!(r.code(), Some(437));
    r.msg().verify_integrity(&c.key).unwrap();
    assert_eq!(
        h.request(&mut c, Method::CREATE_PERMISSION, &[A::Peer(sa(PEER))])
            .code(),
        Some(437)
    );
    assert_eq!(h.bind(&mut c, 0x4000, sa(PEER)).code(), Some(437));
    h.alloc_ok(&mut c);
    // RFC 8656 §7.3: REQUESTED-ADDRESS-FAMILY of the other family → 443.
    assert_eq!(
        h.request(&mut c, Method::REFRESH, &[A::Family(2)]).code(),
        Some(443)
    );
    assert!(h.request(&mut c, Method::REFRESH, &[A::Family(1)]).ok());
}

#[test]
fn create_permission_rules() {
    let mut h = H::new();
    let mut c = alice(&h, 5000);
    let relayed = h.alloc_ok(&mut c);
    let relay = h.relays.id_of(relayed).unwrap();
    // No XOR-PEER-ADDRESS → 400.
    assert_eq!(
        h.request(&mut c, Method::CREATE_PERMISSION, &[]).code(),
        Some(400)
    );
    // All or nothing: one bad address fails the lot and installs nothing.
    let r = h.permit(&mut c, &[sa("8.8.8.8:1"), sa("10.0.0.1:1")]);
    assert_eq!(r.code(), Some(403));
    assert!(!h.peer_sends(relay, sa("8.8.8.8:1"), b"x").delivered());
    // IPv6 peer on an IPv4 allocation → 443.
    assert_eq!(
        h.permit(&mut c, &[sa("[2a00:1450::1]:1")]).code(),
        Some(443)
    );
    // Several at once.
    assert!(h.permit(&mut c, &[sa("8.8.8.8:1"), sa("1.1.1.1:1")]).ok());
    assert!(h.peer_sends(relay, sa("1.1.1.1:9"), b"x").delivered());
    // Cap on distinct permission IPs → 508.
    let mut n = 2;
    let mut last = None;
    for i in 0..100u32 {
        let ip = std::net::Ipv4Addr::from(0x0909_0000 + i);
        let r = h.permit(&mut c, &[std::net::SocketAddr::new(ip.into(), 1)]);
        last = r.code();
        if r.ok() {
            n += 1;
        } else {
            break;
        }
    }
    assert_eq!(last, Some(508));
    assert_eq!(n, switchyard_turn::allocation::MAX_PERMISSIONS);
    // Refreshing an existing one still works at the cap.
    assert!(h.permit(&mut c, &[sa("8.8.8.8:1")]).ok());
    assert!(h.server.stats().peer_denied >= 1);
}

#[test]
fn channel_bind_rules() {
    let mut h = H::new();
    let mut c = alice(&h, 5000);
    h.alloc_ok(&mut c);
    let peer = sa(PEER);
    // Bad numbers and missing attributes → 400.
    assert_eq!(h.bind(&mut c, 0x3FFF, peer).code(), Some(400));
    assert_eq!(
        h.bind(&mut c, 0x5000, peer).code(),
        Some(400),
        "RFC 8656 range"
    );
    assert_eq!(
        h.request(&mut c, Method::CHANNEL_BIND, &[A::Channel(0x4000)])
            .code(),
        Some(400)
    );
    assert_eq!(
        h.request(&mut c, Method::CHANNEL_BIND, &[A::Peer(peer)])
            .code(),
        Some(400)
    );
    assert!(h.bind(&mut c, 0x4000, peer).ok());
    // Same number, other peer → 400; same peer, other number → 400.
    assert_eq!(
        h.bind(&mut c, 0x4000, sa("8.8.8.8:40001")).code(),
        Some(400)
    );
    assert_eq!(h.bind(&mut c, 0x4001, peer).code(), Some(400));
    // Rebinding the same pair refreshes.
    assert!(h.bind(&mut c, 0x4000, peer).ok());
    // Policy and family.
    assert_eq!(h.bind(&mut c, 0x4002, sa("127.0.0.1:1")).code(), Some(403));
    assert_eq!(h.bind(&mut c, 0x4002, sa("[2a00::1]:1")).code(), Some(443));

    let mut h = H::with(|c| c.rfc5766_channel_numbers = true);
    let mut c = alice(&h, 5000);
    h.alloc_ok(&mut c);
    assert!(h.bind(&mut c, 0x7FFE, peer).ok());
    assert_eq!(h.bind(&mut c, 0x7FFF, sa("8.8.8.8:1")).code(), Some(400));
}

#[test]
fn stream_transport_pads_channel_data() {
    let mut h = H::new();
    let mut c = Client::rest("192.0.2.10:6000", h.unix_now() + 60, "@a:x", SECRET);
    c.addr.transport = Transport::Tcp;
    let relayed = h.alloc_ok(&mut c);
    let relay = h.relays.id_of(relayed).unwrap();
    let peer = sa(PEER);
    assert!(h.bind(&mut c, 0x4000, peer).ok());
    let p = h.peer_sends(relay, peer, b"abcde");
    assert_eq!(
        p.bytes,
        [0x40, 0, 0, 5, b'a', b'b', b'c', b'd', b'e', 0, 0, 0]
    );
    let p = h.peer_sends(relay, peer, b"abcd");
    assert_eq!(p.bytes.len(), 8);
    // Client → peer over TCP with padding after the data.
    let r = h.raw(c.addr, &[0x40, 0x00, 0x00, 0x01, 7, 0, 0, 0]);
    assert_eq!(r.bytes, [7]);
    // Closing the connection frees the allocation (RFC 8656 §2.2).
    let mut udp_twin = c.addr;
    udp_twin.transport = Transport::Udp;
    h.server
        .handle_client_closed(h.now, udp_twin, &mut h.relays);
    assert_eq!(h.server.allocation_count(), 1);
    h.server.handle_client_closed(h.now, c.addr, &mut h.relays);
    assert_eq!(h.server.allocation_count(), 0);
    assert_eq!(h.relays.closed, vec![relay]);
    assert!(events(&mut h).iter().any(|e| matches!(
        e,
        Event::AllocationFreed {
            reason: FreeReason::ConnectionClosed,
            ..
        }
    )));
}

/// Without `relay-ip`, a client asking for the other family gets a relay on a listening
/// address of that family — never a loopback one for a client from outside.
#[test]
fn other_family_relays_on_a_listening_address() {
    let mut h = H::with(|c| {
        c.listen_ips = vec![
            RELAY_V4.parse().unwrap(),
            "::1".parse().unwrap(),
            RELAY_V6.parse().unwrap(),
        ]
    });
    let mut c = alice(&h, 5000);
    let r = h.allocate(&mut c, &[A::Family(2)]);
    assert!(r.ok(), "{:?}", r.code());
    assert_eq!(
        r.xor_addr(attr::XOR_RELAYED_ADDRESS)
            .unwrap()
            .ip()
            .to_string(),
        RELAY_V6
    );
    // No IPv6 listening address but loopback: 440 for an outside client.
    let mut h = H::with(|c| c.listen_ips = vec![RELAY_V4.parse().unwrap(), "::1".parse().unwrap()]);
    let mut c = alice(&h, 5001);
    assert_eq!(h.allocate(&mut c, &[A::Family(2)]).code(), Some(440));
}

#[test]
fn data_indication_ipv6_padding() {
    let mut h =
        H::with(|c| c.relay_ips = vec![RELAY_V4.parse().unwrap(), RELAY_V6.parse().unwrap()]);
    let mut c = alice(&h, 5000);
    let r = h.allocate(&mut c, &[A::Family(2)]);
    assert!(r.ok(), "{:?}", r.code());
    let relayed = r.xor_addr(attr::XOR_RELAYED_ADDRESS).unwrap();
    assert_eq!(relayed.ip().to_string(), RELAY_V6);
    let relay = h.relays.id_of(relayed).unwrap();
    let peer = sa("[2a00:1450:4001::5]:3000");
    assert!(h.permit(&mut c, &[peer]).ok());
    let p = h.peer_sends(relay, peer, b"xyz");
    let m = Message::parse(&p.bytes).expect("padded Data indication parses");
    assert_eq!(m.data(), Some(&b"xyz"[..]));
    assert_eq!(
        decode_xor(
            m.get(attr::XOR_PEER_ADDRESS).unwrap(),
            &m.transaction_id().0
        ),
        Some(peer)
    );
    assert_eq!(p.bytes.len() % 4, 0);
    // Refresh asking for IPv4 on the IPv6 allocation → 443.
    assert_eq!(
        h.request(&mut c, Method::REFRESH, &[A::Family(1)]).code(),
        Some(443)
    );
}

#[test]
fn external_ip_is_advertised() {
    let mut h = H::with(|c| {
        c.external_ips = vec![ExternalIp {
            public: "203.0.113.50".parse().unwrap(),
            private: Some(RELAY_V4.parse().unwrap()),
        }];
    });
    let mut c = alice(&h, 5000);
    let relayed = h.alloc_ok(&mut c);
    assert_eq!(relayed.ip().to_string(), "203.0.113.50");
    // The fake bound the private address.
    assert!(
        h.relays
            .bound
            .values()
            .all(|a| a.ip().to_string() == RELAY_V4)
    );
}

/// `external-ip=PUB/PRIV`: a client naming the server's public address as a peer (both
/// callers on the same relay behind NAT) reaches the private relay address, and Data
/// indications name the public one again, as coturn does.
#[test]
fn external_ip_pair_maps_peer_addresses() {
    let public = "203.0.113.50";
    let mut h = H::with(|c| {
        c.external_ips = vec![ExternalIp {
            public: public.parse().unwrap(),
            private: Some(RELAY_V4.parse().unwrap()),
        }];
    });
    let mut c = alice(&h, 5000);
    h.alloc_ok(&mut c);
    let relay = *h.relays.bound.keys().next().unwrap();
    let peer_public = sa(&format!("{public}:50050"));
    let peer_private = sa(&format!("{RELAY_V4}:50050"));
    assert!(h.permit(&mut c, &[peer_public]).ok());
    match h.send_indication(&mut c, peer_public, b"hi").outcome {
        ClientOutcome::ToPeer { peer, .. } => assert_eq!(peer, peer_private),
        other => panic!("{other:?}"),
    }
    let p = h.peer_sends(relay, peer_private, b"back");
    assert!(p.delivered(), "{:?}", p.outcome);
    let m = Message::parse(&p.bytes).unwrap();
    assert_eq!(
        decode_xor(
            m.get(attr::XOR_PEER_ADDRESS).unwrap(),
            &m.transaction_id().0
        ),
        Some(peer_public)
    );
    // A bare external-ip maps nothing.
    let mut h = H::with(|c| {
        c.external_ips = vec![ExternalIp {
            public: "198.51.100.9".parse().unwrap(),
            private: None,
        }];
    });
    let mut c = alice(&h, 5001);
    h.alloc_ok(&mut c);
    let other = sa("8.8.4.4:999");
    assert!(h.permit(&mut c, &[other]).ok());
    match h.send_indication(&mut c, other, b"x").outcome {
        ClientOutcome::ToPeer { peer, .. } => assert_eq!(peer, other),
        o => panic!("{o:?}"),
    }
}

#[test]
fn bad_input_is_dropped_silently() {
    let mut h = H::new();
    let mut c = alice(&h, 5000);
    h.alloc_ok(&mut c);
    // Truncated STUN.
    let tid = c.next_tid();
    let good = c.build(Class::Request, Method::BINDING, tid, &[]);
    let r = h.raw(c.addr, &good[..10]);
    assert_eq!(r.outcome, ClientOutcome::Drop(DropReason::Malformed));
    // Length field lies.
    let mut bad = good.clone();
    bad[3] = 8;
    assert_eq!(
        h.raw(c.addr, &bad).outcome,
        ClientOutcome::Drop(DropReason::Malformed)
    );
    // Bad FINGERPRINT.
    c.fingerprint = true;
    let tid = c.next_tid();
    let mut fp = c.build(Class::Request, Method::BINDING, tid, &[]);
    let last = fp.len() - 1;
    fp[last] ^= 1;
    assert_eq!(
        h.raw(c.addr, &fp).outcome,
        ClientOutcome::Drop(DropReason::BadFingerprint)
    );
    c.fingerprint = false;
    // Bad MESSAGE-INTEGRITY (flip a byte in the HMAC) → 401, not a drop.
    let tid = c.next_tid();
    let mut mi = c.build(Class::Request, Method::REFRESH, tid, &[]);
    let last = mi.len() - 1;
    mi[last] ^= 1;
    assert_eq!(h.raw(c.addr, &mi).code(), Some(401));
    // Not STUN, not ChannelData.
    assert_eq!(
        h.raw(c.addr, &[0xFF, 1, 2, 3]).outcome,
        ClientOutcome::Drop(DropReason::NotTurn)
    );
    assert_eq!(
        h.raw(c.addr, &[]).outcome,
        ClientOutcome::Drop(DropReason::NotTurn)
    );
    // Responses from a client are ignored.
    let tid = c.next_tid();
    let resp = c.build(Class::Success, Method::BINDING, tid, &[]);
    assert_eq!(
        h.raw(c.addr, &resp).outcome,
        ClientOutcome::Drop(DropReason::UnexpectedClass)
    );
    // A Send indication with an unknown comprehension-required attribute → drop.
    assert!(h.permit(&mut c, &[sa(PEER)]).ok());
    let tid = c.next_tid();
    let ind = c.build(
        Class::Indication,
        Method::SEND,
        tid,
        &[
            A::Peer(sa(PEER)),
            A::Data(b"x".to_vec()),
            A::Raw(0x0055, vec![0; 4]),
        ],
    );
    assert_eq!(
        h.raw(c.addr, &ind).outcome,
        ClientOutcome::Drop(DropReason::UnknownAttribute)
    );
    // Send indication without DATA → drop.
    let tid = c.next_tid();
    let ind = c.build(Class::Indication, Method::SEND, tid, &[A::Peer(sa(PEER))]);
    assert_eq!(
        h.raw(c.addr, &ind).outcome,
        ClientOutcome::Drop(DropReason::BadSendIndication)
    );
    let s = h.server.stats();
    assert!(s.drops(DropReason::Malformed) >= 2);
    assert_eq!(s.drops(DropReason::BadFingerprint), 1);
}

#[test]
fn peer_input_edge_cases() {
    let mut h = H::new();
    let mut c = alice(&h, 5000);
    let relayed = h.alloc_ok(&mut c);
    let relay = h.relays.id_of(relayed).unwrap();
    assert!(h.permit(&mut c, &[sa(PEER)]).ok());
    // Unknown relay id.
    assert_eq!(
        h.peer_sends(RelayId(999), sa(PEER), b"x").outcome,
        PeerOutcome::Drop(DropReason::NoAllocation)
    );
    // Not enough headroom for a Data indication.
    let mut buf = vec![0u8; 10];
    let out = h.server.handle_peer(h.now, relay, sa(PEER), &mut buf, 2..6);
    assert_eq!(out, PeerOutcome::Drop(DropReason::PayloadTooLarge));
    // Bogus range.
    let out = h
        .server
        .handle_peer(h.now, relay, sa(PEER), &mut buf, 8..20);
    assert_eq!(out, PeerOutcome::Drop(DropReason::PayloadTooLarge));
    // Empty payload is fine.
    assert!(h.peer_sends(relay, sa(PEER), b"").delivered());
}

#[test]
fn events_are_bounded() {
    let mut h = H::new();
    let mut c = alice(&h, 5000);
    h.alloc_ok(&mut c);
    for _ in 0..(switchyard_turn::Server::EVENT_CAPACITY + 10) {
        h.permit(&mut c, &[sa("10.0.0.1:1")]);
    }
    assert!(h.server.stats().events_dropped >= 10);
    assert_eq!(
        events(&mut h).len(),
        switchyard_turn::Server::EVENT_CAPACITY
    );
}
