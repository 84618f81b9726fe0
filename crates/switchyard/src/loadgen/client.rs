//! A small blocking TURN client over UDP, enough to drive a server under load: long-term
//! credentials (Synapse's REST scheme), Allocate, ChannelBind, Refresh.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use hmac::{Hmac, Mac};
use switchyard_stun::{Class, Message, MessageBuilder, MessageType, Method, TransactionId, attr};

/// Synapse-style credentials: username `<expiry>:<user>`, password
/// `base64(HMAC-SHA1(secret, username))` (turn-anchors §2.1).
#[derive(Clone, Debug)]
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) password: String,
}

impl Credentials {
    pub(crate) fn rest(secret: &str, user: &str, ttl: Duration) -> Self {
        let expiry = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            + ttl;
        let username = format!("{}:{user}", expiry.as_secs());
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("any key size");
        mac.update(username.as_bytes());
        let password =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        Self { username, password }
    }
}

/// What one 5-tuple has learned from the server's challenges: the long-term credential
/// state (RFC 8489 §9.2) that signs its requests.
pub(crate) struct Auth {
    creds: Credentials,
    realm: String,
    nonce: String,
    key: [u8; 16],
}

impl Auth {
    pub(crate) fn new(creds: Credentials) -> Self {
        Self {
            creds,
            realm: String::new(),
            nonce: String::new(),
            key: [0; 16],
        }
    }

    /// Whether a challenge has been answered yet, so requests can carry credentials.
    pub(crate) fn has_nonce(&self) -> bool {
        !self.nonce.is_empty()
    }

    /// Starts over as a new 5-tuple would: the server has no nonce for it yet. The realm
    /// and key stay, as a client that talked to this server before keeps them.
    pub(crate) fn forget_nonce(&mut self) {
        self.nonce.clear();
    }

    /// Writes a request into `out`, signed when `authed`; returns its length.
    pub(crate) fn encode(
        &self,
        out: &mut [u8],
        method: Method,
        tid: TransactionId,
        authed: bool,
        fill: impl Fn(&mut MessageBuilder<'_>) -> Result<(), switchyard_stun::BuildError>,
    ) -> anyhow::Result<usize> {
        let typ = MessageType {
            class: Class::Request,
            method,
        };
        let mut b = MessageBuilder::new(out, typ, tid)?;
        fill(&mut b)?;
        if authed {
            b.add(attr::USERNAME, self.creds.username.as_bytes())?;
            b.add(attr::REALM, self.realm.as_bytes())?;
            b.add(attr::NONCE, self.nonce.as_bytes())?;
            b.add_message_integrity(&self.key)?;
        }
        Ok(b.finish())
    }

    /// Reads the answer to a request sent with `authed`, learning from a 401 or 438.
    pub(crate) fn answer(&mut self, msg: &Message<'_>, method: Method, authed: bool) -> Reply {
        if msg.class() == Class::Success {
            return Reply::Success(msg.xor_relayed_address().ok().flatten());
        }
        let (code, reason) = msg.error_code().ok().flatten().unwrap_or((0, ""));
        if std::env::var_os("LOADGEN_DEBUG").is_some() {
            eprintln!(
                "{method:?} authed={authed} -> {code} {reason} nonce={:?} realm={:?}",
                msg.nonce(),
                msg.realm()
            );
        }
        if code == 401 || code == 438 {
            let realm = msg.realm().ok().flatten().unwrap_or_default().to_owned();
            let nonce = msg.nonce().ok().flatten().unwrap_or_default().to_owned();
            let was_authed = authed && code == 401 && realm == self.realm;
            if realm != self.realm {
                self.key = switchyard_stun::long_term_key(
                    &self.creds.username,
                    &realm,
                    &self.creds.password,
                );
                self.realm = realm;
            }
            self.nonce = nonce;
            if was_authed {
                return Reply::Error(401, "Unauthorized".into());
            }
            return Reply::Challenge;
        }
        Reply::Error(code, reason.to_owned())
    }
}

/// One client 5-tuple talking to the server.
pub(crate) struct TurnClient {
    pub(crate) socket: UdpSocket,
    server: SocketAddr,
    auth: Auth,
    buf: Vec<u8>,
    timeout: Duration,
}

impl TurnClient {
    pub(crate) fn new(
        bind: SocketAddr,
        server: SocketAddr,
        creds: Credentials,
    ) -> io::Result<Self> {
        let socket = UdpSocket::bind(bind)?;
        socket.connect(server)?;
        Ok(Self {
            socket,
            server,
            auth: Auth::new(creds),
            buf: vec![0; 2048],
            timeout: Duration::from_secs(2),
        })
    }

    /// The server this client talks to.
    pub(crate) fn server(&self) -> SocketAddr {
        self.server
    }

    /// Allocates a UDP relay, answering the 401 challenge first; returns the relayed address.
    pub(crate) fn allocate(&mut self, lifetime: Option<u32>) -> anyhow::Result<SocketAddr> {
        let mut tries = 0;
        loop {
            tries += 1;
            let authed = self.auth.has_nonce();
            let reply = self.transact(Method::ALLOCATE, authed, |b| {
                b.add_requested_transport(17)?;
                if let Some(l) = lifetime {
                    b.add_u32(attr::LIFETIME, l)?;
                }
                Ok(())
            })?;
            match reply {
                Reply::Success(relayed) => {
                    return relayed.ok_or_else(|| anyhow!("no XOR-RELAYED-ADDRESS"));
                }
                Reply::Challenge if tries < 3 => continue,
                Reply::Challenge => bail!("Allocate: credentials rejected (401)"),
                Reply::Error(code, reason) => bail!("Allocate: error {code} {reason}"),
            }
        }
    }

    /// Binds `channel` to `peer` (which also installs the permission).
    pub(crate) fn channel_bind(&mut self, channel: u16, peer: SocketAddr) -> anyhow::Result<()> {
        for _ in 0..3 {
            match self.transact(Method::CHANNEL_BIND, true, |b| {
                b.add_channel_number(channel)?;
                b.add_xor_address(attr::XOR_PEER_ADDRESS, peer)
            })? {
                Reply::Success(_) => return Ok(()),
                Reply::Challenge => continue,
                Reply::Error(code, reason) => bail!("ChannelBind: error {code} {reason}"),
            }
        }
        bail!("ChannelBind: stale nonce loop")
    }

    /// Refresh with LIFETIME 0: deletes the allocation.
    pub(crate) fn release(&mut self) -> anyhow::Result<()> {
        for _ in 0..3 {
            match self.transact(Method::REFRESH, true, |b| b.add_u32(attr::LIFETIME, 0))? {
                Reply::Success(_) => return Ok(()),
                Reply::Challenge => continue,
                Reply::Error(code, reason) => bail!("Refresh: error {code} {reason}"),
            }
        }
        bail!("Refresh: stale nonce loop")
    }

    fn transact(
        &mut self,
        method: Method,
        authed: bool,
        fill: impl Fn(&mut MessageBuilder<'_>) -> Result<(), switchyard_stun::BuildError>,
    ) -> anyhow::Result<Reply> {
        let tid = TransactionId(rand_tid());
        let mut out = [0u8; 1024];
        let len = self.auth.encode(&mut out, method, tid, authed, fill)?;
        let deadline = Instant::now() + self.timeout * 3;
        let mut next_send = Instant::now();
        loop {
            let now = Instant::now();
            if now >= deadline {
                bail!("{method:?}: no answer from {}", self.server);
            }
            if now >= next_send {
                self.socket.send(&out[..len]).context("send")?;
                next_send = now + self.timeout / 4;
            }
            self.socket.set_read_timeout(Some(
                next_send
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(1)),
            ))?;
            let n = match self.socket.recv(&mut self.buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    bail!("server refused (ICMP)")
                }
                Err(e) => return Err(e.into()),
            };
            let Ok(msg) = Message::parse(&self.buf[..n]) else {
                continue; // ChannelData or garbage
            };
            if msg.transaction_id() != tid {
                continue;
            }
            return Ok(self.auth.answer(&msg, method, authed));
        }
    }
}

pub(crate) enum Reply {
    Success(Option<SocketAddr>),
    Challenge,
    Error(u16, String),
}

pub(crate) fn rand_tid() -> [u8; 12] {
    let mut t = [0u8; 12];
    getrandom::getrandom(&mut t).expect("OS randomness");
    t
}
