//! The UDP side: one socket for every peer connection, driven from a dedicated thread.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_sfu::{Protocol, Receive};

use crate::hub::Hub;

/// Upper bound on how long the thread sleeps in `recv_from`, so timers armed by signalling
/// (a new connection, a forwarded keyframe request) are served promptly.
const MAX_WAIT: Duration = Duration::from_millis(10);

/// Runs the media loop until the process exits.
pub(crate) fn run(
    hub: Arc<Mutex<Hub>>,
    socket: Arc<UdpSocket>,
    advertised: Vec<IpAddr>,
    port: u16,
) {
    let mut buf = vec![0u8; 2000];
    // The address the peer sent to, as ICE sees it: our advertised address of the same family
    // (the socket may be bound to the unspecified address).
    let local_for = |src: &SocketAddr| -> SocketAddr {
        let ip = advertised
            .iter()
            .copied()
            .find(|ip| ip.is_ipv4() == src.is_ipv4())
            .unwrap_or(src.ip());
        SocketAddr::new(ip, port)
    };
    loop {
        let wait = {
            let h = hub.lock().expect("hub lock");
            h.next_timeout()
        }
        .map(|t| t.saturating_duration_since(Instant::now()))
        .unwrap_or(MAX_WAIT)
        .clamp(Duration::from_millis(1), MAX_WAIT);
        let _ = socket.set_read_timeout(Some(wait));
        match socket.recv_from(&mut buf) {
            Ok((n, source)) => {
                let now = Instant::now();
                if let Ok(contents) = buf[..n].try_into() {
                    let r = Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: local_for(&source),
                        contents,
                    };
                    let mut h = hub.lock().expect("hub lock");
                    if !h.router().handle_receive(now, r) {
                        tracing::trace!(%source, "datagram for no connection");
                    }
                    h.flush();
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => tracing::debug!("udp receive: {e}"),
        }
        let mut h = hub.lock().expect("hub lock");
        h.router().handle_timeout(Instant::now());
        h.flush();
    }
}
