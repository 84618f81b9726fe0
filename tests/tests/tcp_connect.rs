//! RFC 6062 Connect outcomes over real sockets, with webrtc-rs's STUN codec: success with a
//! CONNECTION-ID when the peer accepts, 447 when it refuses, 446 for a second Connect to the
//! same peer, 403 for a peer the policy denies. The first three match Debian's coturn 4.6.1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use stun::agent::TransactionId;
use stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME, AttrType};
use stun::error_code::ErrorCodeAttribute;
use stun::integrity::MessageIntegrity;
use stun::message::Getter;
use stun::message::{
    CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, METHOD_ALLOCATE, METHOD_CONNECT, Message, MessageType,
    Setter,
};
use stun::textattrs::TextAttribute;
use switchyard_tests::creds::synapse_style;
use switchyard_tests::need;
use switchyard_tests::server::{ServerOptions, TestServer};
use turn::proto::peeraddr::PeerAddress;
use turn::proto::reqtrans::RequestedTransport;

const CONNECTION_ID: AttrType = AttrType(0x002A);

fn read_message(s: &mut TcpStream) -> Message {
    let mut head = [0u8; 20];
    s.read_exact(&mut head).expect("STUN header");
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let mut buf = head.to_vec();
    buf.resize(20 + len, 0);
    s.read_exact(&mut buf[20..]).expect("STUN body");
    let mut m = Message::new();
    m.unmarshal_binary(&buf).expect("parses");
    m
}

fn request(
    s: &mut TcpStream,
    typ: MessageType,
    setters: Vec<Box<dyn Setter>>,
    auth: Option<&[String; 4]>,
) -> Message {
    let mut m = Message::new();
    let mut all: Vec<Box<dyn Setter>> = vec![Box::new(typ), Box::new(TransactionId::new())];
    all.extend(setters);
    m.build(&all).unwrap();
    if let Some([user, pass, realm, nonce]) = auth {
        TextAttribute::new(ATTR_USERNAME, user.clone())
            .add_to(&mut m)
            .unwrap();
        TextAttribute::new(ATTR_REALM, realm.clone())
            .add_to(&mut m)
            .unwrap();
        TextAttribute::new(ATTR_NONCE, nonce.clone())
            .add_to(&mut m)
            .unwrap();
        MessageIntegrity::new_long_term_integrity(user.clone(), realm.clone(), pass.clone())
            .add_to(&mut m)
            .unwrap();
    }
    s.write_all(&m.raw).unwrap();
    let r = read_message(s);
    assert_eq!(r.transaction_id, m.transaction_id);
    r
}

fn code(m: &Message) -> Option<u16> {
    let mut e = ErrorCodeAttribute::default();
    e.get_from(m).ok()?;
    Some(e.code.0)
}

fn connect(s: &mut TcpStream, peer: SocketAddr, auth: &[String; 4]) -> Message {
    request(
        s,
        MessageType::new(METHOD_CONNECT, CLASS_REQUEST),
        vec![Box::new(PeerAddress {
            ip: peer.ip(),
            port: peer.port(),
        })],
        Some(auth),
    )
}

#[test]
fn connect_outcomes() {
    let mut server = need!(TestServer::start(ServerOptions::default()));
    let mut ctl = TcpStream::connect(server.udp_addr()).unwrap();
    ctl.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let tcp = || -> Vec<Box<dyn Setter>> {
        vec![Box::new(RequestedTransport {
            protocol: turn::proto::Protocol(6),
        })]
    };
    let alloc = MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST);
    let r = request(&mut ctl, alloc, tcp(), None);
    assert_eq!(code(&r), Some(401));
    let (user, pass) = synapse_style(server.secret(), "@alice:switchyard.test", 3600);
    let auth = [
        user,
        pass,
        TextAttribute::get_from_as(&r, ATTR_REALM).unwrap().text,
        TextAttribute::get_from_as(&r, ATTR_NONCE).unwrap().text,
    ];
    let r = request(&mut ctl, alloc, tcp(), Some(&auth));
    assert_eq!(r.typ.class, CLASS_SUCCESS_RESPONSE, "TCP Allocate: {r}");

    // A listening peer: success with a CONNECTION-ID; the same peer again: 446.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap();
    let r = connect(&mut ctl, open, &auth);
    assert_eq!(r.typ.class, CLASS_SUCCESS_RESPONSE, "Connect: {r}");
    assert_eq!(r.get(CONNECTION_ID).map(|v| v.len()), Ok(4));
    let (_accepted, from) = listener.accept().expect("the server connected");
    assert_eq!(from.ip(), open.ip());
    assert_eq!(code(&connect(&mut ctl, open, &auth)), Some(446));

    // A port nobody listens on: 447.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    assert_eq!(code(&connect(&mut ctl, closed, &auth)), Some(447));
    // Denied by switchyard's default peer policy (private range): 403. Debian's coturn
    // 4.6.1 has no default deny list and answers 500 after trying.
    if !server.kind.is_coturn() {
        let denied: SocketAddr = "10.255.255.1:80".parse().unwrap();
        assert_eq!(code(&connect(&mut ctl, denied, &auth)), Some(403));
    }
    server.assert_alive();
}
