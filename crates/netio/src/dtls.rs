//! DTLS 1.2 server sessions on a UDP socket (RFC 7350 TURN over DTLS, coturn's DTLS
//! listener), with `dimpl`: a sans-IO DTLS implementation (ECDSA certificates; the
//! stateless cookie exchange keeps a spoofed ClientHello from costing more than a small
//! session slot, which idle expiry and a cap bound).
//!
//! One [`DtlsEndpoint`] per listening socket; sessions are keyed by the client address.
//! Decrypted datagrams go to the caller; what the caller sends is encrypted and written.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;

use crate::tls::TlsError;

/// Sessions one endpoint holds at most; new handshakes beyond it are ignored.
pub const MAX_SESSIONS: usize = 16_384;
/// A session that completed no handshake is dropped after this long.
const HANDSHAKE_IDLE: Duration = Duration::from_secs(30);
/// An established session with no datagram from the client for this long is dropped
/// (longer than the longest allocation lifetime a client keeps alive with Refresh).
const SESSION_IDLE: Duration = Duration::from_secs(3600);
/// Largest DTLS record written: an encrypted relayed datagram plus overhead.
const MAX_RECORD: usize = 4096 + 256;

/// The server's DTLS identity, from the same `cert=`/`pkey=` PEM files as TLS.
#[derive(Clone)]
pub struct DtlsIdentity(dimpl::DtlsCertificate);

impl DtlsIdentity {
    /// Loads the first certificate and the private key. The DTLS engine (dimpl) signs with
    /// ECDSA keys only (P-256/P-384): any other key is refused here, with
    /// [`TlsError::UnsupportedKey`], rather than loaded into a listener whose every
    /// handshake would fail.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let certs = crate::tls::load_certs(cert)?;
        let key_der = crate::tls::load_key(key)?;
        if !is_ec_key(&key_der) {
            return Err(TlsError::UnsupportedKey {
                path: key.to_owned(),
                what: "DTLS needs an ECDSA (P-256/P-384) key; this one is RSA or another kind",
            });
        }
        let key = key_der;
        Ok(DtlsIdentity(dimpl::DtlsCertificate {
            certificate: certs[0].to_vec(),
            private_key: key.secret_der().to_vec(),
        }))
    }
}

/// SEC1 `EC PRIVATE KEY`, or PKCS#8 whose algorithm is id-ecPublicKey (1.2.840.10045.2.1).
fn is_ec_key(key: &rustls::pki_types::PrivateKeyDer<'_>) -> bool {
    const ID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    match key {
        rustls::pki_types::PrivateKeyDer::Sec1(_) => true,
        rustls::pki_types::PrivateKeyDer::Pkcs8(k) => {
            // The AlgorithmIdentifier sits in the first few dozen bytes of the structure.
            let head = &k.secret_pkcs8_der()[..k.secret_pkcs8_der().len().min(40)];
            head.windows(ID_EC_PUBLIC_KEY.len())
                .any(|w| w == ID_EC_PUBLIC_KEY)
        }
        _ => false,
    }
}

struct Session {
    dtls: dimpl::Dtls,
    last_seen: Instant,
    connected: bool,
    next_timeout: Option<Instant>,
}

/// The DTLS sessions of one listening UDP socket.
pub struct DtlsEndpoint {
    config: Arc<dimpl::Config>,
    identity: DtlsIdentity,
    sessions: HashMap<SocketAddr, Session>,
    out: Vec<u8>,
}

impl DtlsEndpoint {
    pub fn new(identity: DtlsIdentity) -> Result<Self, String> {
        let config = dimpl::Config::builder()
            .require_client_certificate(false)
            .build()
            .map_err(|e| format!("DTLS configuration: {e:?}"))?;
        Ok(DtlsEndpoint {
            config: Arc::new(config),
            identity,
            sessions: HashMap::new(),
            out: vec![0u8; MAX_RECORD],
        })
    }

    /// The certificate for handshakes from now on (a reload); sessions already open keep the
    /// one they were made with, as TLS connections do.
    pub fn set_identity(&mut self, identity: DtlsIdentity) {
        self.identity = identity;
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// A datagram from `from`: handshake flights are answered on `socket`, and each
    /// decrypted application datagram is passed to `app`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        socket: &UdpSocket,
        from: SocketAddr,
        datagram: &[u8],
        mut app: impl FnMut(&[u8]),
    ) {
        if !self.sessions.contains_key(&from) {
            // Only a handshake record (content type 22) opens a session.
            if datagram.first() != Some(&22) || self.sessions.len() >= MAX_SESSIONS {
                return;
            }
            let mut dtls = dimpl::Dtls::new_12(self.config.clone(), self.identity.0.clone(), now);
            dtls.set_active(false);
            self.sessions.insert(
                from,
                Session {
                    dtls,
                    last_seen: now,
                    connected: false,
                    next_timeout: None,
                },
            );
        }
        let Some(s) = self.sessions.get_mut(&from) else {
            return;
        };
        s.last_seen = now;
        // The engine sends its next flight from its timer: run it right away.
        if s.dtls.handle_packet(datagram).is_err() || s.dtls.handle_timeout(now).is_err() {
            self.sessions.remove(&from);
            return;
        }
        if drain(s, &mut self.out, socket, from, &mut app) {
            self.sessions.remove(&from);
        }
    }

    /// Encrypts `data` for the established session with `to` and sends it. False when
    /// there is no such session (the datagram is dropped, as UDP would).
    pub fn send(&mut self, socket: &UdpSocket, to: SocketAddr, data: &[u8]) -> bool {
        let Some(s) = self.sessions.get_mut(&to) else {
            return false;
        };
        if !s.connected || s.dtls.send_application_data(data).is_err() {
            return false;
        }
        drain(s, &mut self.out, socket, to, &mut |_| {});
        true
    }

    /// Retransmissions and idle expiry; call about once a second.
    pub fn handle_timeouts(&mut self, now: Instant, socket: &UdpSocket) {
        let out = &mut self.out;
        self.sessions.retain(|peer, s| {
            let idle = now.saturating_duration_since(s.last_seen);
            if idle
                > if s.connected {
                    SESSION_IDLE
                } else {
                    HANDSHAKE_IDLE
                }
            {
                return false;
            }
            if s.next_timeout.is_some_and(|t| t <= now) {
                if s.dtls.handle_timeout(now).is_err() {
                    return false;
                }
                if drain(s, out, socket, *peer, &mut |_| {}) {
                    return false;
                }
            }
            true
        });
    }
}

/// Writes what the session has to send, hands over application data, and notes the next
/// timer. True when the session is over (peer closed or failed).
fn drain(
    s: &mut Session,
    out: &mut [u8],
    socket: &UdpSocket,
    peer: SocketAddr,
    app: &mut impl FnMut(&[u8]),
) -> bool {
    // A bounded loop: dimpl ends a drain with a Timeout; two in a row mean nothing is left.
    let mut timeouts = 0;
    for _ in 0..256 {
        match s.dtls.poll_output(out) {
            dimpl::Output::Packet(p) => {
                let _ = socket.send_to(p, peer);
            }
            dimpl::Output::Timeout(t) => {
                s.next_timeout = Some(t);
                timeouts += 1;
                if timeouts > 1 {
                    break;
                }
            }
            dimpl::Output::Connected => s.connected = true,
            dimpl::Output::ApplicationData(d) => app(d),
            dimpl::Output::CloseNotify => return true,
            _ => {}
        }
    }
    false
}
