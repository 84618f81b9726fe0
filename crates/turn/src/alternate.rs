//! `alternate-server` / `tls-alternate-server`: load shedding with 300 Try Alternate
//! (RFC 8489 §10, RFC 8656 §7.2).
//!
//! coturn's semantics, kept for drop-in behaviour:
//! - only an Allocate that would create a new allocation is redirected (Refresh,
//!   CreatePermission, ChannelBind on an existing allocation are served, and Binding is
//!   never redirected);
//! - TLS and DTLS clients are sent to the `tls-alternate-server` list, UDP and TCP clients
//!   to the `alternate-server` list;
//! - the list is walked round-robin (one counter per list and worker), skipping entries of
//!   the other address family than the address the client reached;
//! - to avoid a redirect loop, a server that finds the address the client reached in the
//!   list does not redirect at all (the list is shared by a pool of servers; the one named
//!   in it serves).
//!
//! One difference: coturn answers 300 before authentication; here the 300 comes after the
//! request has authenticated, so it carries MESSAGE-INTEGRITY and a client can trust the
//! address it is sent to (RFC 8489 §10 wants the redirect authenticated when the server
//! authenticates requests; an unauthenticated 300 would let anyone on the path steer
//! clients). Clients that follow 300 (libwebrtc, turnutils_uclient) do the 401 round first
//! either way.

use std::net::SocketAddr;

use crate::Transport;

/// One `alternate-server` entry: where to send the client and, for TLS/DTLS, the name to
/// check the alternate's certificate against (RFC 8489 §14.16 ALTERNATE-DOMAIN).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlternateServer {
    pub addr: SocketAddr,
    /// The host name as configured, when it was a name rather than an IP literal.
    pub domain: Option<String>,
}

/// The two lists and their round-robin positions.
#[derive(Clone, Debug, Default)]
pub(crate) struct Redirector {
    plain: Vec<AlternateServer>,
    tls: Vec<AlternateServer>,
    next_plain: usize,
    next_tls: usize,
}

impl Redirector {
    pub(crate) fn new(plain: Vec<AlternateServer>, tls: Vec<AlternateServer>) -> Self {
        Redirector {
            plain,
            tls,
            next_plain: 0,
            next_tls: 0,
        }
    }

    /// The alternate to send a new allocation from a client on `transport` that reached
    /// `local` to, if any.
    pub(crate) fn pick(
        &mut self,
        transport: Transport,
        local: SocketAddr,
    ) -> Option<&AlternateServer> {
        let secure = matches!(transport, Transport::Tls | Transport::Dtls);
        let (list, next) = if secure {
            (&self.tls, &mut self.next_tls)
        } else {
            (&self.plain, &mut self.next_plain)
        };
        if list.is_empty() || list.iter().any(|a| a.addr == local) {
            return None;
        }
        for _ in 0..list.len() {
            let i = *next % list.len();
            *next = (i + 1) % list.len();
            if list[i].addr.is_ipv4() == local.is_ipv4() {
                return Some(&list[i]);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alt(s: &str) -> AlternateServer {
        AlternateServer {
            addr: s.parse().unwrap(),
            domain: None,
        }
    }

    #[test]
    fn round_robin_same_family_and_no_loop() {
        let mut r = Redirector::new(
            vec![
                alt("192.0.2.1:3478"),
                alt("[2001:db8::1]:3478"),
                alt("192.0.2.2:3478"),
            ],
            vec![alt("192.0.2.9:5349")],
        );
        let local: SocketAddr = "198.51.100.1:3478".parse().unwrap();
        let picks: Vec<_> = (0..4)
            .map(|_| r.pick(Transport::Udp, local).unwrap().addr.to_string())
            .collect();
        assert_eq!(
            picks,
            [
                "192.0.2.1:3478",
                "192.0.2.2:3478",
                "192.0.2.1:3478",
                "192.0.2.2:3478"
            ]
        );
        let v6: SocketAddr = "[2001:db8::5]:3478".parse().unwrap();
        assert_eq!(
            r.pick(Transport::Tcp, v6).unwrap().addr.to_string(),
            "[2001:db8::1]:3478"
        );
        assert_eq!(
            r.pick(Transport::Tls, local).unwrap().addr.to_string(),
            "192.0.2.9:5349"
        );
        assert!(
            r.pick(Transport::Tls, v6).is_none(),
            "no IPv6 TLS alternate"
        );
        // A server listed in its own pool serves instead of bouncing the client around.
        let listed: SocketAddr = "192.0.2.2:3478".parse().unwrap();
        assert!(r.pick(Transport::Udp, listed).is_none());
        assert!(Redirector::default().pick(Transport::Udp, local).is_none());
    }
}
