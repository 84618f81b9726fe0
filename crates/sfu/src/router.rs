//! The router: participants, their peer connections, published tracks and subscriptions.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::SdpPendingOffer;
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, MediaTime, Mid, Rid};
use str0m::net::{Protocol, Receive, TcpType, Transmit};
use str0m::{Candidate, Event as RtcEvent, IceConnectionState, Input, Output, Rtc, RtcError};

use crate::allocate::{self, Demand, Grant};
use crate::forward::{Forwarder, Target, Verdict};
use crate::ids::{ParticipantId, PcRole, TrackId};
use crate::ingress::{Ingress, IngressLimit};
use crate::rate::RateMeter;
use crate::sdp::{PublisherOffer, SubscriberAnswer};
use crate::shard::ShardId;

/// Labels of the data channels the subscriber connection carries; the publisher side uses
/// whatever the client opened.
const RELIABLE_LABEL: &str = "_reliable";
const LOSSY_LABEL: &str = "_lossy";

/// A simulcast layer counts as sent while it delivered a frame this recently.
const LAYER_ACTIVE: Duration = Duration::from_millis(1500);
/// Weight of the previous value in the audio level average (per packet, ~20 ms).
const LEVEL_SMOOTHING: f32 = 0.8;
/// An audio level older than this counts as silence (muted, DTX, gone).
const LEVEL_STALE: Duration = Duration::from_millis(1000);

/// At most one keyframe request per publisher layer in this interval.
const KEYFRAME_THROTTLE: Duration = Duration::from_millis(500);

/// How often layer bitrates are measured and every subscriber's layers re-fitted into its
/// bandwidth estimate.
const ALLOCATION_TICK: Duration = Duration::from_millis(500);
/// The bandwidth a new subscriber connection is assumed to have until its first
/// congestion-control feedback says otherwise: enough for the middle layer of a couple of
/// simulcast tracks, which is what a call first shows while the estimate ramps up.
const INITIAL_ESTIMATE: u64 = 1_500_000;
/// str0m probes the link towards what the subscriber wants, plus this headroom, so a
/// step up to a better layer is known to fit before it is taken.
const PROBE_HEADROOM: f64 = 1.15;
/// str0m sends its start-up probes (3 and 6 times the estimate) once, early, and caps
/// them at twice the desired bitrate. What a subscriber wants is not known that early:
/// layer bitrates are measured from what arrives, the lowest layer first. A probe capped
/// at the lowest layer's rate measures only that and drags the estimate down to it. So
/// for this long after str0m can first probe, the desired bitrate is at least
/// [`INITIAL_ESTIMATE`].
const STARTUP_PROBING: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    #[error("no such participant")]
    NoParticipant,
    #[error("no such track")]
    NoTrack,
    #[error("bad SDP: {0}")]
    Sdp(String),
    #[error("bad ICE candidate: {0}")]
    Candidate(String),
    #[error("not allowed to subscribe")]
    NotAllowed,
    #[error("answer without an outstanding offer")]
    NoPendingOffer,
    #[error("webrtc: {0}")]
    Rtc(#[from] RtcError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    Audio,
    Video,
}

/// How a subscriber's copy of a published track is named in SDP (`a=msid:<stream> <track>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackLabel {
    pub stream_id: String,
    pub track_id: String,
}

/// A subscriber's wish for one track's video layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerChoice {
    /// Forward nothing.
    Paused,
    /// The best layer up to this rank (0 = lowest rid the publisher announced).
    UpTo(usize),
}

/// Something the caller must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The publisher stopped sending a track (its m-line no longer sends to us): it is
    /// renegotiated away from every subscriber.
    TrackClosed {
        participant: ParticipantId,
        track: TrackId,
    },
    /// A publisher connection negotiated a new incoming m-line. Nothing is forwarded until the
    /// caller names it with [`Router::publish`].
    TrackOpened {
        participant: ParticipantId,
        track: TrackId,
        mid: String,
        kind: TrackKind,
        /// Simulcast rids in the publisher's order (empty without simulcast).
        rids: Vec<String>,
    },
    /// Send this offer to the participant for its subscriber connection.
    SubscriberOffer {
        participant: ParticipantId,
        sdp: String,
    },
    /// Single-connection mode: the client must send a new offer, after adding this many
    /// receive-only audio and video m-lines (both may be zero: the answer to the new offer
    /// then carries changed track assignments).
    NeedOffer {
        participant: ParticipantId,
        audio: u32,
        video: u32,
    },
    /// A data-channel message from a participant.
    Data {
        from: ParticipantId,
        reliable: bool,
        data: Vec<u8>,
    },
    /// ICE+DTLS came up on one of the participant's connections.
    Connected {
        participant: ParticipantId,
        role: PcRole,
    },
    /// A connection died (ICE gave up, DTLS failed, or the remote closed).
    Disconnected {
        participant: ParticipantId,
        role: PcRole,
    },
    /// A video track `subscriber` receives was paused because its bandwidth estimate
    /// cannot carry even the lowest layer (`paused`), or resumed.
    StreamState {
        subscriber: ParticipantId,
        track: TrackId,
        paused: bool,
    },
}

/// Which published tracks a participant receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscribe {
    /// Nothing, ever (a token without `canSubscribe`).
    Never,
    /// Every track published in its room, as soon as it is published.
    Auto,
    /// Only the tracks named with [`Router::subscribe`] (a client connecting with
    /// `autoSubscribe: false`, or a server-side `UpdateSubscriptions`).
    Manual,
}

/// How a participant's media is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcMode {
    /// A publisher connection (client offers) and a subscriber connection (we offer).
    Dual,
    /// One connection, client always offers; we send on the receive-only m-lines it offers.
    Single,
}

/// Static router settings.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// UDP host candidates advertised in every SDP (the UDP socket's public address(es)).
    pub candidates: Vec<SocketAddr>,
    /// Passive ICE-TCP host candidates (RFC 6544), for clients that cannot use UDP.
    pub tcp_candidates: Vec<SocketAddr>,
    /// What each established peer connection may send us ([`IngressLimit::default`] is
    /// above any real publisher); `None`: unlimited.
    pub ingress_limit: Option<IngressLimit>,
    pub congestion_control: CongestionControl,
    /// Which of the process's routers this is: the first character of every ICE ufrag it
    /// hands out says so (see [`ShardId`]).
    pub shard: ShardId,
}

/// livekit.yaml's `rtc.congestion_control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CongestionControl {
    /// Estimate each subscriber's bandwidth (TWCC) and fit its simulcast layers into it.
    pub enabled: bool,
    /// Pause a video track when not even its lowest layer fits (and say so with a stream
    /// state); otherwise the lowest layer is sent regardless. livekit-server's default is
    /// not to pause.
    pub allow_pause: bool,
}

impl Default for CongestionControl {
    fn default() -> Self {
        CongestionControl {
            enabled: true,
            allow_pause: false,
        }
    }
}

struct Pc {
    rtc: Rtc,
    timeout: Option<Instant>,
    channels: HashMap<ChannelId, String>,
    connected: bool,
    dead: bool,
    /// What str0m's periodic stream statistics said since the caller last asked.
    link: Option<LinkStats>,
    /// Per outgoing stream: packets sent and NACKs received at the last report.
    egress_seen: HashMap<(Mid, Option<Rid>), (u64, u64)>,
    /// Connections that send media: the send-side bandwidth estimate.
    bwe: Option<PcBwe>,
    /// After a client's ICE restart: the ufrag str0m picked, which its local candidates
    /// keep, and the router-tagged one that replaced it (see [`ShardId`]); our SDP says
    /// the latter everywhere.
    ufrag_alias: Option<(String, String)>,
}

/// A sending connection's bandwidth estimate and what it was last asked to probe for.
#[derive(Debug, Clone, Copy)]
struct PcBwe {
    /// Bits per second: str0m's TWCC estimate, or the client's REMB if it only sends that.
    estimate: u64,
    /// The bitrate str0m was last told to probe towards.
    desired: u64,
    /// When str0m first said it can probe this connection.
    probing_since: Option<Instant>,
    /// The loss-based limit (see [`PcBwe::on_loss_round`]), when loss imposed one.
    loss_cap: Option<u64>,
    /// Bytes sent at the last statistics round, and when.
    tx: Option<(u64, Instant)>,
    /// Bits per second sent over the last statistics round.
    tx_rate: u64,
    /// A statistics round came in and is not acted on yet; the worst loss any stream
    /// that sent something in it reported.
    round: Option<Option<f32>>,
    /// Since when a track has been paused for lack of bandwidth (or the last retry).
    starved_since: Option<Instant>,
    /// When the estimate may next be probed upwards because it holds layers back, and the
    /// wait after that one (doubling while probes find nothing more).
    probe_at: Option<Instant>,
    probe_backoff: Duration,
    /// The estimate the last such probe started from.
    probed_from: u64,
}

/// Loss above this share cuts the loss-based limit; below [`LOSS_LOW`] it grows again.
/// These are the thresholds of Google congestion control's loss-based controller
/// (draft-ietf-rmcat-gcc §6).
const LOSS_HIGH: f32 = 0.10;
const LOSS_LOW: f32 = 0.02;
/// Growth of the loss-based limit per clean statistics round (2 s).
const LOSS_CAP_GROWTH: f64 = 1.15;
/// Growth per round in which nothing was sent to measure loss on.
const LOSS_CAP_GROWTH_IDLE: f64 = 1.5;
/// The loss-based limit never goes below this.
const LOSS_CAP_FLOOR: u64 = 30_000;
/// A paused track sends nothing the estimator could learn from, and str0m does not probe a
/// connection without media: after this long the estimate is reset to what the paused
/// tracks' lowest layers need, so they resume and the link is measured again.
const STARVED_RETRY: Duration = Duration::from_secs(8);
/// str0m probes the link on its own only while the sender is application-limited (below
/// about 65 % of the estimate), and otherwise lets the estimate grow to at most 1.5 times
/// what is sent. The allocator fills up to 90 % of the estimate, so a subscriber held at a
/// low layer (a join while the estimate is still low, a quality raised by the client, a
/// link that recovered) would wait for str0m's stagnation probe, 15 s of an unchanged
/// estimate that a live estimate rarely has. So while layers are held back, the estimator
/// is restarted from its current value every so often, which makes str0m send its initial
/// probes (3 and 6 times the estimate, bounded by what is wanted) and take what they
/// measure. First after this long held back, then twice as long each time the estimate
/// did not grow by a fifth since the last probe, up to [`HELD_BACK_PROBE_MAX`].
const HELD_BACK_PROBE_FIRST: Duration = Duration::from_secs(1);
const HELD_BACK_PROBE_MAX: Duration = Duration::from_secs(32);

impl PcBwe {
    fn new() -> Self {
        PcBwe {
            estimate: INITIAL_ESTIMATE,
            desired: 0,
            probing_since: None,
            loss_cap: None,
            tx: None,
            tx_rate: 0,
            round: None,
            starved_since: None,
            probe_at: None,
            probe_backoff: HELD_BACK_PROBE_FIRST,
            probed_from: 0,
        }
    }

    /// What layers are fitted into.
    fn budget(&self) -> u64 {
        self.loss_cap
            .map_or(self.estimate, |c| c.min(self.estimate))
    }

    /// str0m's delay-based estimate reacts to queues building up, but a shallow buffer
    /// that drops instead of queueing shows up as loss only (and str0m's TWCC loss does
    /// not always see it). So loss reported by the receiver (RTCP receiver reports and
    /// NACKs) limits the budget too, as in Google congestion control: above 10 % loss the
    /// limit is cut by half the loss share, below 2 % it grows back until the delay-based
    /// estimate rules again.
    fn on_loss_round(&mut self, loss: Option<f32>) {
        match loss {
            Some(l) if l > LOSS_HIGH => {
                let l = f64::from(l.min(1.0));
                let cap = (self.budget() as f64 * (1.0 - 0.5 * l)) as u64;
                self.loss_cap = Some(cap.max(LOSS_CAP_FLOOR));
            }
            Some(l) if l >= LOSS_LOW => {}
            clean => {
                // Nothing sent at all (everything paused): no evidence either way, so try
                // again sooner.
                let growth = if clean.is_some() {
                    LOSS_CAP_GROWTH
                } else {
                    LOSS_CAP_GROWTH_IDLE
                };
                if let Some(c) = self.loss_cap {
                    let grown = (c as f64 * growth) as u64;
                    self.loss_cap = (grown < self.estimate).then_some(grown);
                }
            }
        }
    }
}

/// How a participant's connections fare: the worst packet loss and the longest
/// round-trip time any of its streams reported in an interval. Loss on what it publishes
/// is counted by us from sequence gaps; loss on what it receives comes from its RTCP
/// receiver reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkStats {
    /// Fraction lost, 0.0..=1.0.
    pub loss: f32,
    pub rtt: Option<Duration>,
}

impl LinkStats {
    fn merge(into: &mut Option<LinkStats>, loss: Option<f32>, rtt: Option<Duration>) {
        if loss.is_none() && rtt.is_none() {
            return;
        }
        let l = into.get_or_insert(LinkStats {
            loss: 0.0,
            rtt: None,
        });
        if let Some(loss) = loss {
            l.loss = l.loss.max(loss.clamp(0.0, 1.0));
        }
        l.rtt = l.rtt.max(rtt);
    }
}

/// At most this many due timeouts are handled in one [`Router::drain`]; the rest wait for
/// the IO loop's next turn, so one busy connection cannot hold the loop.
const MAX_DUE_ROUNDS: u32 = 256;

/// How often str0m reports stream statistics (loss, RTT) for connection quality.
const STATS_INTERVAL: Duration = Duration::from_secs(2);

impl Pc {
    /// `sends`: this connection carries media to the participant, so it estimates the
    /// bandwidth towards it (TWCC) and paces what it sends.
    fn new(now: Instant, config: &RouterConfig, sends: bool) -> Self {
        let sends = sends && config.congestion_control.enabled;
        let initial = Bitrate::bps(INITIAL_ESTIMATE);
        let mut rtc = Rtc::builder()
            .set_local_ice_credentials(config.shard.ice_credentials())
            .set_ice_lite(true)
            .set_stats_interval(Some(STATS_INTERVAL))
            .enable_bwe(sends.then_some(initial))
            .build(now);
        for addr in &config.candidates {
            if let Ok(c) = Candidate::host(*addr, "udp") {
                rtc.add_local_candidate(c);
            }
        }
        for addr in &config.tcp_candidates {
            let c = Candidate::builder()
                .tcp()
                .host(*addr)
                .tcptype(TcpType::Passive)
                .build();
            if let Ok(c) = c {
                rtc.add_local_candidate(c);
            }
        }
        Pc {
            rtc,
            timeout: Some(now),
            channels: HashMap::new(),
            connected: false,
            dead: false,
            link: None,
            egress_seen: HashMap::new(),
            bwe: sends.then(PcBwe::new),
            ufrag_alias: None,
        }
    }

    fn ufrag(&mut self) -> String {
        self.rtc.direct_api().local_ice_credentials().ufrag
    }

    fn channel_id(&self, label: &str) -> Option<ChannelId> {
        self.channels
            .iter()
            .find(|(_, l)| l.as_str() == label)
            .map(|(id, _)| *id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    ToOpen,
    Negotiating(Mid),
    Open(Mid),
    ToStop(Mid),
    NegotiatingStop(Mid),
}

struct OutTrack {
    track: TrackId,
    state: OutState,
    fwd: Forwarder,
    /// What the bandwidth estimate allows (video only); `None` before the first allocation.
    grant: Option<Grant>,
}

impl OutTrack {
    fn new(track: TrackId, target: Target) -> Self {
        OutTrack {
            track,
            state: OutState::ToOpen,
            fwd: Forwarder::new(target),
            grant: None,
        }
    }
}

impl OutTrack {
    fn mid(&self) -> Option<Mid> {
        match self.state {
            OutState::ToOpen => None,
            OutState::Negotiating(m)
            | OutState::Open(m)
            | OutState::ToStop(m)
            | OutState::NegotiatingStop(m) => Some(m),
        }
    }
}

struct Participant {
    room: String,
    mode: PcMode,
    subscribe: Subscribe,
    publisher: Option<Pc>,
    /// Only in [`PcMode::Dual`].
    subscriber: Option<Pc>,
    /// Single mode: the client's receive-only m-lines we may send on.
    slots: Vec<(Mid, TrackKind)>,
    /// Single mode: a NeedOffer is out and no offer came back yet.
    offer_requested: bool,
    /// Single mode: m-lines whose track was stopped and that no answer has shown as
    /// `inactive` yet. They are not reused until one has: the client only sees a track
    /// again (a new `ontrack`) if its m-line went inactive in between.
    retired: Vec<Mid>,
    pending: Option<SdpPendingOffer>,
    out: Vec<OutTrack>,
    /// Set when the subscriber connection still needs its first offer sent.
    needs_offer: bool,
}

struct Track {
    owner: ParticipantId,
    mid: Mid,
    kind: TrackKind,
    rids: Vec<Rid>,
    label: Option<TrackLabel>,
    /// Last frame seen per layer (index into `rids`).
    layer_seen: Vec<Option<Instant>>,
    last_keyframe_request: Vec<Option<Instant>>,
    /// Audio: smoothed linear level (0..1) from the RFC 6464 header extension, and when
    /// it was last updated.
    level: f32,
    level_at: Option<Instant>,
    /// Incoming bitrate per layer (one entry without simulcast).
    rates: Vec<RateMeter>,
}

impl Track {
    fn layer_of(&self, rid: Option<Rid>) -> Option<usize> {
        let rid = rid?;
        self.rids.iter().position(|r| *r == rid)
    }

    /// The highest active layer not above `cap`, else the lowest active one.
    fn best_layer(&self, now: Instant, cap: usize) -> Option<usize> {
        let active = |i: &usize| {
            self.layer_seen[*i].is_some_and(|t| now.saturating_duration_since(t) < LAYER_ACTIVE)
        };
        (0..self.rids.len())
            .filter(active)
            .rfind(|i| *i <= cap)
            .or_else(|| (0..self.rids.len()).find(active))
    }

    /// Each layer's measured bitrate, `None` for layers not sent right now.
    fn layer_rates(&self, now: Instant, into: &mut Vec<Option<u64>>) {
        into.clear();
        if self.rids.is_empty() {
            into.push(self.rates[0].rate());
            return;
        }
        // A layer not measured yet (a new track) is offered only if it is the lowest one
        // sent: letting everyone take every layer until the first measurement would burst
        // far past the estimates and fill the pacers' queues.
        let mut lowest = true;
        into.extend(self.rates.iter().zip(&self.layer_seen).map(|(r, seen)| {
            seen.filter(|t| now.saturating_duration_since(*t) < LAYER_ACTIVE)?;
            let rate = r.rate().or(lowest.then_some(0));
            lowest = false;
            rate
        }));
    }
}

/// RTCP feedback counted since the router started (for metrics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Feedback {
    /// Packets subscribers asked for again (NACK).
    pub nacks_received: u64,
    /// Keyframe requests (PLI/FIR) from subscribers.
    pub plis_received: u64,
    /// Keyframe requests sent to publishers (after throttling).
    pub plis_sent: u64,
}

/// Bandwidth estimation across all subscribers right now (for metrics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BandwidthSummary {
    /// Connections with an estimate, and the sum of their budgets in bits per second.
    pub estimated: u64,
    pub total_bps: u64,
    /// Video copies paused because not even their lowest layer fits.
    pub paused_tracks: u64,
}

/// All rooms of one SFU instance. See the crate docs.
pub struct Router {
    config: RouterConfig,
    next_id: u64,
    participants: HashMap<ParticipantId, Participant>,
    tracks: HashMap<TrackId, Track>,
    /// Fast path for media: remote address → connection that last accepted it.
    by_addr: HashMap<SocketAddr, (ParticipantId, PcRole)>,
    /// Our local ICE ufrag → connection, for STUN from addresses not seen yet.
    by_ufrag: HashMap<String, (ParticipantId, PcRole)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    now: Instant,
    feedback: Feedback,
    /// When layer rates were last measured, and when they are next.
    last_tick: Instant,
    next_tick: Instant,
    ingress: Ingress,
    /// Scratch lists reused by every call, so timers and forwarding do not allocate:
    /// connections with a due timer, frames a publisher delivered, a frame's subscribers.
    due: Vec<(ParticipantId, PcRole)>,
    media: Vec<MediaData>,
    fan_out: Vec<ParticipantId>,
}

impl Router {
    pub fn new(config: RouterConfig, now: Instant) -> Self {
        Router {
            ingress: Ingress::new(config.ingress_limit),
            config,
            next_id: 1,
            participants: HashMap::new(),
            tracks: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            now,
            feedback: Feedback::default(),
            last_tick: now,
            next_tick: now + ALLOCATION_TICK,
            due: Vec::new(),
            media: Vec::new(),
            fan_out: Vec::new(),
        }
    }

    fn next(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Adds a participant to `room` and prepares its subscriber connection (with the
    /// `_reliable`/`_lossy` data channels and every track already published in the room).
    /// Its first offer comes out as [`Event::SubscriberOffer`].
    /// What it receives is up to `subscribe`.
    pub fn add_participant(
        &mut self,
        room: &str,
        mode: PcMode,
        subscribe: Subscribe,
        now: Instant,
    ) -> ParticipantId {
        self.now = now;
        let id = ParticipantId(self.next());
        let mut sub = (mode == PcMode::Dual).then(|| Pc::new(now, &self.config, true));
        if let Some(pc) = sub.as_mut() {
            self.by_ufrag.insert(pc.ufrag(), (id, PcRole::Subscriber));
        }
        let out = self
            .tracks
            .iter()
            .filter(|_| subscribe == Subscribe::Auto)
            .filter(|(_, t)| {
                t.label.is_some()
                    && self
                        .participants
                        .get(&t.owner)
                        .is_some_and(|p| p.room == room)
            })
            .map(|(id, t)| OutTrack::new(*id, default_target(t)))
            .collect();
        self.participants.insert(
            id,
            Participant {
                room: room.to_owned(),
                mode,
                subscribe,
                publisher: None,
                subscriber: sub,
                slots: Vec::new(),
                offer_requested: false,
                retired: Vec::new(),
                pending: None,
                out,
                needs_offer: true,
            },
        );
        self.negotiate(id);
        id
    }

    /// Drops a participant, its connections and its published tracks (subscribers get a
    /// renegotiation that stops them).
    pub fn remove_participant(&mut self, id: ParticipantId) {
        let Some(mut p) = self.participants.remove(&id) else {
            return;
        };
        if let Some(pc) = p.subscriber.as_mut() {
            pc.rtc.disconnect();
        }
        if let Some(pc) = p.publisher.as_mut() {
            pc.rtc.disconnect();
        }
        self.by_addr.retain(|_, (pid, _)| *pid != id);
        self.by_ufrag.retain(|_, (pid, _)| *pid != id);
        self.ingress.forget(id);
        let gone: Vec<TrackId> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.owner == id)
            .map(|(k, _)| *k)
            .collect();
        self.drop_tracks(&gone);
    }

    /// Forgets published tracks and renegotiates them away from every subscriber.
    fn drop_tracks(&mut self, gone: &[TrackId]) {
        for t in gone {
            self.tracks.remove(t);
        }
        let others: Vec<ParticipantId> = self.participants.keys().copied().collect();
        for other in others {
            if let Some(o) = self.participants.get_mut(&other) {
                let mut changed = false;
                for ot in o.out.iter_mut().filter(|ot| gone.contains(&ot.track)) {
                    ot.state = match ot.state {
                        OutState::Open(m) | OutState::Negotiating(m) => OutState::ToStop(m),
                        s => s,
                    };
                    changed = true;
                }
                o.out
                    .retain(|ot| ot.state != OutState::ToOpen || !gone.contains(&ot.track));
                if changed {
                    self.negotiate(other);
                }
            }
        }
    }

    /// The room a participant is in.
    pub fn room_of(&self, id: ParticipantId) -> Option<&str> {
        self.participants.get(&id).map(|p| p.room.as_str())
    }

    /// Applies the client's offer for its publisher connection and returns our answer.
    pub fn handle_publisher_offer(
        &mut self,
        id: ParticipantId,
        offer: PublisherOffer,
        now: Instant,
    ) -> Result<String, SfuError> {
        self.now = now;
        let PublisherOffer(offer) = offer;
        let config = &self.config;
        let p = self
            .participants
            .get_mut(&id)
            .ok_or(SfuError::NoParticipant)?;
        let sends = p.mode == PcMode::Single;
        let pc = p
            .publisher
            .get_or_insert_with(|| Pc::new(now, config, sends));
        let answer = pc.rtc.sdp_api().accept_offer(offer)?;
        if let Some(alias) = config.shard.retag(&mut pc.rtc) {
            pc.ufrag_alias = Some(alias);
        }
        let alias = pc.ufrag_alias.clone();
        // New connection, or an ICE restart that changed our credentials.
        self.by_ufrag.insert(pc.ufrag(), (id, PcRole::Publisher));
        p.offer_requested = false;
        self.drain(id, PcRole::Publisher);
        let mut sdp = answer.to_sdp_string();
        if let Some((picked, ours)) = alias {
            // `a=ice-ufrag` and the candidates' `ufrag` extension; 16 random characters
            // occur nowhere else.
            sdp = sdp.replace(&picked, &ours);
        }
        if self
            .participants
            .get(&id)
            .is_some_and(|p| p.mode == PcMode::Single)
        {
            self.assign_slots(id, false);
            sdp = self.rewrite_single_answer(id, &sdp);
            // This answer shows the retired m-lines inactive: they are free again, and
            // tracks that waited for one get it in the next round.
            if let Some(p) = self.participants.get_mut(&id)
                && !p.retired.is_empty()
            {
                p.retired.clear();
                self.assign_slots(id, true);
            }
        }
        Ok(sdp)
    }

    /// Applies the client's answer to our last subscriber offer.
    pub fn handle_subscriber_answer(
        &mut self,
        id: ParticipantId,
        answer: SubscriberAnswer,
        now: Instant,
    ) -> Result<(), SfuError> {
        self.now = now;
        let SubscriberAnswer(answer) = answer;
        let p = self
            .participants
            .get_mut(&id)
            .ok_or(SfuError::NoParticipant)?;
        let Some(sub) = p.subscriber.as_mut() else {
            return Err(SfuError::NoPendingOffer);
        };
        let pending = p.pending.take().ok_or(SfuError::NoPendingOffer)?;
        sub.rtc.sdp_api().accept_answer(pending, answer)?;
        for ot in &mut p.out {
            if let OutState::Negotiating(m) = ot.state {
                ot.state = OutState::Open(m);
            }
        }
        p.out
            .retain(|ot| !matches!(ot.state, OutState::NegotiatingStop(_)));
        self.drain(id, PcRole::Subscriber);
        // Changes that queued up while this offer was out.
        self.negotiate(id);
        Ok(())
    }

    /// A trickled remote candidate (`candidate:...` SDP attribute value).
    pub fn add_remote_candidate(
        &mut self,
        id: ParticipantId,
        role: PcRole,
        candidate: &str,
    ) -> Result<(), SfuError> {
        let c = Candidate::from_sdp_string(candidate)
            .map_err(|e| SfuError::Candidate(e.to_string()))?;
        let p = self
            .participants
            .get_mut(&id)
            .ok_or(SfuError::NoParticipant)?;
        if let Some(pc) = p.pc_mut(role) {
            pc.rtc.add_remote_candidate(c);
        }
        self.drain(id, role);
        Ok(())
    }

    /// Names an opened track and starts forwarding it to everyone else in the room.
    pub fn publish(&mut self, track: TrackId, label: TrackLabel) -> Result<(), SfuError> {
        let t = self.tracks.get_mut(&track).ok_or(SfuError::NoTrack)?;
        if t.label.is_some() {
            t.label = Some(label);
            return Ok(());
        }
        t.label = Some(label);
        let owner = t.owner;
        let target = default_target(t);
        let room = self
            .participants
            .get(&owner)
            .map(|p| p.room.clone())
            .ok_or(SfuError::NoParticipant)?;
        let subs: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|(id, p)| **id != owner && p.room == room && p.subscribe == Subscribe::Auto)
            .map(|(id, _)| *id)
            .collect();
        for s in subs {
            if let Some(p) = self.participants.get_mut(&s) {
                p.out.push(OutTrack::new(track, target));
            }
            self.negotiate(s);
        }
        Ok(())
    }

    /// Starts forwarding a published track to `subscriber` (a new m-line on its next
    /// negotiation). Subscribing twice is a no-op; a participant whose token forbids
    /// subscribing gets [`SfuError::NotAllowed`].
    pub fn subscribe(&mut self, subscriber: ParticipantId, track: TrackId) -> Result<(), SfuError> {
        let t = self.tracks.get(&track).ok_or(SfuError::NoTrack)?;
        let p = self
            .participants
            .get(&subscriber)
            .ok_or(SfuError::NoParticipant)?;
        let same_room = self
            .participants
            .get(&t.owner)
            .is_some_and(|o| o.room == p.room);
        if t.label.is_none() || t.owner == subscriber || !same_room {
            return Err(SfuError::NoTrack);
        }
        if p.subscribe == Subscribe::Never {
            return Err(SfuError::NotAllowed);
        }
        let target = default_target(t);
        let p = self
            .participants
            .get_mut(&subscriber)
            .expect("looked up above");
        let live = p
            .out
            .iter_mut()
            .find(|o| o.track == track && !matches!(o.state, OutState::NegotiatingStop(_)));
        match live {
            // Still being stopped: keep the m-line after all.
            Some(o) if matches!(o.state, OutState::ToStop(_)) => {
                if let OutState::ToStop(m) = o.state {
                    o.state = OutState::Open(m);
                }
            }
            Some(_) => return Ok(()),
            None => p.out.push(OutTrack::new(track, target)),
        }
        self.negotiate(subscriber);
        Ok(())
    }

    /// Stops forwarding a track to `subscriber`; its m-line is renegotiated away.
    /// Unsubscribing from a track it does not receive is a no-op.
    pub fn unsubscribe(
        &mut self,
        subscriber: ParticipantId,
        track: TrackId,
    ) -> Result<(), SfuError> {
        let p = self
            .participants
            .get_mut(&subscriber)
            .ok_or(SfuError::NoParticipant)?;
        let mut changed = false;
        p.out
            .retain(|o| !(o.track == track && o.state == OutState::ToOpen));
        for o in p.out.iter_mut().filter(|o| o.track == track) {
            if let OutState::Open(m) | OutState::Negotiating(m) = o.state {
                o.state = OutState::ToStop(m);
                changed = true;
            }
        }
        if changed {
            self.negotiate(subscriber);
        }
        Ok(())
    }

    /// The worst loss and RTT any stream of the participant's connections reported since
    /// the last call (`None`: no stream reported, e.g. no media flows yet).
    pub fn take_link_stats(&mut self, id: ParticipantId) -> Option<LinkStats> {
        let p = self.participants.get_mut(&id)?;
        let mut out = None;
        for pc in [p.publisher.as_mut(), p.subscriber.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(l) = pc.link.take() {
                LinkStats::merge(&mut out, Some(l.loss), l.rtt);
            }
        }
        out
    }

    /// Whether `subscriber` receives (or is about to receive) `track`.
    pub fn is_subscribed(&self, subscriber: ParticipantId, track: TrackId) -> bool {
        self.participants.get(&subscriber).is_some_and(|p| {
            p.out.iter().any(|o| {
                o.track == track
                    && matches!(
                        o.state,
                        OutState::ToOpen | OutState::Negotiating(_) | OutState::Open(_)
                    )
            })
        })
    }

    /// Chooses what `subscriber` receives of `track`.
    pub fn set_layer(
        &mut self,
        subscriber: ParticipantId,
        track: TrackId,
        choice: LayerChoice,
    ) -> Result<(), SfuError> {
        let p = self
            .participants
            .get_mut(&subscriber)
            .ok_or(SfuError::NoParticipant)?;
        let ot = p
            .out
            .iter_mut()
            .find(|o| o.track == track)
            .ok_or(SfuError::NoTrack)?;
        ot.fwd.target = match choice {
            LayerChoice::Paused => Target::Paused,
            LayerChoice::UpTo(n) => Target::Layer(n),
        };
        Ok(())
    }

    /// Sends a data-channel message to a participant's subscriber connection. Returns false
    /// when the channel is not open (yet) or its buffer is full.
    pub fn send_data(&mut self, to: ParticipantId, reliable: bool, data: &[u8]) -> bool {
        let Some(p) = self.participants.get_mut(&to) else {
            return false;
        };
        let label = if reliable {
            RELIABLE_LABEL
        } else {
            LOSSY_LABEL
        };
        let Some(pc) = p.pc_mut(PcRole::Subscriber) else {
            return false;
        };
        let Some(cid) = pc.channel_id(label) else {
            return false;
        };
        let ok = pc
            .rtc
            .channel(cid)
            .and_then(|mut ch| ch.write(true, data).ok())
            .unwrap_or(false);
        self.drain(to, PcRole::Subscriber);
        ok
    }

    /// Feeds one datagram received on the shared socket (or one ICE-TCP frame) sent by
    /// `source` to our `destination`. Returns false if no connection claimed it; one over
    /// its connection's ingress limit is claimed and dropped ([`Router::take_ingress_dropped`]).
    ///
    /// Demultiplexing: the 5-tuple of a known peer first; for STUN from a new address, the
    /// local ICE ufrag in its USERNAME; a scan of all connections only as the last resort.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
    ) -> bool {
        self.now = now;
        let Ok(contents) = bytes.try_into() else {
            return false;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto,
                source,
                destination,
                contents,
            },
        );
        let accepts = |this: &Self, (id, role): (ParticipantId, PcRole)| {
            this.participants
                .get(&id)
                .and_then(|p| p.pc(role))
                .is_some_and(|pc| pc.rtc.accepts(&input))
        };
        let mut owner = self
            .by_addr
            .get(&source)
            .copied()
            .filter(|o| accepts(self, *o));
        if owner.is_none() {
            owner = local_ufrag(bytes)
                .and_then(|u| self.by_ufrag.get(u).copied())
                .filter(|o| accepts(self, *o));
        }
        if owner.is_none() {
            owner = self.participants.iter().find_map(|(id, p)| {
                if p.subscriber
                    .as_ref()
                    .is_some_and(|pc| pc.rtc.accepts(&input))
                {
                    return Some((*id, PcRole::Subscriber));
                }
                p.publisher
                    .as_ref()
                    .filter(|pc| pc.rtc.accepts(&input))
                    .map(|_| (*id, PcRole::Publisher))
            });
        }
        let Some((id, role)) = owner else {
            return false;
        };
        // Over its ingress limit: claimed, and dropped before str0m decrypts it. Until the
        // connection is up (STUN, DTLS) nothing is limited.
        let established = self
            .participants
            .get(&id)
            .and_then(|p| p.pc(role))
            .is_some_and(|pc| pc.connected);
        if established && !self.ingress.admit(id, role, now, bytes.len()) {
            return true;
        }
        self.by_addr.insert(source, (id, role));
        if let Some(pc) = self.participants.get_mut(&id).and_then(|p| p.pc_mut(role))
            && let Err(e) = pc.rtc.handle_input(input)
        {
            tracing::debug!(%id, ?role, "input refused: {e}");
        }
        self.drain(id, role);
        true
    }

    /// Datagrams the ingress limit dropped since the last call (they were claimed: the
    /// calls that took them returned true).
    pub fn take_ingress_dropped(&mut self) -> u64 {
        self.ingress.take_dropped()
    }

    /// Drives every connection's timers up to `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        let mut due = std::mem::take(&mut self.due);
        let is_due = |pc: &Option<Pc>| {
            pc.as_ref()
                .is_some_and(|pc| pc.timeout.is_some_and(|t| t <= now))
        };
        for (id, p) in &self.participants {
            if is_due(&p.subscriber) {
                due.push((*id, PcRole::Subscriber));
            }
            if is_due(&p.publisher) {
                due.push((*id, PcRole::Publisher));
            }
        }
        for &(id, role) in &due {
            if let Some(pc) = self.participants.get_mut(&id).and_then(|p| p.pc_mut(role))
                && let Err(e) = pc.rtc.handle_input(Input::Timeout(now))
            {
                tracing::debug!(%id, ?role, "timeout handling failed: {e}");
            }
            self.drain(id, role);
        }
        due.clear();
        self.due = due;
        if now >= self.next_tick {
            self.reallocate(now);
        }
    }

    /// The earliest instant at which [`Router::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let tick = (!self.tracks.is_empty()).then_some(self.next_tick);
        self.participants
            .values()
            .flat_map(|p| {
                [
                    p.subscriber.as_ref().and_then(|pc| pc.timeout),
                    p.publisher.as_ref().and_then(|pc| pc.timeout),
                ]
            })
            .flatten()
            .chain(tick)
            .min()
    }

    /// The current bandwidth estimate towards a participant, in bits per second.
    pub fn bandwidth_estimate(&self, id: ParticipantId) -> Option<u64> {
        let p = self.participants.get(&id)?;
        p.pc(PcRole::Subscriber)?.bwe.map(|b| b.budget())
    }

    /// RTCP feedback counted so far.
    pub fn feedback(&self) -> Feedback {
        self.feedback
    }

    /// Estimates and pauses across every subscriber connection.
    pub fn bandwidth_summary(&self) -> BandwidthSummary {
        let mut s = BandwidthSummary::default();
        for p in self.participants.values() {
            if let Some(b) = p.pc(PcRole::Subscriber).and_then(|pc| pc.bwe) {
                s.estimated += 1;
                s.total_bps += b.budget();
            }
            s.paused_tracks += p
                .out
                .iter()
                .filter(|o| o.grant == Some(Grant::Starved))
                .count() as u64;
        }
        s
    }

    /// Closes a measurement window on every track, then fits each subscriber's video
    /// layers into its bandwidth estimate (see [`crate::allocate`]).
    fn reallocate(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last_tick);
        self.last_tick = now;
        self.next_tick = now + ALLOCATION_TICK;
        for t in self.tracks.values_mut() {
            for r in &mut t.rates {
                r.roll(elapsed);
            }
        }
        let ids: Vec<ParticipantId> = self.participants.keys().copied().collect();
        let mut rates: Vec<Vec<Option<u64>>> = Vec::new();
        let mut grants = Vec::new();
        let mut video = Vec::new();
        for id in ids {
            let Some(p) = self.participants.get_mut(&id) else {
                continue;
            };
            // Worked on as a copy and written back once at the end.
            let Some(mut bwe) = p.pc(PcRole::Subscriber).and_then(|pc| pc.bwe) else {
                continue;
            };
            if let Some(loss) = bwe.round.take() {
                bwe.on_loss_round(loss);
            }
            let mut reset = None;
            // Audio first, at what it measures; video tracks in subscription order.
            let mut audio = 0u64;
            video.clear();
            let mut used = 0;
            for (i, ot) in p.out.iter().enumerate() {
                if !matches!(ot.state, OutState::Open(_) | OutState::Negotiating(_)) {
                    continue;
                }
                let Some(t) = self.tracks.get(&ot.track) else {
                    continue;
                };
                if t.kind == TrackKind::Audio {
                    audio += t.rates[0].rate().unwrap_or(0);
                    continue;
                }
                if rates.len() <= used {
                    rates.push(Vec::new());
                }
                t.layer_rates(now, &mut rates[used]);
                let cap = match ot.fwd.target {
                    Target::Paused => None,
                    Target::Layer(n) => Some(n),
                };
                video.push((i, cap, ot.grant));
                used += 1;
            }
            let demands: Vec<Demand<'_>> = video
                .iter()
                .zip(&rates)
                .map(|((_, cap, held), layers)| Demand {
                    cap: *cap,
                    layers,
                    held: *held,
                })
                .collect();
            allocate::allocate(bwe.budget(), audio, &demands, &mut grants);
            if !self.config.congestion_control.allow_pause {
                allocate::never_starve(&demands, &mut grants);
            }
            let starving = grants.contains(&Grant::Starved);
            let retry = starving
                && bwe
                    .starved_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= STARVED_RETRY);
            if retry {
                let need =
                    (allocate::lowest(audio, &demands) as f64 / allocate::HEADROOM * 1.1) as u64;
                let fresh = need.max(bwe.estimate);
                tracing::debug!(%id, estimate = bwe.estimate, fresh, "retrying paused tracks");
                bwe.estimate = fresh;
                bwe.loss_cap = None;
                reset = Some(fresh);
                allocate::allocate(fresh, audio, &demands, &mut grants);
            }
            // The retry clock restarts at every retry.
            bwe.starved_since = match starving {
                false => None,
                true if retry => Some(now),
                true => bwe.starved_since.or(Some(now)),
            };
            // Held back by the estimate (and not by loss, which probing would only add
            // to): probe now and then, less often while probing finds nothing more.
            if !starving && bwe.loss_cap.is_none() && allocate::held_back(&demands, &grants) {
                match bwe.probe_at {
                    None => bwe.probe_at = Some(now + bwe.probe_backoff),
                    Some(at) if now >= at => {
                        bwe.probe_backoff = if bwe.estimate > bwe.probed_from / 5 * 6 {
                            HELD_BACK_PROBE_FIRST
                        } else {
                            (bwe.probe_backoff * 2).min(HELD_BACK_PROBE_MAX)
                        };
                        tracing::debug!(%id, estimate = bwe.estimate, next = ?bwe.probe_backoff, "probing for held-back layers");
                        reset = reset.or(Some(bwe.estimate));
                        bwe.probed_from = bwe.estimate;
                        bwe.probe_at = Some(now + bwe.probe_backoff);
                    }
                    Some(_) => {}
                }
            } else {
                bwe.probe_at = None;
                bwe.probe_backoff = HELD_BACK_PROBE_FIRST;
            }
            let mut desired = (allocate::wanted(audio, &demands) as f64 * PROBE_HEADROOM) as u64;
            let starting = bwe
                .probing_since
                .is_none_or(|t| now.saturating_duration_since(t) < STARTUP_PROBING);
            if starting {
                desired = desired.max(INITIAL_ESTIMATE);
            }
            drop(demands);
            for ((i, ..), grant) in video.iter().zip(&grants) {
                let ot = &mut p.out[*i];
                let was_starved = ot.grant == Some(Grant::Starved);
                let starved = *grant == Grant::Starved;
                if starved && !was_starved {
                    ot.fwd.interrupt();
                }
                if starved != was_starved {
                    tracing::debug!(%id, track = %ot.track, starved, estimate = bwe.estimate, loss_cap = ?bwe.loss_cap, "stream state");
                    self.events.push_back(Event::StreamState {
                        subscriber: id,
                        track: ot.track,
                        paused: starved,
                    });
                }
                ot.grant = Some(*grant);
            }
            // Probing costs padding: only move the target when it changed noticeably.
            let probe = desired.abs_diff(bwe.desired) > bwe.desired / 10;
            if probe {
                bwe.desired = desired;
            }
            if let Some(pc) = p.pc_mut(PcRole::Subscriber) {
                if let Some(fresh) = reset {
                    pc.rtc.bwe().reset(Bitrate::bps(fresh));
                }
                if probe {
                    // No minimum: padding beyond str0m's own keep-alive target would spend
                    // the subscriber's bandwidth on nothing; probing finds the headroom.
                    pc.rtc
                        .bwe()
                        .set_bitrate(Bitrate::ZERO, Bitrate::bps(desired));
                }
                pc.bwe = Some(bwe);
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Builds and emits a subscriber offer if the subscriber's tracks changed and no offer is
    /// outstanding.
    fn negotiate(&mut self, id: ParticipantId) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        if p.mode == PcMode::Single {
            self.assign_slots(id, true);
            return;
        }
        if p.pending.is_some() {
            return;
        }
        let tracks = &self.tracks;
        let Some(sub) = p.subscriber.as_mut() else {
            return;
        };
        let mut api = sub.rtc.sdp_api();
        if p.needs_offer {
            // The first offer carries the two data channels the client adopts.
            api.add_channel_with_config(ChannelConfig {
                label: RELIABLE_LABEL.into(),
                ordered: true,
                reliability: Reliability::Reliable,
                ..Default::default()
            });
            api.add_channel_with_config(ChannelConfig {
                label: LOSSY_LABEL.into(),
                ordered: false,
                reliability: Reliability::MaxRetransmits { retransmits: 0 },
                ..Default::default()
            });
            p.needs_offer = false;
        }
        for ot in &mut p.out {
            match ot.state {
                OutState::ToOpen => {
                    let Some(t) = tracks.get(&ot.track) else {
                        continue;
                    };
                    let Some(label) = &t.label else { continue };
                    let kind = match t.kind {
                        TrackKind::Audio => MediaKind::Audio,
                        TrackKind::Video => MediaKind::Video,
                    };
                    let mid = api.add_media(
                        kind,
                        Direction::SendOnly,
                        Some(label.stream_id.clone()),
                        Some(label.track_id.clone()),
                        None,
                    );
                    ot.state = OutState::Negotiating(mid);
                }
                OutState::ToStop(mid) => {
                    api.stop_media(mid);
                    ot.state = OutState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        if !api.has_changes() {
            return;
        }
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        p.pending = Some(pending);
        self.events.push_back(Event::SubscriberOffer {
            participant: id,
            sdp: offer.to_sdp_string(),
        });
        self.drain(id, PcRole::Subscriber);
    }

    /// Runs `poll_output` on one connection until it yields a timeout in the future, acting
    /// on its events.
    ///
    /// A timeout that is already due is handled here and draining goes on: str0m's pacer
    /// hands out one packet per `handle_timeout` (it packetizes written frames on a timeout
    /// too), so stopping at a due timeout would let each subscriber send one packet per turn
    /// of the IO loop. The queue then builds up whenever a subscriber receives more packets
    /// than the loop turns, which is latency, not bandwidth, and every packet costs a turn.
    fn drain(&mut self, id: ParticipantId, role: PcRole) {
        let mut due_rounds = 0;
        let mut media = std::mem::take(&mut self.media);
        let mut keyframe_requests = Vec::new();
        let mut new_slots = Vec::new();
        let mut stopped_mids = Vec::new();
        loop {
            let Some(p) = self.participants.get_mut(&id) else {
                return;
            };
            let mode = p.mode;
            let Some(pc) = p.pc_mut(role) else { return };
            if pc.dead {
                pc.timeout = None;
                break;
            }
            let out = match pc.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(%id, ?role, "connection failed: {e}");
                    pc.dead = true;
                    pc.rtc.disconnect();
                    self.events.push_back(Event::Disconnected {
                        participant: id,
                        role,
                    });
                    continue;
                }
            };
            match out {
                Output::Timeout(t) => {
                    if t <= self.now && due_rounds < MAX_DUE_ROUNDS {
                        due_rounds += 1;
                        if let Err(e) = pc.rtc.handle_input(Input::Timeout(self.now)) {
                            tracing::debug!(%id, ?role, "timeout handling failed: {e}");
                        }
                        continue;
                    }
                    pc.timeout = Some(t);
                    break;
                }
                Output::Transmit(t) => self.transmits.push_back(t),
                Output::Event(ev) => match ev {
                    RtcEvent::Connected => {
                        pc.connected = true;
                        self.events.push_back(Event::Connected {
                            participant: id,
                            role,
                        });
                    }
                    // ICE may recover (or be restarted); only report it.
                    RtcEvent::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        self.events.push_back(Event::Disconnected {
                            participant: id,
                            role,
                        });
                    }
                    RtcEvent::Closed if !pc.dead => {
                        pc.dead = true;
                        self.events.push_back(Event::Disconnected {
                            participant: id,
                            role,
                        });
                    }
                    RtcEvent::MediaAdded(m) if role == PcRole::Publisher => {
                        if m.direction == Direction::SendOnly && mode == PcMode::Single {
                            let kind = match m.kind {
                                MediaKind::Audio => TrackKind::Audio,
                                MediaKind::Video => TrackKind::Video,
                            };
                            new_slots.push((m.mid, kind));
                        } else if m.direction == Direction::RecvOnly
                            || m.direction == Direction::SendRecv
                        {
                            let rids: Vec<Rid> = m
                                .simulcast
                                .as_ref()
                                .map(|s| s.recv.iter().map(|l| l.rid).collect())
                                .unwrap_or_default();
                            let kind = match m.kind {
                                MediaKind::Audio => TrackKind::Audio,
                                MediaKind::Video => TrackKind::Video,
                            };
                            let tid = TrackId(self.next_id);
                            self.next_id += 1;
                            let n = rids.len();
                            self.events.push_back(Event::TrackOpened {
                                participant: id,
                                track: tid,
                                mid: m.mid.to_string(),
                                kind,
                                rids: rids.iter().map(|r| r.to_string()).collect(),
                            });
                            self.tracks.insert(
                                tid,
                                Track {
                                    owner: id,
                                    mid: m.mid,
                                    kind,
                                    rids,
                                    label: None,
                                    layer_seen: vec![None; n],
                                    last_keyframe_request: vec![None; n.max(1)],
                                    level: 0.0,
                                    level_at: None,
                                    rates: vec![RateMeter::default(); n.max(1)],
                                },
                            );
                        }
                    }
                    RtcEvent::MediaData(d) if role == PcRole::Publisher => media.push(d),
                    RtcEvent::MediaChanged(m)
                        if role == PcRole::Publisher
                            && !matches!(
                                m.direction,
                                Direction::RecvOnly | Direction::SendRecv
                            ) =>
                    {
                        stopped_mids.push(m.mid)
                    }
                    RtcEvent::KeyframeRequest(k)
                        if role == PcRole::Subscriber || mode == PcMode::Single =>
                    {
                        self.feedback.plis_received += 1;
                        keyframe_requests.push(k.mid)
                    }
                    RtcEvent::EgressBitrateEstimate(kind) => {
                        if let (
                            BweKind::Twcc {
                                can_probe: true, ..
                            },
                            Some(bwe),
                        ) = (&kind, pc.bwe.as_mut())
                        {
                            bwe.probing_since.get_or_insert(self.now);
                        }
                        let bps = match kind {
                            BweKind::Twcc { estimate, .. } => Some(estimate.as_u64()),
                            // REMB comes only from clients that do not do TWCC.
                            BweKind::Remb { estimate, .. } => Some(estimate.as_u64()),
                            _ => None,
                        };
                        if let (Some(bwe), Some(bps)) = (pc.bwe.as_mut(), bps) {
                            bwe.estimate = bps;
                        }
                    }
                    RtcEvent::PeerStats(st) => {
                        if let Some(b) = pc.bwe.as_mut() {
                            if let Some((bytes, at)) = b.tx {
                                let secs = st.timestamp.saturating_duration_since(at).as_secs_f64();
                                if secs > 0.0 {
                                    b.tx_rate = (st.bytes_tx.saturating_sub(bytes) as f64 * 8.0
                                        / secs)
                                        as u64;
                                }
                            }
                            b.tx = Some((st.bytes_tx, st.timestamp));
                            b.round = Some(None);
                        }
                    }
                    RtcEvent::MediaIngressStats(st) => {
                        LinkStats::merge(&mut pc.link, st.loss, st.rtt);
                    }
                    RtcEvent::MediaEgressStats(st) => {
                        // Receiver reports count what is still missing after NACK repair;
                        // the share of packets the subscriber asked for again is what
                        // its link actually lost.
                        let (packets, nacks) = pc
                            .egress_seen
                            .insert((st.mid, st.rid), (st.packets, st.nacks))
                            .unwrap_or((0, 0));
                        let sent = st.packets.saturating_sub(packets);
                        let asked = st.nacks.saturating_sub(nacks);
                        self.feedback.nacks_received += asked;
                        let nack_loss = (sent > 0).then(|| asked as f32 / sent as f32);
                        let loss = match (st.loss, nack_loss) {
                            (Some(a), Some(b)) => Some(a.max(b)),
                            (a, b) => a.or(b),
                        };
                        // A stream that sent nothing this round (paused) says nothing
                        // about the link, whatever its last receiver report said.
                        if let Some(Some(b)) = pc.bwe.as_mut().map(|b| b.round.as_mut())
                            && sent > 0
                            && let Some(l) = loss
                        {
                            *b = Some(b.map_or(l, |w| w.max(l)));
                        }
                        LinkStats::merge(&mut pc.link, loss, st.rtt);
                    }
                    RtcEvent::ChannelOpen(cid, label) => {
                        pc.channels.insert(cid, label);
                    }
                    RtcEvent::ChannelClose(cid) => {
                        pc.channels.remove(&cid);
                    }
                    RtcEvent::ChannelData(d) => {
                        let reliable = pc
                            .channels
                            .get(&d.id)
                            .is_none_or(|l| l.as_str() != LOSSY_LABEL);
                        self.events.push_back(Event::Data {
                            from: id,
                            reliable,
                            data: d.data,
                        });
                    }
                    _ => {}
                },
            }
        }
        if !new_slots.is_empty()
            && let Some(p) = self.participants.get_mut(&id)
        {
            p.slots.extend(new_slots);
        }
        let stopped: Vec<TrackId> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.owner == id && stopped_mids.contains(&t.mid))
            .map(|(k, _)| *k)
            .collect();
        if !stopped.is_empty() {
            for track in &stopped {
                self.events.push_back(Event::TrackClosed {
                    participant: id,
                    track: *track,
                });
            }
            self.drop_tracks(&stopped);
        }
        for d in media.drain(..) {
            self.forward(id, d);
        }
        self.media = media;
        for mid in keyframe_requests {
            self.subscriber_wants_keyframe(id, mid);
        }
    }

    /// Single mode: binds waiting outgoing tracks to free receive-only m-lines and drops
    /// stopped ones. With `request`, asks the client for an offer if anything changed or
    /// more m-lines are needed (inside an offer/answer exchange the answer carries it).
    fn assign_slots(&mut self, id: ParticipantId, request: bool) {
        let tracks = &self.tracks;
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        let mut changed = false;
        let before = p.out.len();
        let stopped = p.out.iter().filter_map(|o| match o.state {
            OutState::ToStop(m) | OutState::NegotiatingStop(m) => Some(m),
            _ => None,
        });
        p.retired.extend(stopped);
        p.out
            .retain(|o| !matches!(o.state, OutState::ToStop(_) | OutState::NegotiatingStop(_)));
        changed |= p.out.len() != before;
        let (mut need_audio, mut need_video) = (0u32, 0u32);
        for i in 0..p.out.len() {
            if p.out[i].state != OutState::ToOpen {
                continue;
            }
            let Some(t) = tracks.get(&p.out[i].track).filter(|t| t.label.is_some()) else {
                continue;
            };
            let kind = t.kind;
            let used: Vec<Mid> = p
                .out
                .iter()
                .filter_map(|o| o.mid())
                .chain(p.retired.iter().copied())
                .collect();
            match p
                .slots
                .iter()
                .find(|(m, k)| *k == kind && !used.contains(m))
            {
                Some((mid, _)) => {
                    p.out[i].state = OutState::Open(*mid);
                    changed = true;
                }
                None => match kind {
                    TrackKind::Audio => need_audio += 1,
                    TrackKind::Video => need_video += 1,
                },
            }
        }
        if request && (changed || need_audio > 0 || need_video > 0) && !p.offer_requested {
            p.offer_requested = true;
            self.events.push_back(Event::NeedOffer {
                participant: id,
                audio: need_audio,
                video: need_video,
            });
        }
    }

    /// Single mode: makes the answer tell the truth about what we send. str0m answers every
    /// receive-only m-line as send-only with a random msid; the client must instead see
    /// `inactive` on free m-lines and the publisher's stream/track ids on assigned ones
    /// (its ontrack handler reads the participant from the stream id).
    fn rewrite_single_answer(&self, id: ParticipantId, sdp: &str) -> String {
        let Some(p) = self.participants.get(&id) else {
            return sdp.to_owned();
        };
        let label_of = |mid: &str| -> Option<Option<&TrackLabel>> {
            let (m, _) = p.slots.iter().find(|(m, _)| m.to_string() == mid)?;
            let assigned = p
                .out
                .iter()
                .find(|o| o.mid() == Some(*m))
                .and_then(|o| self.tracks.get(&o.track))
                .and_then(|t| t.label.as_ref());
            Some(assigned)
        };
        let mut out = String::with_capacity(sdp.len() + 256);
        for section in split_sections(sdp) {
            let mid = section
                .lines()
                .find_map(|l| l.strip_prefix("a=mid:"))
                .map(str::trim);
            let Some(slot) = mid.and_then(label_of) else {
                out.push_str(section);
                continue;
            };
            for line in section.split_inclusive('\n') {
                let bare = line.trim_end();
                match slot {
                    None if bare == "a=sendonly" => out.push_str("a=inactive\r\n"),
                    None if bare.starts_with("a=msid:") => {}
                    None if bare.starts_with("a=ssrc") || bare.starts_with("a=ssrc-group") => {}
                    Some(label) if bare.starts_with("a=msid:") => {
                        out.push_str(&format!(
                            "a=msid:{} {}\r\n",
                            label.stream_id, label.track_id
                        ));
                    }
                    Some(label) if bare.starts_with("a=ssrc:") && bare.contains(" msid:") => {
                        let ssrc = bare.split_whitespace().next().unwrap_or("a=ssrc:0");
                        out.push_str(&format!(
                            "{ssrc} msid:{} {}\r\n",
                            label.stream_id, label.track_id
                        ));
                    }
                    _ => out.push_str(line),
                }
            }
        }
        out
    }

    /// The loudest current audio level (linear, 0..1) of each participant that publishes
    /// audio carrying the RFC 6464 level extension.
    pub fn audio_levels(&self, now: Instant) -> Vec<(ParticipantId, f32)> {
        let mut out: Vec<(ParticipantId, f32)> = Vec::new();
        for t in self.tracks.values().filter(|t| t.kind == TrackKind::Audio) {
            let Some(at) = t.level_at else { continue };
            let level = if now.saturating_duration_since(at) < LEVEL_STALE {
                t.level
            } else {
                0.0
            };
            match out.iter_mut().find(|(p, _)| *p == t.owner) {
                Some((_, l)) => *l = l.max(level),
                None => out.push((t.owner, level)),
            }
        }
        out
    }

    /// Single mode: `(mid, track)` for every m-line we send a track on.
    pub fn outgoing(&self, id: ParticipantId) -> Vec<(String, TrackId)> {
        self.participants
            .get(&id)
            .map(|p| {
                p.out
                    .iter()
                    .filter_map(|o| match o.state {
                        OutState::Open(m) => Some((m.to_string(), o.track)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn forward(&mut self, from: ParticipantId, d: MediaData) {
        let now = self.now;
        let Some((tid, t)) = self
            .tracks
            .iter_mut()
            .find(|(_, t)| t.owner == from && t.mid == d.mid)
        else {
            return;
        };
        let tid = *tid;
        tracing::trace!(%tid, rid = ?d.rid, len = d.data.len(), key = d.is_keyframe(), labelled = t.label.is_some(), "frame in");
        if t.label.is_none() {
            return;
        }
        if t.kind == TrackKind::Audio
            && let Some(dbov) = d.ext_vals.audio_level
        {
            // -127..=0 dBov to linear amplitude, smoothed over a few packets.
            let linear = 10f32.powf(f32::from(dbov.clamp(-127, 0)) / 20.0);
            t.level = LEVEL_SMOOTHING * t.level + (1.0 - LEVEL_SMOOTHING) * linear;
            t.level_at = Some(now);
        }
        let layer = t.layer_of(d.rid);
        if let Some(l) = layer {
            t.layer_seen[l] = Some(now);
        }
        t.rates[layer.unwrap_or(0)].add(d.data.len());
        let is_video = t.kind == TrackKind::Video;
        let keyframe = d.is_keyframe();
        let Some(room) = self.participants.get(&from).map(|p| &p.room) else {
            return;
        };
        let mut subs = std::mem::take(&mut self.fan_out);
        subs.extend(
            self.participants
                .iter()
                .filter(|(id, p)| **id != from && p.room == *room)
                .map(|(id, _)| *id),
        );
        let mut want_keyframe = Vec::new();
        for &s in &subs {
            let best = {
                let t = &self.tracks[&tid];
                let p = &self.participants[&s];
                p.out
                    .iter()
                    .find(|o| o.track == tid)
                    .and_then(|o| match (o.fwd.target, o.grant) {
                        (Target::Layer(cap), Some(Grant::UpTo(fits))) => {
                            t.best_layer(now, cap.min(fits))
                        }
                        (Target::Layer(cap), _) => t.best_layer(now, cap),
                        (Target::Paused, _) => None,
                    })
            };
            let Some(p) = self.participants.get_mut(&s) else {
                continue;
            };
            let Some(ot) = p.out.iter_mut().find(|o| o.track == tid) else {
                continue;
            };
            if ot.grant == Some(Grant::Starved) {
                continue;
            }
            let OutState::Open(mid) = ot.state else {
                tracing::trace!(%s, %tid, state = ?ot.state, "not open");
                continue;
            };
            match ot
                .fwd
                .on_frame(layer, best, keyframe, is_video, d.time.numer())
            {
                Verdict::Drop => {}
                Verdict::DropWantKeyframe(l) => {
                    tracing::trace!(%s, %tid, layer = l, "waiting for keyframe");
                    want_keyframe.push(Some(l))
                }
                Verdict::Forward(ts) => {
                    if !d.contiguous && is_video {
                        want_keyframe.push(layer);
                    }
                    let Some(w) = p
                        .pc_mut(PcRole::Subscriber)
                        .and_then(|pc| pc.rtc.writer(mid))
                    else {
                        tracing::trace!(%s, %mid, "no writer");
                        continue;
                    };
                    let Some(pt) = w.match_params(d.params) else {
                        tracing::trace!(%s, %mid, "no matching payload type");
                        continue;
                    };
                    tracing::trace!(%s, %mid, ts, "frame out");
                    let time = MediaTime::new(ts, d.time.frequency());
                    if let Err(e) = w.write(pt, d.network_time, time, d.data.clone()) {
                        tracing::debug!(%s, "forward failed: {e}");
                    }
                    self.drain(s, PcRole::Subscriber);
                }
            }
        }
        subs.clear();
        self.fan_out = subs;
        for l in want_keyframe {
            self.request_keyframe(tid, l);
        }
    }

    fn subscriber_wants_keyframe(&mut self, sub: ParticipantId, mid: Mid) {
        let Some(p) = self.participants.get(&sub) else {
            return;
        };
        let Some(ot) = p.out.iter().find(|o| o.mid() == Some(mid)) else {
            return;
        };
        let (tid, layer) = (ot.track, ot.fwd.current());
        self.request_keyframe(tid, layer);
    }

    fn request_keyframe(&mut self, tid: TrackId, layer: Option<usize>) {
        let now = self.now;
        let Some(t) = self.tracks.get_mut(&tid) else {
            return;
        };
        let slot = layer.unwrap_or(0).min(t.last_keyframe_request.len() - 1);
        if t.last_keyframe_request[slot]
            .is_some_and(|at| now.saturating_duration_since(at) < KEYFRAME_THROTTLE)
        {
            return;
        }
        t.last_keyframe_request[slot] = Some(now);
        self.feedback.plis_sent += 1;
        let rid = layer.and_then(|l| t.rids.get(l).copied());
        let (owner, mid) = (t.owner, t.mid);
        if let Some(mut w) = self
            .participants
            .get_mut(&owner)
            .and_then(|p| p.publisher.as_mut())
            .and_then(|pc| pc.rtc.writer(mid))
        {
            let _ = w.request_keyframe(rid, KeyframeRequestKind::Pli);
        }
        self.drain(owner, PcRole::Publisher);
    }
}

impl Participant {
    /// In single mode both roles are the one connection.
    fn pc(&self, role: PcRole) -> Option<&Pc> {
        match (self.mode, role) {
            (PcMode::Single, _) | (PcMode::Dual, PcRole::Publisher) => self.publisher.as_ref(),
            (PcMode::Dual, PcRole::Subscriber) => self.subscriber.as_ref(),
        }
    }
    fn pc_mut(&mut self, role: PcRole) -> Option<&mut Pc> {
        match (self.mode, role) {
            (PcMode::Single, _) | (PcMode::Dual, PcRole::Publisher) => self.publisher.as_mut(),
            (PcMode::Dual, PcRole::Subscriber) => self.subscriber.as_mut(),
        }
    }
}

/// The local (our) ufrag of a STUN request's `USERNAME` (`ours:theirs`, RFC 8445 §7.2.2).
pub(crate) fn local_ufrag(bytes: &[u8]) -> Option<&str> {
    if switchyard_stun::classify(bytes) != switchyard_stun::PacketKind::Stun {
        return None;
    }
    let msg = switchyard_stun::Message::parse(bytes).ok()?;
    msg.username().ok()??.split(':').next()
}

/// Splits an SDP into the session part and one slice per m-section, each keeping its line ends.
fn split_sections(sdp: &str) -> Vec<&str> {
    let mut starts: Vec<usize> = sdp.match_indices("\nm=").map(|(i, _)| i + 1).collect();
    starts.insert(0, 0);
    starts.push(sdp.len());
    starts.windows(2).map(|w| &sdp[w[0]..w[1]]).collect()
}

fn default_target(t: &Track) -> Target {
    // Everything up to the top layer until the subscriber says otherwise.
    Target::Layer(t.rids.len().saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_stun::{Class, MessageBuilder, MessageType, Method, TransactionId, attr};

    #[test]
    fn local_ufrag_from_binding_request() {
        let mut buf = vec![0u8; 256];
        let typ = MessageType::new(Class::Request, Method::BINDING);
        let mut b = MessageBuilder::new(&mut buf, typ, TransactionId([7; 12])).unwrap();
        b.add(attr::USERNAME, b"sfuFrag:clientFrag").unwrap();
        let n = b.finish();
        assert_eq!(local_ufrag(&buf[..n]), Some("sfuFrag"));
        // Not STUN (an RTP packet) or STUN without USERNAME: no ufrag.
        assert_eq!(local_ufrag(&[0x80, 0x60, 0, 1, 0, 0, 0, 0]), None);
        let mut b = MessageBuilder::new(&mut buf, typ, TransactionId([8; 12])).unwrap();
        b.add_u32(attr::LIFETIME, 1).unwrap();
        let n = b.finish();
        assert_eq!(local_ufrag(&buf[..n]), None);
    }
}
