//! The `alloc-rate` mode: how many authenticated allocations a server completes per second.
//!
//! Each slot plays a new client on a fresh 5-tuple: unauthenticated Allocate (401),
//! authenticated Allocate, Refresh(0) to free it, then starts over on a new port. The slots
//! of one thread are driven from one epoll loop rather than a blocking thread each: with a
//! thread per client, the generator's own wake-ups and context switches cost more than a
//! fast server's work and the run would measure the generator, not the server.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use switchyard_stun::{Message, Method, TransactionId, attr};

use super::client::{Auth, Credentials, Reply, rand_tid};

/// Resend an unanswered request after this long (UDP on loopback rarely loses, but a busy
/// server's socket buffer can).
const RETRANSMIT: Duration = Duration::from_millis(250);
/// Give the client up after this long without an answer.
const GIVE_UP: Duration = Duration::from_secs(3);

/// Shared tallies of all driver threads.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) done: AtomicU64,
    pub(crate) failed: AtomicU64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Step {
    /// Allocate without credentials, expecting the 401 challenge.
    Challenge,
    /// Allocate answering the challenge.
    Allocate,
    /// Refresh with LIFETIME 0.
    Release,
}

impl Step {
    fn method(self) -> Method {
        match self {
            Step::Challenge | Step::Allocate => Method::ALLOCATE,
            Step::Release => Method::REFRESH,
        }
    }
}

/// One simulated client: its socket, where it is in the exchange and its pending request.
struct Slot {
    socket: UdpSocket,
    auth: Auth,
    step: Step,
    /// Challenges answered in this step; a third in a row is a failure (stale-nonce loop).
    challenges: u8,
    tid: TransactionId,
    request: [u8; 512],
    len: usize,
    sent_at: Instant,
    started: Instant,
}

/// Runs `slots` concurrent clients on this thread until `until`.
pub(crate) fn drive(
    server: SocketAddr,
    sources: Sources,
    creds: Vec<Credentials>,
    until: Instant,
    tally: Arc<Tally>,
) -> anyhow::Result<()> {
    let mut sources = sources;
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(256);
    let mut slots = Vec::with_capacity(creds.len());
    for (i, c) in creds.iter().enumerate() {
        slots.push(Slot::open(
            &poll,
            Token(i),
            server,
            &mut sources,
            c.clone(),
        )?);
    }
    let mut buf = [0u8; 2048];
    loop {
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        let wait = RETRANSMIT.min(until - now);
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        for ev in &events {
            let i = ev.token().0;
            loop {
                let n = match slots[i].socket.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        // ICMP refusal and the like: this client is lost.
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        slots[i].restart(&poll, Token(i), server, &mut sources)?;
                        break;
                    }
                };
                let Ok(msg) = Message::parse(&buf[..n]) else {
                    continue;
                };
                if msg.transaction_id() != slots[i].tid {
                    continue; // a retransmission's late answer
                }
                match slots[i].advance(&msg) {
                    Outcome::Sent => {}
                    Outcome::Done => {
                        tally.done.fetch_add(1, Ordering::Relaxed);
                        slots[i].restart(&poll, Token(i), server, &mut sources)?;
                    }
                    Outcome::Failed => {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        slots[i].restart(&poll, Token(i), server, &mut sources)?;
                    }
                }
                break;
            }
        }
        let now = Instant::now();
        for (i, slot) in slots.iter_mut().enumerate() {
            if now.duration_since(slot.started) >= GIVE_UP {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                slot.restart(&poll, Token(i), server, &mut sources)?;
            } else if now.duration_since(slot.sent_at) >= RETRANSMIT {
                slot.send();
            }
        }
    }
}

enum Outcome {
    Sent,
    Done,
    Failed,
}

impl Slot {
    fn open(
        poll: &Poll,
        token: Token,
        server: SocketAddr,
        sources: &mut Sources,
        creds: Credentials,
    ) -> anyhow::Result<Self> {
        let socket = fresh_socket(poll, token, server, sources)?;
        let now = Instant::now();
        let mut slot = Self {
            socket,
            auth: Auth::new(creds),
            step: Step::Challenge,
            challenges: 0,
            tid: TransactionId([0; 12]),
            request: [0; 512],
            len: 0,
            sent_at: now,
            started: now,
        };
        slot.request(Step::Challenge);
        Ok(slot)
    }

    /// A new client: a new port, no nonce, from the first step.
    fn restart(
        &mut self,
        poll: &Poll,
        token: Token,
        server: SocketAddr,
        sources: &mut Sources,
    ) -> anyhow::Result<()> {
        // Dropping the old socket closes it, which also takes it out of the poll set.
        self.socket = fresh_socket(poll, token, server, sources)?;
        self.auth.forget_nonce();
        self.challenges = 0;
        self.started = Instant::now();
        self.request(Step::Challenge);
        Ok(())
    }

    /// Builds and sends the request of `step` with a new transaction id.
    fn request(&mut self, step: Step) {
        if step != self.step {
            self.challenges = 0;
        }
        self.step = step;
        self.tid = TransactionId(rand_tid());
        let authed = step != Step::Challenge;
        let encoded =
            self.auth.encode(
                &mut self.request,
                step.method(),
                self.tid,
                authed,
                |b| match step {
                    Step::Challenge | Step::Allocate => b.add_requested_transport(17),
                    Step::Release => b.add_u32(attr::LIFETIME, 0),
                },
            );
        // The request always fits: a few short attributes in 512 bytes.
        self.len = encoded.expect("request fits its buffer");
        self.send();
    }

    fn send(&mut self) {
        // A full socket buffer drops the request; the retransmission timer covers it.
        let _ = self.socket.send(&self.request[..self.len]);
        self.sent_at = Instant::now();
    }

    fn advance(&mut self, msg: &Message<'_>) -> Outcome {
        let authed = self.step != Step::Challenge;
        match (self.step, self.auth.answer(msg, self.step.method(), authed)) {
            (Step::Challenge, Reply::Challenge) => self.request(Step::Allocate),
            (Step::Allocate, Reply::Success(_)) => self.request(Step::Release),
            (Step::Release, Reply::Success(_)) => return Outcome::Done,
            (step @ (Step::Allocate | Step::Release), Reply::Challenge) if self.challenges < 2 => {
                self.challenges += 1;
                self.request(step);
            }
            _ => return Outcome::Failed,
        }
        Outcome::Sent
    }
}

/// Where new clients come from. Real clients arrive from many addresses; a run from one
/// address soon has the kernel hand out a port that a client freed a moment ago, and a
/// server that keeps a deleted allocation's 5-tuple for a while (coturn does) answers that
/// client 437. On IPv4 loopback every 127.0.0.0/8 address is local, so each new client
/// takes the next one and no 5-tuple repeats within a run.
pub(crate) struct Sources {
    base: IpAddr,
    next: u32,
}

impl Sources {
    /// Thread `thread`'s sequence of source addresses for `bind`.
    pub(crate) fn new(bind: IpAddr, thread: usize) -> Self {
        Self {
            base: bind,
            next: (thread as u32 & 0x7f) << 17,
        }
    }

    fn next(&mut self) -> IpAddr {
        match self.base {
            IpAddr::V4(v4) if v4.is_loopback() => loop {
                self.next = self.next.wrapping_add(1) & 0x00ff_ffff;
                let [_, b, c, d] = self.next.to_be_bytes();
                // Skip x.y.z.0 and x.y.z.255, which some stacks refuse to bind.
                if d != 0 && d != 255 {
                    return IpAddr::V4(Ipv4Addr::new(127, b, c, d));
                }
            },
            other => other,
        }
    }
}

fn fresh_socket(
    poll: &Poll,
    token: Token,
    server: SocketAddr,
    sources: &mut Sources,
) -> anyhow::Result<UdpSocket> {
    let mut socket = UdpSocket::bind(SocketAddr::new(sources.next(), 0))?;
    socket.connect(server)?;
    poll.registry()
        .register(&mut socket, token, Interest::READABLE)?;
    Ok(socket)
}
