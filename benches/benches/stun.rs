//! STUN codec costs on the TURN control path: parsing requests, building an
//! authenticated response, checking MESSAGE-INTEGRITY(-SHA256), and the
//! ChannelData header on the data path.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchyard_stun::{
    Class, Message, MessageBuilder, MessageType, Method, TransactionId, attr, channel_data,
    long_term_key,
};

const TID: TransactionId = TransactionId([0x5a; 12]);

/// An authenticated Allocate request as browsers send it after the 401.
fn allocate_request(key: &[u8], sha256: bool) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::new(Class::Request, Method::ALLOCATE),
        TID,
    )
    .unwrap();
    b.add_requested_transport(17).unwrap();
    b.add_u32(attr::LIFETIME, 600).unwrap();
    b.add(attr::USERNAME, b"1735689600:@alice:example.org")
        .unwrap();
    b.add(attr::REALM, b"turn.example.org").unwrap();
    b.add(attr::NONCE, b"AAAAAGd8X1Ak3f9c8e1b2a3d4c5e6f708192a3b4")
        .unwrap();
    if sha256 {
        b.add_message_integrity_sha256(key).unwrap();
    } else {
        b.add_message_integrity(key).unwrap();
    }
    b.add_fingerprint().unwrap();
    let n = b.finish();
    buf[..n].to_vec()
}

fn binding_request() -> Vec<u8> {
    let mut buf = [0u8; 64];
    let b = MessageBuilder::new(
        &mut buf,
        MessageType::new(Class::Request, Method::BINDING),
        TID,
    )
    .unwrap();
    let n = b.finish();
    buf[..n].to_vec()
}

fn build_allocate_success(buf: &mut [u8], key: &[u8]) -> usize {
    let relayed: SocketAddr = "203.0.113.7:49152".parse().unwrap();
    let mapped: SocketAddr = "198.51.100.20:54321".parse().unwrap();
    let mut b =
        MessageBuilder::new(buf, MessageType::new(Class::Success, Method::ALLOCATE), TID).unwrap();
    b.add_xor_address(attr::XOR_RELAYED_ADDRESS, relayed)
        .unwrap();
    b.add_u32(attr::LIFETIME, 600).unwrap();
    b.add_xor_address(attr::XOR_MAPPED_ADDRESS, mapped).unwrap();
    b.add_message_integrity(key).unwrap();
    b.add_fingerprint().unwrap();
    b.finish()
}

fn benches(c: &mut Criterion) {
    let key = long_term_key("1735689600:@alice:example.org", "turn.example.org", "pw");
    let alloc = allocate_request(&key, false);
    let alloc256 = allocate_request(&key, true);
    let binding = binding_request();

    let mut g = c.benchmark_group("stun");

    g.throughput(Throughput::Bytes(alloc.len() as u64));
    g.bench_function("parse_allocate_mi_fingerprint", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(&alloc)).unwrap();
            black_box((m.username(), m.lifetime(), m.requested_transport()))
        })
    });

    g.throughput(Throughput::Bytes(binding.len() as u64));
    g.bench_function("parse_binding", |b| {
        b.iter(|| Message::parse(black_box(&binding)).unwrap().method())
    });

    let mut out = [0u8; 1500];
    let n = build_allocate_success(&mut out, &key);
    g.throughput(Throughput::Bytes(n as u64));
    g.bench_function("build_allocate_success_mi_fingerprint", |b| {
        b.iter(|| build_allocate_success(black_box(&mut out), black_box(&key)))
    });

    let parsed = Message::parse(&alloc).unwrap();
    g.throughput(Throughput::Bytes(alloc.len() as u64));
    g.bench_function("verify_message_integrity_sha1", |b| {
        b.iter(|| {
            black_box(&parsed)
                .verify_integrity(black_box(&key))
                .unwrap()
        })
    });

    let parsed256 = Message::parse(&alloc256).unwrap();
    g.throughput(Throughput::Bytes(alloc256.len() as u64));
    g.bench_function("verify_message_integrity_sha256", |b| {
        b.iter(|| {
            black_box(&parsed256)
                .verify_integrity_sha256(black_box(&key))
                .unwrap()
        })
    });

    // A 1200-byte media packet on channel 0x4001.
    let mut cd = vec![0u8; 4 + 1200];
    let header: &mut [u8; 4] = (&mut cd[..4]).try_into().unwrap();
    channel_data::write_header(header, 0x4001, 1200);
    g.throughput(Throughput::Bytes(cd.len() as u64));
    g.bench_function("channel_data_parse", |b| {
        b.iter(|| {
            let d = channel_data::parse(black_box(&cd)).unwrap();
            (d.channel, d.data.len())
        })
    });

    g.finish();
}

criterion_group!(stun, benches);
criterion_main!(stun);
