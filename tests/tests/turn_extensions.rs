//! TURN extensions coturn has, driven by coturn's own `turnutils_uclient`: RFC 8016
//! mobility (`-M`) and 300 Try Alternate (`alternate-server`).

use std::time::Duration;
use switchyard_tests::need;
use switchyard_tests::process::tail;
use switchyard_tests::server::{ServerKind, ServerOptions, TestServer};
use switchyard_tests::uclient::{Auth, ClientTransport, EchoPeer, Run, parse_totals};

const MXID: &str = "@alice:switchyard.test";

/// `turnutils_uclient -M` allocates with MOBILITY-TICKET, then re-sends its Refresh with the
/// ticket from a new local port (a new 5-tuple) and relays through the moved allocation.
/// Every message must come back, which only happens if the allocation followed the client.
///
/// Two workers: the new 5-tuple must reach the worker holding the allocation (with
/// `mobility`, UDP clients are all served by one worker), and uclient's tickets are C
/// strings (ours are printable). Four clients make eight moves, enough to hit either.
#[test]
fn uclient_mobility_moves_allocations() {
    let mut server = need!(TestServer::start(ServerOptions {
        extra: vec!["mobility".into(), "relay-threads=2".into()],
        ..ServerOptions::default()
    }));
    let peer = need!(EchoPeer::start(&server.dir, server.ports.peer));
    let mut run = Run::new(
        server.ports.listen,
        peer.port,
        Auth::Secret {
            user: MXID.into(),
            secret: server.secret().into(),
        },
    );
    run.clients = 4;
    run.messages = 20;
    run.interval_ms = 20;
    run.flags = vec!["-M"];
    let done = need!(run.run(&server.dir, "mobility"));
    server.assert_alive();
    let context = || {
        format!(
            "{}: uclient exit {:?}\n---- uclient tail ----\n{}\n---- server tail ----\n{}",
            server.describe(),
            done.status,
            tail(&done.output, 25),
            server.log_tail(25)
        )
    };
    assert!(done.success() && !done.timed_out(), "{}", context());
    let t = parse_totals(&done.output).unwrap_or_else(|| panic!("no totals: {}", context()));
    assert_eq!((t.sent, t.received, t.lost), (80, 80, 0), "{}", context());
    if !server.kind.is_coturn() {
        let log = server.log_tail(400);
        let created = log.matches("allocation created").count();
        let moved = log.matches("allocation moved (mobility)").count();
        assert!(
            created >= 2 && moved == created,
            "every allocation moved once ({created} created, {moved} moved): {}",
            context()
        );
    }
}

/// Without `mobility`, the same client is refused (405 Mobility Forbidden on the Allocate
/// that asks for a ticket) instead of being silently given an allocation that cannot move.
#[test]
fn uclient_mobility_refused_when_off() {
    let mut server = need!(TestServer::start(ServerOptions::default()));
    if server.kind.is_coturn() {
        // coturn 4.6.1 ignores the ticket request and lets the client time out instead.
        println!("skipped: switchyard-specific refusal");
        return;
    }
    let peer = need!(EchoPeer::start(&server.dir, server.ports.peer));
    let mut run = Run::new(
        server.ports.listen,
        peer.port,
        Auth::Secret {
            user: MXID.into(),
            secret: server.secret().into(),
        },
    );
    run.clients = 1;
    run.messages = 5;
    run.timeout = Duration::from_secs(20);
    run.flags = vec!["-M"];
    let done = need!(run.run(&server.dir, "mobility-off"));
    server.assert_alive();
    assert!(
        !done.timed_out() && !done.success(),
        "{}",
        tail(&done.output, 20)
    );
    assert!(
        done.output.contains("error 405"),
        "uclient did not see 405: {}",
        tail(&done.output, 20)
    );
}

/// `alternate-server`: an Allocate is answered with 300 Try Alternate naming the configured
/// server, which uclient reports ("error 300 (Try Alternate)"; coturn 4.6.1's uclient does
/// not follow redirects), and no allocation is made here. coturn answers the same.
#[test]
fn uclient_sees_try_alternate() {
    let mut server = need!(TestServer::start(ServerOptions {
        extra: vec!["alternate-server=127.0.0.1:9".into()],
        ..ServerOptions::default()
    }));
    let peer = need!(EchoPeer::start(&server.dir, server.ports.peer));
    let mut run = Run::new(
        server.ports.listen,
        peer.port,
        Auth::Secret {
            user: MXID.into(),
            secret: server.secret().into(),
        },
    );
    run.clients = 1;
    run.messages = 5;
    run.timeout = Duration::from_secs(20);
    let done = need!(run.run(&server.dir, "alternate"));
    server.assert_alive();
    assert!(
        !done.timed_out() && !done.success(),
        "{}",
        tail(&done.output, 20)
    );
    assert!(
        done.output.contains("error 300 (Try Alternate)"),
        "uclient did not see 300: {}",
        tail(&done.output, 20)
    );
    if !server.kind.is_coturn() {
        assert!(
            !server.log_tail(200).contains("allocation created"),
            "{}",
            server.log_tail(30)
        );
    }
}

/// RFC 6062 with coturn's client: `turnutils_uclient -T` makes TCP allocations for pairs
/// of clients; one Connects to the other's relayed address, the other gets a
/// ConnectionAttempt, both bind data connections with ConnectionBind, and the messages
/// travel as raw bytes through the server's peer connection. Two workers, so data
/// connections also land on the worker that does not own the connection id.
fn tcp_relay_round_trip(transport: ClientTransport) {
    let tls = transport == ClientTransport::Tls;
    // Metrics take the block's TLS port, and coturn's Debian build has none.
    let metrics = !tls && ServerKind::from_env().is_ok_and(|k| !k.is_coturn());
    let mut server = need!(TestServer::start(ServerOptions {
        tls,
        prometheus: metrics,
        extra: vec!["relay-threads=2".into()],
        ..ServerOptions::default()
    }));
    let peer = need!(EchoPeer::start(&server.dir, server.ports.peer));
    let port = if tls {
        server.ports.tls
    } else {
        server.ports.listen
    };
    let mut run = Run::new(
        port,
        peer.port,
        Auth::Secret {
            user: MXID.into(),
            secret: server.secret().into(),
        },
    );
    run.transport = transport;
    run.clients = 4;
    run.messages = 20;
    run.interval_ms = 20;
    run.flags = vec!["-T"];
    let done = need!(run.run(&server.dir, &format!("tcp-relay-{transport:?}")));
    server.assert_alive();
    let context = || {
        format!(
            "{} via {transport:?}: uclient exit {:?}\n---- uclient tail ----\n{}\n---- server tail ----\n{}",
            server.describe(),
            done.status,
            tail(&done.output, 25),
            server.log_tail(25)
        )
    };
    assert!(done.success() && !done.timed_out(), "{}", context());
    let t = parse_totals(&done.output).unwrap_or_else(|| panic!("no totals: {}", context()));
    assert_eq!((t.sent, t.received, t.lost), (80, 80, 0), "{}", context());
    if metrics {
        // The piped bytes show in the traffic metrics: each message crosses one client →
        // peer hop and one peer → client hop (uclient's echo back crosses both again).
        std::thread::sleep(std::time::Duration::from_millis(300));
        let text = switchyard_tests::metrics::scrape(server.metrics_addr());
        let at_least = f64::from(80 * run.length);
        for name in [
            "turn_total_traffic_peer_sentb",
            "turn_total_traffic_peer_rcvb",
        ] {
            let v = switchyard_tests::metrics::sample(&text, name).unwrap_or(0.0);
            assert!(v >= at_least, "{name} = {v} < {at_least}: {}", context());
        }
    }
}

#[test]
fn uclient_tcp_relay_over_tcp() {
    tcp_relay_round_trip(ClientTransport::Tcp);
}

#[test]
fn uclient_tcp_relay_over_tls() {
    tcp_relay_round_trip(ClientTransport::Tls);
}

/// RFC 5780 with coturn's `turnutils_natdiscovery`: the server listens on 127.0.0.1 and
/// 127.0.0.2, ports P and P+1 (coturn's default `alt-listening-port`). The mapping test
/// needs OTHER-ADDRESS and answers from the alternate IP; the filtering test needs
/// CHANGE-REQUEST answered from the other IP and port. On loopback there is no NAT, so the
/// verdicts are "endpoint independent" both times, as coturn reports.
#[test]
fn natdiscovery_mapping_and_filtering() {
    let mut server = need!(TestServer::start(ServerOptions {
        extra: vec!["listening-ip=127.0.0.2".into(), "rfc5780".into()],
        ..ServerOptions::default()
    }));
    let bin = need!(switchyard_tests::skip::find_binary(
        "turnutils_natdiscovery"
    ));
    let mut cmd = std::process::Command::new(bin);
    cmd.args([
        "-m",
        "-f",
        "-p",
        &server.ports.listen.to_string(),
        "127.0.0.1",
    ]);
    let done = switchyard_tests::process::run_bounded(
        &mut cmd,
        Duration::from_secs(30),
        &server.dir.join("natdiscovery.log"),
    );
    server.assert_alive();
    let out = &done.output;
    let context = || {
        format!(
            "{}\n---- server ----\n{}",
            tail(out, 40),
            server.log_tail(20)
        )
    };
    assert!(!done.timed_out(), "natdiscovery hung: {}", context());
    assert!(
        out.contains("NAT with Endpoint Independent Mapping!"),
        "mapping: {}",
        context()
    );
    assert!(
        out.contains("NAT with Endpoint Independent Filtering!"),
        "filtering: {}",
        context()
    );
    let alt = format!("Response origin: : 127.0.0.2:{}", server.ports.listen + 1);
    assert!(
        out.contains(&alt),
        "no answer from the other IP and port: {}",
        context()
    );
    assert!(
        out.contains("No ALG: Mapped == XOR-Mapped"),
        "{}",
        context()
    );
}

/// Without `rfc5780` (the default since coturn 4.7) a plain Binding is unchanged: no
/// OTHER-ADDRESS, so natdiscovery cannot run its tests. (Debian's coturn 4.6.1 still has
/// RFC 5780 on by default, so this is checked against switchyard only.)
#[test]
fn natdiscovery_without_rfc5780() {
    let mut server = need!(TestServer::start(ServerOptions {
        extra: vec!["listening-ip=127.0.0.2".into()],
        ..ServerOptions::default()
    }));
    if server.kind.is_coturn() {
        println!("skipped: coturn 4.6.1 enables RFC 5780 by default");
        return;
    }
    let bin = need!(switchyard_tests::skip::find_binary(
        "turnutils_natdiscovery"
    ));
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["-m", "-p", &server.ports.listen.to_string(), "127.0.0.1"]);
    let done = switchyard_tests::process::run_bounded(
        &mut cmd,
        Duration::from_secs(30),
        &server.dir.join("natdiscovery.log"),
    );
    server.assert_alive();
    assert!(!done.timed_out(), "{}", tail(&done.output, 30));
    assert!(
        !done.output.contains("Other addr"),
        "OTHER-ADDRESS without rfc5780: {}",
        tail(&done.output, 30)
    );
}

/// `turnutils_uclient -Z` (dual allocation) with relay addresses 127.0.0.1 and ::1: its
/// Allocate asks for both families, its Refresh names the IPv6 one, and the IPv4 half
/// relays every message. Against a server without the IPv6 half the Refresh gets 443.
#[test]
fn uclient_dual_allocation() {
    let mut server = need!(TestServer::start(ServerOptions {
        extra: vec!["relay-ip=::1".into(), "allowed-peer-ip=::1".into()],
        ..ServerOptions::default()
    }));
    let peer = need!(EchoPeer::start(&server.dir, server.ports.peer));
    let mut run = Run::new(
        server.ports.listen,
        peer.port,
        Auth::Secret {
            user: MXID.into(),
            secret: server.secret().into(),
        },
    );
    run.clients = 2;
    run.messages = 20;
    run.interval_ms = 20;
    run.flags = vec!["-Z"];
    let done = need!(run.run(&server.dir, "dual"));
    server.assert_alive();
    let context = || {
        format!(
            "{}\n---- server ----\n{}",
            tail(&done.output, 25),
            server.log_tail(20)
        )
    };
    assert!(done.success() && !done.timed_out(), "{}", context());
    assert!(
        !done.output.contains("error 4"),
        "an error response: {}",
        context()
    );
    let t = parse_totals(&done.output).unwrap_or_else(|| panic!("no totals: {}", context()));
    assert_eq!((t.sent, t.received, t.lost), (40, 40, 0), "{}", context());
}
