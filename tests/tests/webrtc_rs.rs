//! webrtc-rs's TURN client (`turn` 0.17) against the server under test: allocate with a
//! Synapse-style REST credential, send through the relay to a UDP echo socket the test owns,
//! and receive the echo back through the relay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchyard_tests::creds::synapse_style;
use switchyard_tests::need;
use switchyard_tests::server::{ServerOptions, TestServer};
use tokio::net::UdpSocket;
use tokio::time::timeout;
use turn::client::{Client, ClientConfig};
use webrtc_util::Conn;

const STEP: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocate_and_echo_through_relay() {
    let server = need!(TestServer::start(ServerOptions::default()));
    let server_addr = server.udp_addr().to_string();
    let (username, password) = synapse_style(server.secret(), "@bob:switchyard.test", 3600);

    // The peer: an echo socket on loopback, owned by the test.
    let echo = UdpSocket::bind("127.0.0.1:0").await.expect("bind echo");
    let echo_addr = echo.local_addr().unwrap();
    let echo_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        let mut seen = Vec::new();
        while let Ok((n, from)) = echo.recv_from(&mut buf).await {
            seen.push(from);
            if echo.send_to(&buf[..n], from).await.is_err() {
                break;
            }
            if seen.len() == 3 {
                break;
            }
        }
        seen
    });

    let conn = UdpSocket::bind("127.0.0.1:0").await.expect("bind client");
    let client = Client::new(ClientConfig {
        stun_serv_addr: server_addr.clone(),
        turn_serv_addr: server_addr,
        username,
        password,
        // The client adopts the REALM of the server's 401; this value is not sent first.
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn: Arc::new(conn),
        vnet: None,
    })
    .await
    .expect("client");
    client.listen().await.expect("listen");

    let relay = timeout(STEP, client.allocate())
        .await
        .unwrap_or_else(|_| panic!("Allocate timed out: {}", server.log_tail(30)))
        .unwrap_or_else(|e| panic!("Allocate failed: {e}\n{}", server.log_tail(30)));
    let relayed: SocketAddr = relay.local_addr().expect("relayed address");
    assert_eq!(
        relayed.ip().to_string(),
        "127.0.0.1",
        "relayed address must be on relay-ip"
    );
    assert!(
        (server.ports.relay_min..=server.ports.relay_max).contains(&relayed.port()),
        "relayed port {} outside min-port..max-port {}..{}",
        relayed.port(),
        server.ports.relay_min,
        server.ports.relay_max
    );

    // The first send makes the client CreatePermission for the echo peer; later ones go
    // through a channel once ChannelBind completes. Three round trips cover both paths.
    let mut buf = vec![0u8; 1500];
    for i in 0..3u8 {
        let msg = [b'p', b'i', b'n', b'g', i];
        timeout(STEP, relay.send_to(&msg, echo_addr))
            .await
            .expect("send timed out")
            .unwrap_or_else(|e| panic!("send {i} failed: {e}\n{}", server.log_tail(30)));
        let (n, from) = timeout(STEP, relay.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no echo {i} through relay:\n{}", server.log_tail(30)))
            .expect("recv");
        assert_eq!(&buf[..n], &msg, "echo {i} payload");
        assert_eq!(from, echo_addr, "echo {i} source");
    }

    // The peer saw the relayed transport address as the source, every time.
    let seen = timeout(STEP, echo_task)
        .await
        .expect("echo task")
        .expect("join");
    assert_eq!(seen, vec![relayed; 3]);

    let _ = relay.close().await;
    let _ = client.close().await;
}
