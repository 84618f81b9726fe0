//! coturn's own clients against the server under test: `turnutils_uclient` relaying to a
//! `turnutils_peer` echo server on loopback, with Synapse-style REST credentials.

use std::time::Duration;
use switchyard_tests::creds::synapse_style;
use switchyard_tests::need;
use switchyard_tests::process::tail;
use switchyard_tests::server::{ServerOptions, TestServer};
use switchyard_tests::stun;
use switchyard_tests::uclient::{Auth, ClientTransport, EchoPeer, Run, parse_totals};

const MXID: &str = "@alice:switchyard.test";

/// One uclient run: what differs from the default (UDP, ChannelData, Synapse-style REST
/// credentials, one client socket each, the server's default worker count).
#[derive(Default)]
struct Case {
    transport: Option<ClientTransport>,
    send_indications: bool,
    auth: Option<Auth>,
    client_to_client: bool,
    rtcp: bool,
    /// Extra server config lines.
    extra: Vec<String>,
}

/// Relays 4 clients × 50 messages × 170 bytes and requires every one to come back.
fn relay_round_trip(transport: ClientTransport, send_indications: bool, auth: Option<Auth>) {
    relay_round_trip_with(Case {
        transport: Some(transport),
        send_indications,
        auth,
        ..Case::default()
    })
}

fn relay_round_trip_with(case: Case) {
    let transport = case.transport.unwrap_or(ClientTransport::Udp);
    let send_indications = case.send_indications;
    let tls = transport == ClientTransport::Tls;
    let mut server = need!(TestServer::start(ServerOptions {
        tls,
        extra: case.extra,
        ..ServerOptions::default()
    }));
    let peer = need!(EchoPeer::start(&server.dir, server.ports.peer));
    let port = if tls {
        server.ports.tls
    } else {
        server.ports.listen
    };
    let auth = case.auth.unwrap_or_else(|| Auth::Secret {
        user: MXID.to_string(),
        secret: server.secret().to_string(),
    });
    let mut run = Run::new(port, peer.port, auth);
    run.transport = transport;
    run.send_indications = send_indications;
    run.client_to_client = case.client_to_client;
    run.rtcp = case.rtcp;
    let label = format!("{transport:?}-{send_indications}-{}", case.rtcp);
    let done = need!(run.run(&server.dir, &label));
    server.assert_alive();
    let context = || {
        format!(
            "{} via {transport:?} (send indications: {send_indications}), uclient exit {:?} after {:?}\n\
             ---- uclient tail ----\n{}\n---- server tail ----\n{}",
            server.describe(),
            done.status,
            done.elapsed,
            tail(&done.output, 25),
            server.log_tail(25)
        )
    };
    assert!(
        !done.timed_out(),
        "turnutils_uclient timed out: {}",
        context()
    );
    let totals =
        parse_totals(&done.output).unwrap_or_else(|| panic!("no totals printed: {}", context()));
    let expected = u64::from(run.clients * run.messages);
    assert_eq!(totals.sent, expected, "not all sent: {}", context());
    assert_eq!(totals.received, totals.sent, "lost packets: {}", context());
    assert_eq!(totals.lost, 0, "lost packets: {}", context());
    assert!(done.success(), "uclient failed: {}", context());
}

#[test]
fn udp_channel_data() {
    relay_round_trip(ClientTransport::Udp, false, None);
}

#[test]
fn udp_send_indications() {
    relay_round_trip(ClientTransport::Udp, true, None);
}

#[test]
fn tcp_channel_data() {
    relay_round_trip(ClientTransport::Tcp, false, None);
}

#[test]
fn tcp_send_indications() {
    relay_round_trip(ClientTransport::Tcp, true, None);
}

#[test]
fn tls_channel_data() {
    relay_round_trip(ClientTransport::Tls, false, None);
}

/// The same credential Synapse would mint, computed here rather than by uclient's `-W`, so
/// the expired-credential test below fails only because of the timestamp.
#[test]
fn synapse_style_password_computed_here() {
    let secret = ServerOptions::default().secret;
    let (username, password) = synapse_style(&secret, MXID, 3600);
    relay_round_trip(
        ClientTransport::Udp,
        false,
        Some(Auth::Password { username, password }),
    );
}

/// A credential the server must refuse: uclient must end promptly (the server answers with
/// an error rather than staying silent), unsuccessfully, with nothing relayed.
fn refused(auth_for: impl FnOnce(&str) -> Auth, what: &str) {
    let mut server = need!(TestServer::start(ServerOptions::default()));
    let peer = need!(EchoPeer::start(&server.dir, server.ports.peer));
    let mut run = Run::new(server.ports.listen, peer.port, auth_for(server.secret()));
    run.clients = 1;
    run.messages = 5;
    run.timeout = Duration::from_secs(20);
    let done = need!(run.run(&server.dir, what));
    server.assert_alive();
    let context = format!(
        "{what} against {}: uclient exit {:?} after {:?}\n---- uclient tail ----\n{}\n---- server tail ----\n{}",
        server.describe(),
        done.status,
        done.elapsed,
        tail(&done.output, 25),
        server.log_tail(25)
    );
    assert!(
        !done.timed_out(),
        "no answer to a bad credential: {context}"
    );
    assert!(!done.success(), "allocation succeeded: {context}");
    if let Some(t) = parse_totals(&done.output) {
        assert_eq!(t.received, 0, "data relayed: {context}");
    }
    assert!(
        done.output.contains("Cannot complete Allocation"),
        "uclient did not report a refused allocation: {context}"
    );
}

#[test]
fn wrong_secret_is_refused() {
    refused(
        |_| Auth::Secret {
            user: MXID.to_string(),
            secret: "not-the-secret".to_string(),
        },
        "wrong-secret",
    );
}

#[test]
fn expired_username_is_refused() {
    refused(
        |secret| {
            let (username, password) = synapse_style(secret, MXID, -60);
            Auth::Password { username, password }
        },
        "expired-username",
    );
}

/// RFC 8489 §6.3.1: a Binding request is answered with our own transport address in
/// XOR-MAPPED-ADDRESS (no credentials needed).
#[test]
fn binding_reflects_source_address() {
    let server = need!(TestServer::start(ServerOptions::default()));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let (mapped, local) = stun::binding(server.udp_addr(), deadline)
        .unwrap_or_else(|| panic!("no Binding response from {}", server.describe()));
    assert_eq!(mapped, local);
}

/// `-y`: the clients relay to each other's relayed addresses on the same server, as two
/// Matrix callers behind the same TURN server do (relay-to-relay on the server's own address).
#[test]
fn udp_client_to_client() {
    relay_round_trip_with(Case {
        client_to_client: true,
        ..Case::default()
    });
}

#[test]
fn tcp_client_to_client_send_indications() {
    relay_round_trip_with(Case {
        transport: Some(ClientTransport::Tcp),
        send_indications: true,
        client_to_client: true,
        ..Case::default()
    });
}

/// uclient's default RTP + RTCP pair: the RTP allocation asks for EVEN-PORT with R=1 and
/// the RTCP one, from a second socket, redeems the RESERVATION-TOKEN. The two sockets are
/// two 5-tuples, which SO_REUSEPORT spreads over the workers: with four workers and four
/// clients, some token almost surely reaches a worker that did not make the reservation,
/// and must still get the reserved odd port (it used to get 508 Insufficient Capacity).
fn rtp_and_rtcp_over_four_workers(transport: ClientTransport) {
    relay_round_trip_with(Case {
        transport: Some(transport),
        rtcp: true,
        extra: vec!["relay-threads=4".into()],
        ..Case::default()
    });
}

#[test]
fn udp_rtcp_reservation_tokens_work_on_any_worker() {
    rtp_and_rtcp_over_four_workers(ClientTransport::Udp);
}

#[test]
fn tcp_rtcp_reservation_tokens_work_on_any_worker() {
    rtp_and_rtcp_over_four_workers(ClientTransport::Tcp);
}

#[test]
fn tls_rtcp_reservation_tokens_work_on_any_worker() {
    rtp_and_rtcp_over_four_workers(ClientTransport::Tls);
}
