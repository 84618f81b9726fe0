//! RFC 5780 NAT behaviour discovery: which of the server's four (IP, port) combinations
//! answers a Binding request.
//!
//! The server listens on two IPs of a family (A1, A2) and two ports (P1 = `listening-port`,
//! P2 = `alt-listening-port`). A Binding request received on one combination is answered
//! with OTHER-ADDRESS naming the one that differs in both, RESPONSE-ORIGIN naming the one
//! the answer leaves from, and, on CHANGE-REQUEST, the answer leaves from the combination
//! with the IP and/or port changed (RFC 5780 §6). With only one IP of a family there is no
//! alternate: RFC 5780 is off for that family (coturn says the same at startup).

use std::net::{IpAddr, SocketAddr};

/// The addresses RFC 5780 works with (`rfc5780`, `alt-listening-port`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatDiscovery {
    /// Listening IPs in configuration order; the first two of a family pair up.
    pub ips: Vec<IpAddr>,
    pub port: u16,
    pub alt_port: u16,
}

impl NatDiscovery {
    /// The other IP of `ip`'s pair, if `ip` is one of the first two of its family.
    pub fn other_ip(&self, ip: IpAddr) -> Option<IpAddr> {
        let mut same = self
            .ips
            .iter()
            .copied()
            .filter(|i| i.is_ipv4() == ip.is_ipv4() && !i.is_unspecified());
        let (a, b) = (same.next()?, same.next()?);
        if ip == a {
            Some(b)
        } else if ip == b {
            Some(a)
        } else {
            None
        }
    }

    pub fn other_port(&self, port: u16) -> Option<u16> {
        if port == self.port {
            Some(self.alt_port)
        } else if port == self.alt_port {
            Some(self.port)
        } else {
            None
        }
    }

    /// OTHER-ADDRESS for a request received on `local`: both IP and port differ.
    pub fn other_address(&self, local: SocketAddr) -> Option<SocketAddr> {
        Some(SocketAddr::new(
            self.other_ip(local.ip())?,
            self.other_port(local.port())?,
        ))
    }

    /// Where the answer to a request received on `local` leaves from under CHANGE-REQUEST;
    /// `None` when the change asked for is not possible here.
    pub fn answer_from(
        &self,
        local: SocketAddr,
        change_ip: bool,
        change_port: bool,
    ) -> Option<SocketAddr> {
        let ip = if change_ip {
            self.other_ip(local.ip())?
        } else {
            local.ip()
        };
        let port = if change_port {
            self.other_port(local.port())?
        } else {
            local.port()
        };
        Some(SocketAddr::new(ip, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_combinations() {
        let nd = NatDiscovery {
            ips: vec![
                "127.0.0.1".parse().unwrap(),
                "::1".parse().unwrap(),
                "127.0.0.2".parse().unwrap(),
            ],
            port: 3478,
            alt_port: 3479,
        };
        let a1p1: SocketAddr = "127.0.0.1:3478".parse().unwrap();
        assert_eq!(
            nd.other_address(a1p1),
            Some("127.0.0.2:3479".parse().unwrap())
        );
        assert_eq!(
            nd.other_address("127.0.0.2:3479".parse().unwrap()),
            Some(a1p1)
        );
        assert_eq!(nd.answer_from(a1p1, false, false), Some(a1p1));
        assert_eq!(
            nd.answer_from(a1p1, true, false),
            Some("127.0.0.2:3478".parse().unwrap())
        );
        assert_eq!(
            nd.answer_from(a1p1, false, true),
            Some("127.0.0.1:3479".parse().unwrap())
        );
        // Only one IPv6 address: no alternate for that family.
        let v6: SocketAddr = "[::1]:3478".parse().unwrap();
        assert_eq!(nd.other_address(v6), None);
        assert_eq!(nd.answer_from(v6, true, false), None);
        assert_eq!(
            nd.answer_from(v6, false, true),
            Some("[::1]:3479".parse().unwrap())
        );
        // Not a port of ours (a TLS listener, say).
        assert_eq!(nd.other_address("127.0.0.1:5349".parse().unwrap()), None);
    }
}
