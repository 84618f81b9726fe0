//! Per-test port blocks on 127.0.0.1.
//!
//! Every test gets its own block of [`BLOCK`] consecutive ports below Linux's default ephemeral
//! range (32768–60999), so ports the kernel hands to clients can never collide with a server
//! port, and tests running in parallel (threads of one binary, or other processes) never share
//! a relay range. A block is only used after every port in it was bound successfully, which
//! also steps over ports that something else on the machine already holds.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::sync::Mutex;

/// Ports in one block.
pub const BLOCK: u16 = 48;
const FIRST: u16 = 20000;
const LAST: u16 = 32000;

/// One test's ports. All on 127.0.0.1.
#[derive(Debug, Clone, Copy)]
pub struct PortBlock {
    /// The TURN/STUN listening port (UDP and TCP).
    pub listen: u16,
    /// The TLS listening port (TCP).
    pub tls: u16,
    /// A UDP port pair for a peer (`turnutils_peer` binds `peer` and `peer + 1`).
    pub peer: u16,
    /// Relay range (`min-port`, `max-port`), inclusive.
    pub relay_min: u16,
    pub relay_max: u16,
}

static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());

fn udp_free(port: u16) -> bool {
    UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn tcp_free(port: u16) -> bool {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Finds a block whose ports are all free right now.
pub fn allocate() -> PortBlock {
    let blocks = (LAST - FIRST) / BLOCK;
    // Start at a process-dependent block so concurrent test processes spread out.
    let start = (std::process::id() % u32::from(blocks)) as u16;
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for i in 0..blocks {
        let base = FIRST + ((start + i) % blocks) * BLOCK;
        if handed.contains(&base) {
            continue;
        }
        let all_free = (base..base + BLOCK).all(udp_free)
            && tcp_free(base)
            && tcp_free(base + 1)
            && tcp_free(base + 2);
        if all_free {
            handed.push(base);
            return PortBlock {
                listen: base,
                tls: base + 1,
                peer: base + 2,
                relay_min: base + 16,
                relay_max: base + BLOCK - 1,
            };
        }
    }
    panic!("no free block of {BLOCK} ports between {FIRST} and {LAST} on 127.0.0.1");
}
