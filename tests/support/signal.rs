//! A raw LiveKit signalling client (`/rtc` over tungstenite, protobuf frames) for tests
//! that need to see exactly what the server sends, below any SDK.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use prost::Message;
use proto::{SignalRequest, SignalResponse, signal_request, signal_response};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message as WsMessage, WebSocket};

use crate::livekit::{LivekitServer, join_token};

/// A raw signalling connection.
pub type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

/// Opens `/rtc`; Err(status) when refused before the upgrade.
pub fn connect(server: &LivekitServer, token: &str) -> Result<Ws, u16> {
    open(&format!(
        "{}/rtc?access_token={token}&protocol=16&auto_subscribe=1",
        server.ws_url()
    ))
}

/// Resumes participant `sid` after its connection dropped (`reconnect=1&sid=`, as
/// livekit-client does); Err(status) when refused before the upgrade.
pub fn resume(server: &LivekitServer, token: &str, sid: &str) -> Result<Ws, u16> {
    open(&format!(
        "{}/rtc?access_token={token}&protocol=16&auto_subscribe=1&reconnect=1&sid={sid}",
        server.ws_url()
    ))
}

fn open(url: &str) -> Result<Ws, u16> {
    match tungstenite::connect(url) {
        Ok((ws, _)) => {
            if let MaybeTlsStream::Plain(s) = ws.get_ref() {
                s.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
            }
            Ok(ws)
        }
        Err(tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("connect: {e}"),
    }
}

/// Sends one signal request.
pub fn send(ws: &mut Ws, m: signal_request::Message) {
    let bytes = SignalRequest { message: Some(m) }.encode_to_vec();
    ws.send(WsMessage::Binary(bytes.into())).expect("send");
}

/// How a read loop ([`read_until`]) ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadEnd<T> {
    Picked(T),
    /// The server closed the socket (or it failed).
    Closed,
    TimedOut,
}

/// Reads signal responses until `pick` returns Some, the socket closes or `timeout` passes.
pub fn read_until<T>(
    ws: &mut Ws,
    timeout: Duration,
    mut pick: impl FnMut(signal_response::Message) -> Option<T>,
) -> ReadEnd<T> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        match ws.read() {
            Ok(WsMessage::Binary(b)) => {
                if let Some(m) = SignalResponse::decode(b.as_ref())
                    .ok()
                    .and_then(|r| r.message)
                    && let Some(t) = pick(m)
                {
                    return ReadEnd::Picked(t);
                }
            }
            Ok(WsMessage::Close(_)) => return ReadEnd::Closed,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return ReadEnd::Closed,
        }
    }
    ReadEnd::TimedOut
}

/// Reads until `pick` returns Some or `timeout` passes. None also when the socket closed.
pub fn wait_for<T>(
    ws: &mut Ws,
    timeout: Duration,
    pick: impl FnMut(signal_response::Message) -> Option<T>,
) -> Option<T> {
    match read_until(ws, timeout, pick) {
        ReadEnd::Picked(t) => Some(t),
        ReadEnd::Closed | ReadEnd::TimedOut => None,
    }
}

/// Joins `room` as `identity` over `/rtc` and returns the join response.
pub fn join(
    server: &LivekitServer,
    identity: &str,
    room: &str,
    extra: serde_json::Value,
) -> (Ws, proto::JoinResponse) {
    let mut ws = connect(server, &join_token(identity, room, extra)).expect("join refused");
    let j = wait_for(&mut ws, Duration::from_secs(5), |m| match m {
        signal_response::Message::Join(j) => Some(j),
        _ => None,
    })
    .expect("no join response");
    (ws, j)
}
