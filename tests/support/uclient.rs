//! coturn's test clients: `turnutils_peer` (a UDP echo peer) and `turnutils_uclient`
//! (a TURN client that relays to it and counts what comes back).

use crate::process::{ChildGuard, Finished, run_bounded};
use crate::skip::{Need, find_binary};
use crate::tempdir::TempDir;
use std::net::{Ipv4Addr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running `turnutils_peer -L 127.0.0.1 -p <port>` (it binds `port` and `port + 1`).
pub struct EchoPeer {
    pub port: u16,
    _guard: ChildGuard,
}

impl EchoPeer {
    pub fn start(dir: &TempDir, port: u16) -> Need<Self> {
        let bin = find_binary("turnutils_peer")?;
        let mut cmd = Command::new(bin);
        cmd.args(["-L", "127.0.0.1", "-p", &port.to_string()]);
        let mut guard = ChildGuard::spawn("turnutils_peer", &mut cmd, &dir.join("peer.log"))
            .expect("spawn turnutils_peer");
        // Ready when it echoes a datagram.
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind probe socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set timeout");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 64];
        loop {
            if let Some(status) = guard.exited() {
                panic!("turnutils_peer exited ({status}): {}", guard.log_tail(20));
            }
            let _ = sock.send_to(b"ready?", (Ipv4Addr::LOCALHOST, port));
            if matches!(sock.recv_from(&mut buf), Ok((n, _)) if &buf[..n] == b"ready?") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "turnutils_peer did not echo on 127.0.0.1:{port} within 10 s"
            );
        }
        Ok(EchoPeer {
            port,
            _guard: guard,
        })
    }
}

/// The counters `turnutils_uclient` prints at the end of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub sent: u64,
    pub received: u64,
    /// From "Total lost packets N (x%)".
    pub lost: u64,
}

/// Reads the final `start_mclient: tot_send_msgs=N, tot_recv_msgs=M` line (the one without
/// `msz=`, printed once after all clients finished) and `Total lost packets N`.
pub fn parse_totals(output: &str) -> Option<Totals> {
    let mut sent_recv = None;
    let mut lost = None;
    for line in output.lines() {
        if let Some(rest) = line.split("start_mclient: tot_send_msgs=").nth(1) {
            let (sent, rest) = rest.split_once(", tot_recv_msgs=")?;
            let recv: String = rest.chars().take_while(char::is_ascii_digit).collect();
            sent_recv = Some((sent.trim().parse().ok()?, recv.parse().ok()?));
        }
        if let Some(rest) = line.split("Total lost packets ").nth(1) {
            let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
            lost = n.parse().ok();
        }
    }
    let (sent, received) = sent_recv?;
    Some(Totals {
        sent,
        received,
        lost: lost?,
    })
}

/// How `turnutils_uclient` authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `-u <user> -W <secret>`: the client mints `<now+86400>:<user>` itself.
    Secret { user: String, secret: String },
    /// `-u <username> -w <password>`.
    Password { username: String, password: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTransport {
    Udp,
    Tcp,
    /// TLS over TCP (`-t -S`; `-S` alone would be DTLS).
    Tls,
}

/// One `turnutils_uclient` run: `clients` clients each sending `messages` datagrams of
/// `length` bytes every `interval_ms` to the echo peer, through the server.
#[derive(Debug, Clone)]
pub struct Run {
    pub server_port: u16,
    pub peer_port: u16,
    pub transport: ClientTransport,
    /// `-s`: Send/Data indications instead of ChannelData.
    pub send_indications: bool,
    /// `-y`: clients relay to each other's relayed addresses (TURN to TURN on one server)
    /// instead of to the echo peer.
    pub client_to_client: bool,
    pub auth: Auth,
    pub clients: u32,
    pub messages: u32,
    pub length: u32,
    pub interval_ms: u32,
    pub timeout: Duration,
    /// Without `-c`: each client also allocates an RTCP companion, the RTP allocation with
    /// EVEN-PORT (R=1) and the RTCP one with the RESERVATION-TOKEN it returned, from a
    /// second socket (uclient's default).
    pub rtcp: bool,
    /// More flags, e.g. `-M` (RFC 8016 mobility), `-Z` (dual allocation).
    pub flags: Vec<&'static str>,
}

impl Run {
    pub fn new(server_port: u16, peer_port: u16, auth: Auth) -> Self {
        Run {
            server_port,
            peer_port,
            transport: ClientTransport::Udp,
            send_indications: false,
            client_to_client: false,
            auth,
            clients: 4,
            messages: 50,
            length: 170,
            interval_ms: 5,
            timeout: Duration::from_secs(45),
            rtcp: false,
            flags: Vec::new(),
        }
    }

    pub fn command(&self) -> Need<Command> {
        let bin = find_binary("turnutils_uclient")?;
        let mut cmd = Command::new(bin);
        match self.transport {
            ClientTransport::Udp => {}
            ClientTransport::Tcp => {
                cmd.arg("-t");
            }
            ClientTransport::Tls => {
                cmd.args(["-t", "-S"]);
            }
        }
        if self.send_indications {
            cmd.arg("-s");
        }
        if self.client_to_client {
            cmd.arg("-y");
        }
        if !self.rtcp {
            cmd.arg("-c");
        }
        cmd.args(&self.flags);
        match &self.auth {
            Auth::Secret { user, secret } => cmd.args(["-u", user, "-W", secret]),
            Auth::Password { username, password } => cmd.args(["-u", username, "-w", password]),
        };
        cmd.args([
            "-p",
            &self.server_port.to_string(),
            "-e",
            "127.0.0.1",
            "-r",
            &self.peer_port.to_string(),
            "-X", // IPv4 relay
            "-m",
            &self.clients.to_string(),
            "-n",
            &self.messages.to_string(),
            "-l",
            &self.length.to_string(),
            "-z",
            &self.interval_ms.to_string(),
            "127.0.0.1",
        ]);
        Ok(cmd)
    }

    pub fn run(&self, dir: &TempDir, label: &str) -> Need<Finished> {
        let mut cmd = self.command()?;
        Ok(run_bounded(
            &mut cmd,
            self.timeout,
            &dir.join(&format!("uclient-{label}.log")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_final_totals() {
        let out = "\
3: : start_mclient: msz=4, tot_send_msgs=100, tot_recv_msgs=99, tot_send_bytes ~ 17000, tot_recv_bytes ~ 16830
4: : start_mclient: tot_send_msgs=200, tot_recv_msgs=200
4: : start_mclient: tot_send_bytes ~ 34000, tot_recv_bytes ~ 34000
4: : Total lost packets 0 (0.000000%), total send dropped 0 (0.000000%)
";
        assert_eq!(
            parse_totals(out),
            Some(Totals {
                sent: 200,
                received: 200,
                lost: 0
            })
        );
    }

    #[test]
    fn failed_allocation_has_no_totals() {
        assert_eq!(
            parse_totals("0: : ERROR: Cannot complete Allocation\n"),
            None
        );
    }
}
