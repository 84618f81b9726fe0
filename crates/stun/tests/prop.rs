//! Property tests: build → parse round trips and "never panics" on arbitrary input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use switchyard_stun::{
    AddressFamily, ChangeRequest, Class, Frame, Icmp, Message, MessageBuilder, MessageType, Method,
    PasswordAlgorithm, TransactionId, attr, channel_data, classify, frame,
};

/// A typed attribute the builder can write and the parser can read back.
#[derive(Clone, Debug)]
enum A {
    Username(String),
    Realm(String),
    Nonce(String),
    Software(String),
    Lifetime(u32),
    Channel(u16),
    XorPeer(SocketAddr),
    XorRelayed(SocketAddr),
    XorMapped(SocketAddr),
    Mapped(SocketAddr),
    AltServer(SocketAddr),
    Data(Vec<u8>),
    Error(u16, String),
    Unknown(Vec<u16>),
    EvenPort(bool),
    Transport(u8),
    Family(AddressFamily),
    DontFragment,
    Token([u8; 8]),
    Priority(u32),
    Controlled(u64),
    Icmp(u8, u16, u32),
    Change(bool, bool),
    ResponsePort(u16),
    ConnectionId(u32),
    Algorithms(Vec<(u16, Vec<u8>)>),
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<u32>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), p)),
        (any::<u128>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), p)),
    ]
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,40}"
}

fn attribute() -> impl Strategy<Value = A> {
    prop_oneof![
        text().prop_map(A::Username),
        text().prop_map(A::Realm),
        text().prop_map(A::Nonce),
        text().prop_map(A::Software),
        any::<u32>().prop_map(A::Lifetime),
        any::<u16>().prop_map(A::Channel),
        socket_addr().prop_map(A::XorPeer),
        socket_addr().prop_map(A::XorRelayed),
        socket_addr().prop_map(A::XorMapped),
        socket_addr().prop_map(A::Mapped),
        socket_addr().prop_map(A::AltServer),
        proptest::collection::vec(any::<u8>(), 0..100).prop_map(A::Data),
        (300u16..700, text()).prop_map(|(c, r)| A::Error(c, r)),
        proptest::collection::vec(any::<u16>(), 0..8).prop_map(A::Unknown),
        any::<bool>().prop_map(A::EvenPort),
        any::<u8>().prop_map(A::Transport),
        prop_oneof![Just(AddressFamily::V4), Just(AddressFamily::V6)].prop_map(A::Family),
        Just(A::DontFragment),
        any::<[u8; 8]>().prop_map(A::Token),
        any::<u32>().prop_map(A::Priority),
        any::<u64>().prop_map(A::Controlled),
        (0u8..128, 0u16..512, any::<u32>()).prop_map(|(t, c, d)| A::Icmp(t, c, d)),
        (any::<bool>(), any::<bool>()).prop_map(|(a, b)| A::Change(a, b)),
        any::<u16>().prop_map(A::ResponsePort),
        any::<u32>().prop_map(A::ConnectionId),
        proptest::collection::vec(
            (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..9)),
            0..4
        )
        .prop_map(A::Algorithms),
    ]
}

fn add(b: &mut MessageBuilder<'_>, a: &A) {
    let r = match a {
        A::Username(s) => b.add(attr::USERNAME, s.as_bytes()),
        A::Realm(s) => b.add(attr::REALM, s.as_bytes()),
        A::Nonce(s) => b.add(attr::NONCE, s.as_bytes()),
        A::Software(s) => b.add(attr::SOFTWARE, s.as_bytes()),
        A::Lifetime(v) => b.add_u32(attr::LIFETIME, *v),
        A::Channel(c) => b.add_channel_number(*c),
        A::XorPeer(s) => b.add_xor_address(attr::XOR_PEER_ADDRESS, *s),
        A::XorRelayed(s) => b.add_xor_address(attr::XOR_RELAYED_ADDRESS, *s),
        A::XorMapped(s) => b.add_xor_address(attr::XOR_MAPPED_ADDRESS, *s),
        A::Mapped(s) => b.add_address(attr::MAPPED_ADDRESS, *s),
        A::AltServer(s) => b.add_address(attr::ALTERNATE_SERVER, *s),
        A::Data(d) => b.add(attr::DATA, d),
        A::Error(c, r) => b.add_error_code(*c, r),
        A::Unknown(t) => b.add_unknown_attributes(t),
        A::EvenPort(r) => b.add_even_port(*r),
        A::Transport(p) => b.add_requested_transport(*p),
        A::Family(f) => b.add_address_family(attr::REQUESTED_ADDRESS_FAMILY, *f),
        A::DontFragment => b.add_flag(attr::DONT_FRAGMENT),
        A::Token(t) => b.add(attr::RESERVATION_TOKEN, t),
        A::Priority(p) => b.add_u32(attr::PRIORITY, *p),
        A::Controlled(v) => b.add_u64(attr::ICE_CONTROLLED, *v),
        A::Icmp(t, c, d) => b.add_icmp(Icmp {
            icmp_type: *t,
            code: *c,
            error_data: *d,
        }),
        A::Change(ip, port) => b.add_change_request(ChangeRequest {
            change_ip: *ip,
            change_port: *port,
        }),
        A::ResponsePort(p) => b.add_response_port(*p),
        A::ConnectionId(c) => b.add_u32(attr::CONNECTION_ID, *c),
        A::Algorithms(list) => {
            let algs: Vec<PasswordAlgorithm<'_>> = list
                .iter()
                .map(|(a, p)| PasswordAlgorithm {
                    algorithm: *a,
                    params: p,
                })
                .collect();
            b.add_password_algorithms(&algs)
        }
    };
    r.expect("fits in the test buffer");
}

fn typ_of(a: &A) -> u16 {
    match a {
        A::Username(_) => attr::USERNAME,
        A::Realm(_) => attr::REALM,
        A::Nonce(_) => attr::NONCE,
        A::Software(_) => attr::SOFTWARE,
        A::Lifetime(_) => attr::LIFETIME,
        A::Channel(_) => attr::CHANNEL_NUMBER,
        A::XorPeer(_) => attr::XOR_PEER_ADDRESS,
        A::XorRelayed(_) => attr::XOR_RELAYED_ADDRESS,
        A::XorMapped(_) => attr::XOR_MAPPED_ADDRESS,
        A::Mapped(_) => attr::MAPPED_ADDRESS,
        A::AltServer(_) => attr::ALTERNATE_SERVER,
        A::Data(_) => attr::DATA,
        A::Error(..) => attr::ERROR_CODE,
        A::Unknown(_) => attr::UNKNOWN_ATTRIBUTES,
        A::EvenPort(_) => attr::EVEN_PORT,
        A::Transport(_) => attr::REQUESTED_TRANSPORT,
        A::Family(_) => attr::REQUESTED_ADDRESS_FAMILY,
        A::DontFragment => attr::DONT_FRAGMENT,
        A::Token(_) => attr::RESERVATION_TOKEN,
        A::Priority(_) => attr::PRIORITY,
        A::Controlled(_) => attr::ICE_CONTROLLED,
        A::Icmp(..) => attr::ICMP,
        A::Change(..) => attr::CHANGE_REQUEST,
        A::ResponsePort(_) => attr::RESPONSE_PORT,
        A::ConnectionId(_) => attr::CONNECTION_ID,
        A::Algorithms(_) => attr::PASSWORD_ALGORITHMS,
    }
}

/// Checks that the parsed message's typed getter returns `a`.
fn check(m: &Message<'_>, a: &A) {
    match a {
        A::Username(s) => assert_eq!(m.username().unwrap(), Some(s.as_str())),
        A::Realm(s) => assert_eq!(m.realm().unwrap(), Some(s.as_str())),
        A::Nonce(s) => assert_eq!(m.nonce().unwrap(), Some(s.as_str())),
        A::Software(s) => assert_eq!(m.software().unwrap(), Some(s.as_str())),
        A::Lifetime(v) => assert_eq!(m.lifetime().unwrap(), Some(*v)),
        A::Channel(c) => assert_eq!(m.channel_number().unwrap(), Some(*c)),
        A::XorPeer(s) => assert_eq!(m.xor_peer_address().unwrap(), Some(*s)),
        A::XorRelayed(s) => assert_eq!(m.xor_relayed_address().unwrap(), Some(*s)),
        A::XorMapped(s) => assert_eq!(m.xor_mapped_address().unwrap(), Some(*s)),
        A::Mapped(s) => assert_eq!(m.mapped_address().unwrap(), Some(*s)),
        A::AltServer(s) => assert_eq!(m.alternate_server().unwrap(), Some(*s)),
        A::Data(d) => assert_eq!(m.data(), Some(d.as_slice())),
        A::Error(c, r) => assert_eq!(m.error_code().unwrap(), Some((*c, r.as_str()))),
        A::Unknown(t) => assert_eq!(
            m.unknown_attributes().unwrap().unwrap().collect::<Vec<_>>(),
            *t
        ),
        A::EvenPort(r) => assert_eq!(m.even_port().unwrap(), Some(*r)),
        A::Transport(p) => assert_eq!(m.requested_transport().unwrap(), Some(*p)),
        A::Family(f) => assert_eq!(m.requested_address_family().unwrap(), Some(*f)),
        A::DontFragment => assert!(m.dont_fragment()),
        A::Token(t) => assert_eq!(m.reservation_token().unwrap(), Some(*t)),
        A::Priority(p) => assert_eq!(m.priority().unwrap(), Some(*p)),
        A::Controlled(v) => assert_eq!(m.ice_controlled().unwrap(), Some(*v)),
        A::Icmp(t, c, d) => assert_eq!(
            m.icmp().unwrap(),
            Some(Icmp {
                icmp_type: *t,
                code: *c,
                error_data: *d
            })
        ),
        A::Change(ip, port) => assert_eq!(
            m.change_request().unwrap(),
            Some(ChangeRequest {
                change_ip: *ip,
                change_port: *port
            })
        ),
        A::ResponsePort(p) => assert_eq!(m.response_port().unwrap(), Some(*p)),
        A::ConnectionId(c) => assert_eq!(m.connection_id().unwrap(), Some(*c)),
        A::Algorithms(list) => {
            let got: Vec<(u16, Vec<u8>)> = m
                .password_algorithms()
                .unwrap()
                .unwrap()
                .map(|a| (a.algorithm, a.params.to_vec()))
                .collect();
            assert_eq!(&got, list);
        }
    }
}

/// Calls every getter; used on arbitrary input where only "no panic" matters.
fn touch_everything(m: &Message<'_>) {
    let _ = (m.message_type(), m.class(), m.method(), m.transaction_id());
    let _ = m.attributes().count();
    let _ = m.unknown_comprehension_required(&[attr::USERNAME]).count();
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
    let _ = (
        m.verify_integrity(b"key"),
        m.verify_integrity_sha256(b"key"),
    );
}

fn class() -> impl Strategy<Value = Class> {
    prop_oneof![
        Just(Class::Request),
        Just(Class::Indication),
        Just(Class::Success),
        Just(Class::Error),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn typed_round_trip(
        class in class(),
        method in 0u16..0x1000,
        tid in any::<[u8; 12]>(),
        attrs in proptest::collection::vec(attribute(), 0..12),
        mi in any::<bool>(),
        mi256 in any::<bool>(),
        fp in any::<bool>(),
        key in proptest::collection::vec(any::<u8>(), 0..40),
        pad in any::<u8>(),
    ) {
        let mut buf = vec![0u8; 4096];
        let typ = MessageType::new(class, Method(method));
        let mut b = MessageBuilder::new(&mut buf, typ, TransactionId(tid)).unwrap();
        b.set_padding(pad);
        for a in &attrs {
            add(&mut b, a);
        }
        if mi { b.add_message_integrity(&key).unwrap(); }
        if mi256 { b.add_message_integrity_sha256(&key).unwrap(); }
        if fp { b.add_fingerprint().unwrap(); }
        let n = b.finish();
        let m = Message::parse(&buf[..n]).unwrap();
        prop_assert_eq!(m.message_type(), typ);
        prop_assert_eq!(m.transaction_id(), TransactionId(tid));
        prop_assert_eq!(m.has_fingerprint(), fp);
        // Each typed getter returns the first attribute of its type.
        for (i, a) in attrs.iter().enumerate() {
            if !attrs[..i].iter().any(|p| typ_of(p) == typ_of(a)) {
                check(&m, a);
            }
        }
        let peers = attrs.iter().filter_map(|a| match a { A::XorPeer(s) => Some(*s), _ => None });
        let got: Vec<SocketAddr> = m.xor_peer_addresses().map(Result::unwrap).collect();
        prop_assert_eq!(got, peers.collect::<Vec<_>>());
        let types: Vec<u16> = m.attributes().map(|a| a.typ).take(attrs.len()).collect();
        prop_assert_eq!(types, attrs.iter().map(typ_of).collect::<Vec<_>>());
        if mi {
            prop_assert_eq!(m.verify_integrity(&key), Ok(()));
            let mut wrong = key.clone();
            wrong.push(1);
            prop_assert!(m.verify_integrity(&wrong).is_err());
        }
        if mi256 {
            prop_assert_eq!(m.verify_integrity_sha256(&key), Ok(()));
        }
        touch_everything(&m);
    }

    #[test]
    fn raw_round_trip(
        attrs in proptest::collection::vec(
            (any::<u16>().prop_filter("not integrity/fingerprint", |t| {
                ![attr::MESSAGE_INTEGRITY, attr::MESSAGE_INTEGRITY_SHA256, attr::FINGERPRINT]
                    .contains(t)
            }), proptest::collection::vec(any::<u8>(), 0..70)),
            0..16),
    ) {
        let mut buf = vec![0u8; 2048];
        let mut b = MessageBuilder::new(
            &mut buf, MessageType::new(Class::Indication, Method::SEND), TransactionId([1; 12])).unwrap();
        for (t, v) in &attrs {
            b.add(*t, v).unwrap();
        }
        let n = b.finish();
        let m = Message::parse(&buf[..n]).unwrap();
        let got: Vec<(u16, Vec<u8>)> = m.attributes().map(|a| (a.typ, a.value.to_vec())).collect();
        prop_assert_eq!(&got, &attrs);
        touch_everything(&m);
    }

    #[test]
    fn parse_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(m) = Message::parse(&bytes) {
            touch_everything(&m);
        }
    }

    #[test]
    fn parse_random_body_with_valid_header_never_panics(
        body in proptest::collection::vec(any::<u8>(), 0..64).prop_map(|mut v| {
            v.truncate(v.len() / 4 * 4);
            v
        }),
    ) {
        let mut m = vec![0x00, 0x03];
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&0x2112_a442u32.to_be_bytes());
        m.extend_from_slice(&[9; 12]);
        m.extend_from_slice(&body);
        if let Ok(msg) = Message::parse(&m) {
            touch_everything(&msg);
        }
    }

    #[test]
    fn mutated_valid_message_never_panics(
        attrs in proptest::collection::vec(attribute(), 0..6),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in any::<usize>(),
    ) {
        let mut buf = vec![0u8; 4096];
        let mut b = MessageBuilder::new(
            &mut buf, MessageType::new(Class::Request, Method::ALLOCATE), TransactionId([3; 12])).unwrap();
        for a in &attrs { add(&mut b, a); }
        b.add_message_integrity(b"k").unwrap();
        b.add_fingerprint().unwrap();
        let n = b.finish();
        let mut m = buf[..n].to_vec();
        for (at, x) in flips {
            let i = at % m.len();
            m[i] ^= x;
        }
        m.truncate(cut % (m.len() + 1));
        if let Ok(msg) = Message::parse(&m) {
            touch_everything(&msg);
        }
    }

    #[test]
    fn message_type_round_trip(class in class(), method in 0u16..0x1000) {
        let t = MessageType::new(class, Method(method));
        prop_assert_eq!(MessageType::from_u16(t.to_u16()), Some(t));
        prop_assert_eq!(t.to_u16() & 0xC000, 0);
    }

    #[test]
    fn channel_data_and_frame_invariants(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(cd) = channel_data::parse(&bytes) {
            prop_assert!(cd.data.len() + channel_data::HEADER_LEN <= bytes.len());
            prop_assert_eq!(cd.channel & 0xC000, 0x4000);
        }
        match frame(&bytes) {
            Frame::Stun(n) => {
                prop_assert!(n <= bytes.len() && n >= 20);
                prop_assert_ne!(classify(&bytes), switchyard_stun::PacketKind::ChannelData);
            }
            Frame::ChannelData(n) => {
                prop_assert!(n <= bytes.len() && n >= 4 && n % 4 == 0);
                let cd = channel_data::parse(&bytes[..n]).unwrap();
                prop_assert!(cd.data.len() + 4 <= n);
            }
            Frame::Incomplete { need } => prop_assert!(need > 0),
            Frame::Invalid => {}
        }
    }

    #[test]
    fn frame_agrees_with_parse(attrs in proptest::collection::vec(attribute(), 0..5),
                               extra in proptest::collection::vec(any::<u8>(), 0..30)) {
        let mut buf = vec![0u8; 4096];
        let mut b = MessageBuilder::new(
            &mut buf, MessageType::new(Class::Request, Method::REFRESH), TransactionId([5; 12])).unwrap();
        for a in &attrs { add(&mut b, a); }
        let n = b.finish();
        let mut stream = buf[..n].to_vec();
        stream.extend_from_slice(&extra);
        prop_assert_eq!(frame(&stream), Frame::Stun(n));
        for cut in 0..n {
            match frame(&stream[..cut]) {
                Frame::Incomplete { need } => prop_assert!(need > 0 && cut + need <= n),
                other => return Err(TestCaseError::fail(format!("cut {cut}: {other:?}"))),
            }
        }
        prop_assert!(Message::parse(&stream[..n]).is_ok());
    }
}
