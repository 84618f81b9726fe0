//! `max-bps`, `bps-capacity`, configured lifetimes and live reconfiguration, through the
//! in-memory harness with a virtual clock.

mod harness;

use std::sync::Arc;
use std::time::Duration;

use harness::*;
use switchyard_stun::Method;
use switchyard_turn::{
    Auth, Capacity, ClientOutcome, DropReason, PeerPolicy, PolicyConfig, RelayId,
};

const PEER: &str = "8.8.8.8:40000";
const SIZE: usize = 1000;

fn client(h: &H, port: u16, user: &str) -> Client {
    Client::rest(
        &format!("192.0.2.10:{port}"),
        h.unix_now() + 3600,
        user,
        SECRET,
    )
}

/// An allocation with a permission and channel 0x4000 bound to [`PEER`].
fn ready(h: &mut H, port: u16, user: &str) -> (Client, RelayId) {
    let mut c = client(h, port, user);
    let relayed = h.alloc_ok(&mut c);
    assert!(h.bind(&mut c, 0x4000, sa(PEER)).ok());
    (c, h.relays.id_of(relayed).unwrap())
}

/// Both directions for `secs` virtual seconds at `pps` packets of [`SIZE`] bytes a second,
/// for each of `clients`; returns the bytes relayed (to peers, to clients).
fn offer(h: &mut H, clients: &[(&Client, RelayId)], pps: u64, secs: u64) -> (u64, u64) {
    let (mut up, mut down) = (0, 0);
    let step = Duration::from_micros(1_000_000 / pps);
    let payload = vec![7u8; SIZE];
    for _ in 0..pps * secs {
        h.now += step;
        for (c, relay) in clients {
            if matches!(
                h.channel_data(c, 0x4000, &payload).outcome,
                ClientOutcome::ToPeer { .. }
            ) {
                up += SIZE as u64;
            }
            if h.peer_sends(*relay, sa(PEER), &payload).delivered() {
                down += SIZE as u64;
            }
        }
    }
    (up, down)
}

/// `rate` bytes/s for `secs` seconds plus the initial burst (a quarter second of the rate).
fn expected(rate: u64, secs: u64) -> u64 {
    rate * secs + rate / 4
}

fn assert_near(got: u64, want: u64, what: &str) {
    let tolerance = want / 50 + SIZE as u64; // 2 % and one packet
    assert!(
        got.abs_diff(want) <= tolerance,
        "{what}: relayed {got} B, expected {want} ± {tolerance}"
    );
}

#[test]
fn max_bps_limits_each_direction_of_each_allocation() {
    let rate = 40_000;
    let mut h = H::with(|c| c.max_bps = rate);
    let a = ready(&mut h, 5000, "@a:x");
    let b = ready(&mut h, 5001, "@b:x");
    // 100 kB/s offered per allocation and direction, for 20 s: 2.5× the limit.
    let (up, down) = offer(&mut h, &[(&a.0, a.1), (&b.0, b.1)], 100, 20);
    // Two allocations, each limited on its own.
    assert_near(up, 2 * expected(rate, 20), "client → peer");
    assert_near(down, 2 * expected(rate, 20), "peer → client");
    let dropped = 2 * 2 * 100 * 20 - (up + down) / SIZE as u64;
    assert_eq!(h.server.stats().drops(DropReason::BandwidthLimit), dropped);
}

#[test]
fn max_bps_send_indications_share_the_bucket_and_under_the_limit_nothing_drops() {
    let rate = 40_000;
    let mut h = H::with(|c| c.max_bps = rate);
    let (mut c, relay) = ready(&mut h, 5000, "@a:x");
    // 30 kB/s: below the limit, nothing is dropped.
    let (up, down) = offer(&mut h, &[(&c, relay)], 30, 10);
    assert_eq!((up, down), (300_000, 300_000));
    // A burst of Send indications empties the bucket; ChannelData is then refused too.
    let payload = vec![1u8; SIZE];
    let mut sent = 0;
    while matches!(
        h.send_indication(&mut c, sa(PEER), &payload).outcome,
        ClientOutcome::ToPeer { .. }
    ) {
        sent += 1;
        assert!(sent < 100, "the bucket never ran out");
    }
    assert!(
        sent >= 9,
        "a full bucket holds a quarter second (10 kB): {sent}"
    );
    assert_eq!(
        h.channel_data(&c, 0x4000, &payload).outcome,
        ClientOutcome::Drop(DropReason::BandwidthLimit)
    );
    // 100 ms later, 4 kB more are allowed.
    h.now += Duration::from_millis(100);
    for _ in 0..4 {
        assert!(matches!(
            h.channel_data(&c, 0x4000, &payload).outcome,
            ClientOutcome::ToPeer { .. }
        ));
    }
    assert_eq!(
        h.channel_data(&c, 0x4000, &payload).outcome,
        ClientOutcome::Drop(DropReason::BandwidthLimit)
    );
}

#[test]
fn bps_capacity_is_shared_by_all_allocations_and_workers() {
    let rate = 60_000;
    let mut capacity = None;
    let mut h = H::with(|c| {
        let cap = Arc::new(Capacity::new(rate, c.clock.instant));
        capacity = Some(cap.clone());
        c.bps_capacity = Some(cap);
    });
    let clients = [
        ready(&mut h, 5000, "@a:x"),
        ready(&mut h, 5001, "@b:x"),
        ready(&mut h, 5002, "@c:x"),
    ];
    // A second worker (another Server) with the same capacity, driven at the same times.
    let mut w2 = H::with(|c| c.bps_capacity = capacity.clone());
    let other = [ready(&mut w2, 6000, "@d:x")];
    let (mut up, mut down) = (0, 0);
    for _ in 0..10 {
        w2.now = h.now;
        let refs: Vec<_> = clients.iter().map(|(c, r)| (c, *r)).collect();
        let (u, d) = offer(&mut h, &refs, 50, 1);
        let (u2, d2) = offer(&mut w2, &[(&other[0].0, other[0].1)], 50, 1);
        up += u + u2;
        down += d + d2;
    }
    // 4 × 50 kB/s offered per direction, 60 kB/s allowed in total. Each worker may hold one
    // unspent slice (10 ms of the rate) per direction.
    let slack = 2 * rate / 100;
    for (got, what) in [(up, "client → peer"), (down, "peer → client")] {
        let want = expected(rate, 10);
        assert!(
            got.abs_diff(want) <= want / 50 + slack + SIZE as u64,
            "{what}: relayed {got} B, expected ≈ {want}"
        );
    }
    assert!(h.server.stats().drops(DropReason::CapacityLimit) > 0);
    assert_eq!(h.server.stats().drops(DropReason::BandwidthLimit), 0);
}

#[test]
fn configured_lifetimes() {
    let mut h = H::with(|c| {
        c.max_lifetime = Duration::from_secs(1200);
        c.permission_lifetime = Duration::from_secs(60);
        c.channel_lifetime = Duration::from_secs(120);
    });
    let mut c = client(&h, 5000, "@a:x");
    let relayed = h.alloc_ok(&mut c);
    let relay = h.relays.id_of(relayed).unwrap();
    let r = h.request(&mut c, Method::REFRESH, &[A::Lifetime(100_000)]);
    assert_eq!(r.lifetime(), Some(1200), "capped at max-allocate-lifetime");
    assert!(h.permit(&mut c, &[sa(PEER)]).ok());
    h.advance(Duration::from_secs(59));
    assert!(h.peer_sends(relay, sa(PEER), b"x").delivered());
    h.advance(Duration::from_secs(1));
    assert!(
        !h.peer_sends(relay, sa(PEER), b"x").delivered(),
        "permission-lifetime"
    );
    assert!(h.bind(&mut c, 0x4000, sa(PEER)).ok());
    h.advance(Duration::from_secs(119));
    assert!(h.peer_sends(relay, sa(PEER), b"x").delivered());
    h.advance(Duration::from_secs(1));
    assert!(
        !h.peer_sends(relay, sa(PEER), b"x").delivered(),
        "channel-lifetime"
    );
}

#[test]
fn reconfigure_keeps_allocations_and_applies_new_settings() {
    let mut h = H::new();
    let (mut a, relay) = ready(&mut h, 5000, "@a:x");
    let old_secret_client = client(&h, 5001, "@b:x");

    // Rotate the secret, deny the peer's range, limit bandwidth and quotas.
    let mut cfg = base_config(h.start);
    cfg.auth = Auth::LongTerm {
        users: vec![],
        secrets: vec!["a-new-secret".to_owned()],
        separator: ':',
    };
    cfg.policy = PeerPolicy::new(PolicyConfig {
        denied: vec![(sa("8.8.4.0:0").ip(), sa("8.8.4.255:0").ip())],
        ..PolicyConfig::default()
    });
    cfg.max_bps = 10_000;
    cfg.user_quota = 1;
    cfg.port_range = 1..=2; // ignored: the worker keeps its relay ports
    h.server.reconfigure(cfg);

    // The allocation is still there and relays, with the key it authenticated with.
    assert_eq!(h.server.allocation_count(), 1);
    assert!(h.peer_sends(relay, sa(PEER), b"x").delivered());
    assert!(h.request(&mut a, Method::REFRESH, &[A::Lifetime(600)]).ok());
    // The new policy applies to new permissions of existing allocations.
    assert_eq!(h.permit(&mut a, &[sa("8.8.4.4:1")]).code(), Some(403));
    // The new bandwidth limit applies to existing allocations (from their next refill).
    let (up, _) = offer(&mut h, &[(&a, relay)], 100, 5);
    assert!(up <= 10_000 * 5 + 100_000 / 4 + SIZE as u64, "{up}");
    // The old secret no longer authenticates; the new one does, on the kept port range.
    let mut old = old_secret_client;
    assert_eq!(h.allocate(&mut old, &[]).code(), Some(401));
    let mut new = Client::rest("192.0.2.10:5002", h.unix_now() + 60, "@c:x", "a-new-secret");
    let relayed = h.alloc_ok(&mut new);
    assert!((50000..=50099).contains(&relayed.port()));
    // The quota (user-quota=1) counts the allocations made before the reload.
    let mut second = Client::rest("192.0.2.10:5003", h.unix_now() + 60, "@c:x", "a-new-secret");
    assert_eq!(h.allocate(&mut second, &[]).code(), Some(486));
}
