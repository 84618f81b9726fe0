//! One synthetic LiveKit participant: a signalling WebSocket (`/rtc`, binary protobuf, the
//! dual-connection mode `lk load-test` uses) and one str0m `Rtc` per peer connection, each on
//! its own UDP socket. Sans-IO: the worker loop feeds it readiness and time.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use livekit_protocol as proto;
use mio::net::UdpSocket;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use prost::Message as _;
use proto::{SignalRequest, signal_request, signal_response};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Rid, Simulcast};
use str0m::media::{MediaData, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tungstenite::{Message as WsMessage, WebSocket};

use super::stamp::{self, Stamp};
use super::{Behaviour, Role, Shared};

/// Sockets a client owns, as offsets of its token base.
pub(super) const TOKEN_WS: usize = 0;
pub(super) const TOKEN_SUB: usize = 1;
pub(super) const TOKEN_PUB: usize = 2;
pub(super) const TOKENS_PER_CLIENT: usize = 3;

/// Opus at 50 packets/s.
const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
const AUDIO_PAYLOAD: usize = 100;
/// 30 frames/s.
const VIDEO_INTERVAL: Duration = Duration::from_nanos(33_333_333);
/// Largest video payload per packet: with RTP header, extensions and the SRTP tag the
/// datagram stays under str0m's 1150-byte MTU, so one written frame is one RTP packet.
const VIDEO_MAX_PAYLOAD: usize = 1000;
/// Periodic keyframes, as a camera encoder sends them (besides answering PLIs).
const KEYFRAME_EVERY: Duration = Duration::from_secs(3);
/// The server's `ping_interval`; it drops a silent signalling connection after 15 s.
const PING_EVERY: Duration = Duration::from_secs(5);
/// A sender this far behind its schedule skips ahead instead of bursting.
const MAX_LAG: Duration = Duration::from_millis(200);
/// A flooder sends a frame every 5 ms instead of every 33: the same rate in bursts of a
/// seventh the size, closer to a steady stream than to a keyframe storm every frame.
const FLOOD_INTERVAL: Duration = Duration::from_millis(5);
/// A flooder without a rate (`--flood-mbps max`) writes this much per worker iteration,
/// coming straight back for more.
const FLOOD_MAX_BURST: usize = 32 * VIDEO_MAX_PAYLOAD;
/// A stalled subscriber's receive buffer: the kernel's minimum, so it is full at once, as
/// it would be after a while at any size.
const STALLED_RECV_BUFFER: usize = 4096;
/// Simulcast rids (low to high) and their share of `--video-kbps`.
const LAYERS: [(&str, u32, u32, u32); 3] =
    [("q", 16, 320, 180), ("h", 4, 640, 360), ("f", 1, 1280, 720)];

/// What to start.
#[derive(Clone, Debug)]
pub(super) struct Spec {
    /// Global index (publisher index for publishers).
    pub(super) index: usize,
    pub(super) identity: String,
    pub(super) role: Role,
    pub(super) token: String,
    /// `ws://host:port` (no trailing slash).
    pub(super) url: String,
    pub(super) bind: std::net::IpAddr,
    pub(super) video_kbps: u32,
    pub(super) simulcast: bool,
    /// When to connect.
    pub(super) at: Instant,
    pub(super) behaviour: Behaviour,
}

/// One receiving stream's measurements (packets whose send time falls in the window).
///
/// A simulcast layer reaches a subscriber in runs: the server switches between a
/// publisher's layers, and what a layer sent while another one was forwarded was never
/// meant for this subscriber. So packets are expected from the first to the highest
/// sequence number of each run, and loss is what is missing inside runs.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct StreamStat {
    /// The current run: its first and highest sequence numbers.
    first: u32,
    max: u32,
    /// Packets expected in the runs before the current one.
    closed: u64,
    pub(super) received: u64,
    last_transit_us: Option<i64>,
    /// RFC 3550 §6.4.1 interarrival jitter, µs.
    pub(super) jitter_us: f64,
}

impl StreamStat {
    pub(super) fn expected(&self) -> u64 {
        if self.received == 0 {
            0
        } else {
            self.closed + self.current_run()
        }
    }

    /// Packets expected in the current run.
    fn current_run(&self) -> u64 {
        u64::from(self.max.wrapping_sub(self.first)) + 1
    }

    /// Counts packet `seq`; `new_run`: the server switched back to this stream from
    /// another layer of the same publisher.
    fn record(&mut self, seq: u32, new_run: bool) {
        if self.received == 0 {
            (self.first, self.max) = (seq, seq);
        } else if new_run {
            self.closed += self.current_run();
            (self.first, self.max) = (seq, seq);
        }
        self.first = self.first.min(seq);
        self.max = self.max.max(seq);
        self.received += 1;
    }
}

/// What a client measured, collected at the end.
#[derive(Debug)]
pub(super) struct Report {
    pub(super) role: Role,
    pub(super) behaviour: Behaviour,
    /// Connect start → WebSocket upgraded.
    pub(super) ws_ms: Option<f64>,
    /// Connect start → `JoinResponse`.
    pub(super) join_ms: Option<f64>,
    /// Connect start → every peer connection ICE+DTLS connected.
    pub(super) connected_ms: Option<f64>,
    /// Connect start → first remote media packet.
    pub(super) first_pkt_ms: Option<f64>,
    pub(super) streams: Vec<StreamStat>,
    /// What arrived of the flooder's media sent inside the window: packets, payload bytes.
    pub(super) flood_packets: u64,
    pub(super) flood_bytes: u64,
    /// A stalled subscriber got media and stopped.
    pub(super) stalled: bool,
    pub(super) error: Option<String>,
}

struct Peer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    timeout: Instant,
    connected: Option<Instant>,
    /// Datagrams (and their bytes) the socket took, all run long.
    sent_datagrams: u64,
    sent_bytes: u64,
}

impl Peer {
    fn new(bind: std::net::IpAddr, now: Instant) -> anyhow::Result<Self> {
        let std_socket = std::net::UdpSocket::bind(SocketAddr::new(bind, 0))?;
        let _ = socket2::SockRef::from(&std_socket).set_recv_buffer_size(2 << 20);
        std_socket.set_nonblocking(true)?;
        let local = std_socket.local_addr()?;
        let socket = UdpSocket::from_std(std_socket);
        let mut rtc = Rtc::builder().build(now);
        rtc.add_local_candidate(Candidate::host(local, "udp")?);
        Ok(Peer {
            rtc,
            socket,
            local,
            timeout: now,
            connected: None,
            sent_datagrams: 0,
            sent_bytes: 0,
        })
    }

    /// Drains `poll_output` (sending what it emits) until it yields a timeout; returns the
    /// events.
    fn drain(&mut self, events: &mut Vec<Event>) -> anyhow::Result<()> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => {
                    self.timeout = t;
                    return Ok(());
                }
                Output::Transmit(t) => {
                    // A full send buffer drops the datagram, as a congested network would.
                    if self.socket.send_to(&t.contents, t.destination).is_ok() {
                        self.sent_datagrams += 1;
                        self.sent_bytes += t.contents.len() as u64;
                    }
                }
                Output::Event(e) => events.push(e),
            }
        }
    }
}

/// A publisher's outgoing media.
struct Publishing {
    audio_mid: Mid,
    video_mid: Option<Mid>,
    opus: Option<str0m::media::Pt>,
    vp8: Option<str0m::media::Pt>,
    audio_seq: u32,
    audio_rtp: u64,
    next_audio: Instant,
    /// Per video stream (one, or three simulcast layers): rid, bytes per frame, seq,
    /// keyframe wanted, last keyframe.
    video: Vec<VideoStream>,
    video_rtp: u64,
    next_video: Instant,
    /// Time between frames (30 fps; a flooder's are closer).
    video_interval: Duration,
    /// `--flood-mbps max`: a frame every worker iteration, as fast as the thread goes.
    flood_max: bool,
}

struct VideoStream {
    rid: Option<Rid>,
    code: u8,
    bytes_per_frame: usize,
    seq: u32,
    want_keyframe: bool,
    last_keyframe: Option<Instant>,
}

pub(super) struct Client {
    spec: Spec,
    token_base: usize,
    started: Instant,
    ws: WebSocket<TcpStream>,
    sub: Option<Peer>,
    publ: Option<Peer>,
    pending_offer: Option<SdpPendingOffer>,
    media: Option<Publishing>,
    ws_open: Instant,
    join_at: Option<Instant>,
    first_pkt: Option<Instant>,
    next_ping: Instant,
    streams: HashMap<u32, StreamStat>,
    /// Per publisher, the simulcast layer (stream code) the last video packet came on.
    layer_of: HashMap<u32, u8>,
    events: Vec<Event>,
    error: Option<String>,
    left: bool,
    counted_connected: bool,
    /// A stalled subscriber got media and now neither reads its socket nor drives str0m.
    stalled: bool,
    flood_packets: u64,
    flood_bytes: u64,
    /// The flooder's publisher socket counters as last added to the shared totals.
    flood_reported: (u64, u64),
}

/// Builds the `/rtc` URL for a token.
fn rtc_url(base: &str, token: &str) -> String {
    format!(
        "{base}/rtc?access_token={token}&auto_subscribe=1&sdk=rust&version=0.1.0&protocol=16&adaptive_stream=0"
    )
}

impl Client {
    /// Connects the WebSocket (blocking, bounded) and registers it with `registry`.
    pub(super) fn connect(
        spec: Spec,
        registry: &Registry,
        token_base: usize,
    ) -> anyhow::Result<Self> {
        let started = Instant::now();
        let hostport = spec
            .url
            .strip_prefix("ws://")
            .ok_or_else(|| anyhow!("--url must start with ws:// (got {})", spec.url))?;
        let addr = hostport
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {hostport}"))?
            .next()
            .ok_or_else(|| anyhow!("{hostport} resolves to nothing"))?;
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("cannot connect to {addr}"))?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
        let url = rtc_url(&spec.url, &spec.token);
        let (ws, _resp) = match tungstenite::client(url.as_str(), tcp) {
            Ok(ok) => ok,
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                let status = resp.status();
                let body = resp
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).trim().to_owned())
                    .unwrap_or_default();
                let hint = if status.as_u16() == 401 {
                    " (check --api-key/--api-secret against the server's keys)"
                } else {
                    ""
                };
                bail!("signalling refused by {addr}: HTTP {status}: {body}{hint}");
            }
            Err(e) => bail!("WebSocket handshake with {addr} failed: {e}"),
        };
        let ws_open = Instant::now();
        ws.get_ref().set_nonblocking(true)?;
        {
            use std::os::fd::AsRawFd;
            let fd = ws.get_ref().as_raw_fd();
            registry.register(
                &mut SourceFd(&fd),
                Token(token_base + TOKEN_WS),
                Interest::READABLE,
            )?;
        }
        Ok(Client {
            spec,
            token_base,
            started,
            ws,
            sub: None,
            publ: None,
            pending_offer: None,
            media: None,
            ws_open,
            join_at: None,
            first_pkt: None,
            next_ping: ws_open + PING_EVERY,
            streams: HashMap::new(),
            layer_of: HashMap::new(),
            events: Vec::new(),
            error: None,
            left: false,
            counted_connected: false,
            stalled: false,
            flood_packets: 0,
            flood_bytes: 0,
            flood_reported: (0, 0),
        })
    }

    pub(super) fn failed(&self) -> bool {
        self.error.is_some()
    }

    fn fail(&mut self, shared: &Shared, why: String) {
        if self.error.is_none() {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            self.error = Some(why);
        }
    }

    /// Whether every connection this participant needs is up.
    pub(super) fn connected_at(&self) -> Option<Instant> {
        let sub = self.sub.as_ref()?.connected?;
        match self.spec.role {
            Role::Subscriber => Some(sub),
            Role::Publisher => Some(sub.max(self.publ.as_ref()?.connected?)),
        }
    }

    fn send(&mut self, m: signal_request::Message) -> anyhow::Result<()> {
        let bytes = SignalRequest { message: Some(m) }.encode_to_vec();
        match self.ws.send(WsMessage::Binary(bytes.into())) {
            Ok(()) => Ok(()),
            // Queued inside tungstenite; flushed on a later tick.
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The socket behind `token` is readable.
    pub(super) fn on_ready(
        &mut self,
        which: usize,
        registry: &Registry,
        buf: &mut [u8],
        shared: &Shared,
    ) {
        if self.failed() {
            return;
        }
        let r = match which {
            TOKEN_WS => self.read_signalling(registry, shared),
            TOKEN_SUB | TOKEN_PUB if self.stalled => Ok(()),
            TOKEN_SUB | TOKEN_PUB => self.read_media(which, buf, shared),
            _ => Ok(()),
        };
        if let Err(e) = r {
            self.fail(shared, format!("{e:#}"));
        }
    }

    fn read_signalling(&mut self, registry: &Registry, shared: &Shared) -> anyhow::Result<()> {
        loop {
            match self.ws.read() {
                Ok(WsMessage::Binary(b)) => {
                    let resp = proto::SignalResponse::decode(b.as_ref())
                        .context("undecodable SignalResponse")?;
                    if let Some(m) = resp.message {
                        self.on_signal(m, registry, shared)?;
                    }
                }
                Ok(WsMessage::Close(_)) => {
                    if self.left {
                        return Ok(());
                    }
                    bail!("server closed the signalling connection");
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                    return Ok(());
                }
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)
                    if self.left =>
                {
                    return Ok(());
                }
                Err(e) => bail!("signalling: {e}"),
            }
        }
    }

    fn on_signal(
        &mut self,
        m: signal_response::Message,
        registry: &Registry,
        shared: &Shared,
    ) -> anyhow::Result<()> {
        use signal_response::Message as M;
        let now = Instant::now();
        match m {
            M::Join(_) => {
                self.join_at = Some(now);
                shared.joined.fetch_add(1, Ordering::Relaxed);
                if self.spec.role == Role::Publisher {
                    self.start_publishing(registry, now)?;
                }
            }
            M::Offer(sd) => {
                if self.sub.is_none() {
                    let peer = Peer::new(self.spec.bind, now)?;
                    let mut peer = peer;
                    registry.register(
                        &mut peer.socket,
                        Token(self.token_base + TOKEN_SUB),
                        Interest::READABLE,
                    )?;
                    self.sub = Some(peer);
                }
                let offer = SdpOffer::from_sdp_string(&sd.sdp)
                    .map_err(|e| anyhow!("server offer does not parse: {e}"))?;
                let peer = self.sub.as_mut().expect("created above");
                let answer = peer
                    .rtc
                    .sdp_api()
                    .accept_offer(offer)
                    .map_err(|e| anyhow!("server offer refused by str0m: {e}"))?;
                // str0m forms its ICE candidate pairs on the next timeout, and the timeout
                // it reports after an offer without media can be a second away: drive one
                // now so the first checks leave with the answer, as a browser's do.
                peer.rtc.handle_input(Input::Timeout(Instant::now()))?;
                peer.drain(&mut self.events)?;
                self.handle_events(TOKEN_SUB, shared);
                self.send(signal_request::Message::Answer(proto::SessionDescription {
                    r#type: "answer".into(),
                    sdp: answer.to_sdp_string(),
                    id: sd.id,
                    ..Default::default()
                }))?;
            }
            M::Answer(sd) => {
                let answer = SdpAnswer::from_sdp_string(&sd.sdp)
                    .map_err(|e| anyhow!("server answer does not parse: {e}"))?;
                let (Some(peer), Some(pending)) = (self.publ.as_mut(), self.pending_offer.take())
                else {
                    bail!("answer without an offer");
                };
                peer.rtc
                    .sdp_api()
                    .accept_answer(pending, answer)
                    .map_err(|e| anyhow!("server answer refused by str0m: {e}"))?;
                peer.drain(&mut self.events)?;
                self.bind_payload_types();
                self.handle_events(TOKEN_PUB, shared);
            }
            M::Trickle(t) => {
                let peer = if t.target == proto::SignalTarget::Subscriber as i32 {
                    self.sub.as_mut()
                } else {
                    self.publ.as_mut()
                };
                let cand = serde_json::from_str::<serde_json::Value>(&t.candidate_init)
                    .ok()
                    .and_then(|v| v.get("candidate")?.as_str().map(str::to_owned))
                    .and_then(|c| Candidate::from_sdp_string(&c).ok());
                if let (Some(peer), Some(c)) = (peer, cand) {
                    peer.rtc.add_remote_candidate(c);
                    peer.drain(&mut self.events)?;
                }
            }
            M::Leave(l) => bail!(
                "server sent leave (reason {:?})",
                proto::DisconnectReason::try_from(l.reason).unwrap_or_default()
            ),
            M::RequestResponse(r) if !r.message.is_empty() => {
                bail!("server refused a request: {}", r.message)
            }
            _ => {}
        }
        Ok(())
    }

    /// After the join: announces an audio and (optionally) a video track and offers them.
    fn start_publishing(&mut self, registry: &Registry, now: Instant) -> anyhow::Result<()> {
        let mut peer = Peer::new(self.spec.bind, now)?;
        registry.register(
            &mut peer.socket,
            Token(self.token_base + TOKEN_PUB),
            Interest::READABLE,
        )?;
        let i = self.spec.index;
        let stream_id = format!("loadgen-{i}");
        let audio_cid = format!("audio-{i}");
        let video_cid = format!("video-{i}");
        let video = self.spec.video_kbps > 0;
        let simulcast = video && self.spec.simulcast;
        let mut api = peer.rtc.sdp_api();
        let audio_mid = api.add_media(
            MediaKind::Audio,
            Direction::SendOnly,
            Some(stream_id.clone()),
            Some(audio_cid.clone()),
            None,
        );
        let video_mid = video.then(|| {
            let sim = simulcast.then(|| {
                let mut s = Simulcast::new();
                for (rid, ..) in LAYERS {
                    s.add_send_layer(SimulcastLayer::new(rid));
                }
                s
            });
            api.add_media(
                MediaKind::Video,
                Direction::SendOnly,
                Some(stream_id.clone()),
                Some(video_cid.clone()),
                sim,
            )
        });
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| anyhow!("str0m made no publisher offer"))?;
        self.pending_offer = Some(pending);
        peer.drain(&mut self.events)?;
        self.publ = Some(peer);

        self.send(signal_request::Message::AddTrack(proto::AddTrackRequest {
            cid: audio_cid,
            name: "microphone".into(),
            r#type: proto::TrackType::Audio as i32,
            source: proto::TrackSource::Microphone as i32,
            ..Default::default()
        }))?;
        let kbps = self.spec.video_kbps;
        let mut streams = Vec::new();
        let (video_interval, flood_max) = match self.spec.behaviour {
            Behaviour::Flood(Some(_)) => (FLOOD_INTERVAL, false),
            Behaviour::Flood(None) => (FLOOD_INTERVAL, true),
            _ => (VIDEO_INTERVAL, false),
        };
        if video {
            let layers: Vec<proto::VideoLayer> = if simulcast {
                LAYERS
                    .iter()
                    .enumerate()
                    .map(|(q, (rid, div, w, h))| proto::VideoLayer {
                        quality: q as i32,
                        width: *w,
                        height: *h,
                        bitrate: kbps * 1000 / div,
                        rid: (*rid).into(),
                        ..Default::default()
                    })
                    .collect()
            } else {
                Vec::new()
            };
            self.send(signal_request::Message::AddTrack(proto::AddTrackRequest {
                cid: video_cid.clone(),
                name: "camera".into(),
                r#type: proto::TrackType::Video as i32,
                source: proto::TrackSource::Camera as i32,
                width: 1280,
                height: 720,
                layers,
                simulcast_codecs: vec![proto::SimulcastCodec {
                    codec: "vp8".into(),
                    cid: video_cid,
                    ..Default::default()
                }],
                ..Default::default()
            }))?;
            let frame_bytes = |div: u32| {
                if flood_max {
                    return FLOOD_MAX_BURST;
                }
                let per_sec = kbps as f64 * 1000.0 / 8.0 / f64::from(div);
                ((per_sec * video_interval.as_secs_f64()) as usize).max(1)
            };
            if simulcast {
                for (i, (rid, div, ..)) in LAYERS.iter().enumerate() {
                    streams.push(VideoStream {
                        rid: Some(Rid::from(*rid)),
                        code: stamp::stream_layer(i),
                        bytes_per_frame: frame_bytes(*div),
                        seq: 0,
                        want_keyframe: true,
                        last_keyframe: None,
                    });
                }
            } else {
                streams.push(VideoStream {
                    rid: None,
                    code: stamp::STREAM_VIDEO,
                    bytes_per_frame: frame_bytes(1),
                    seq: 0,
                    want_keyframe: true,
                    last_keyframe: None,
                });
            }
        }
        self.send(signal_request::Message::Offer(proto::SessionDescription {
            r#type: "offer".into(),
            sdp: offer.to_sdp_string(),
            id: 1,
            ..Default::default()
        }))?;
        self.media = Some(Publishing {
            audio_mid,
            video_mid,
            opus: None,
            vp8: None,
            audio_seq: 0,
            audio_rtp: 0,
            next_audio: now,
            video: streams,
            video_rtp: 0,
            next_video: now,
            video_interval,
            flood_max,
        });
        Ok(())
    }

    /// After the answer: the negotiated payload types for Opus and VP8.
    fn bind_payload_types(&mut self) {
        let (Some(peer), Some(m)) = (self.publ.as_mut(), self.media.as_mut()) else {
            return;
        };
        let find = |rtc: &mut Rtc, mid: Mid, codec: Codec| {
            rtc.writer(mid).and_then(|w| {
                w.payload_params()
                    .find(|p| p.spec().codec == codec)
                    .map(|p| p.pt())
            })
        };
        m.opus = find(&mut peer.rtc, m.audio_mid, Codec::Opus);
        m.vp8 = m
            .video_mid
            .and_then(|mid| find(&mut peer.rtc, mid, Codec::Vp8));
    }

    fn read_media(&mut self, which: usize, buf: &mut [u8], shared: &Shared) -> anyhow::Result<()> {
        loop {
            if self.stalled {
                return Ok(());
            }
            let peer = match which {
                TOKEN_SUB => self.sub.as_mut(),
                _ => self.publ.as_mut(),
            };
            let Some(peer) = peer else { return Ok(()) };
            let (n, source) = match peer.socket.recv_from(buf) {
                Ok(x) => x,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            let now = Instant::now();
            let Ok(contents) = buf[..n].try_into() else {
                continue;
            };
            let input = Input::Receive(
                now,
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: peer.local,
                    contents,
                },
            );
            if peer.rtc.accepts(&input) {
                peer.rtc.handle_input(input)?;
                peer.drain(&mut self.events)?;
                self.handle_events(which, shared);
            }
        }
    }

    fn handle_events(&mut self, which: usize, shared: &Shared) {
        let events = std::mem::take(&mut self.events);
        for e in events {
            match e {
                Event::Connected => {
                    let now = Instant::now();
                    let peer = match which {
                        TOKEN_SUB => self.sub.as_mut(),
                        _ => self.publ.as_mut(),
                    };
                    if let Some(p) = peer {
                        p.connected.get_or_insert(now);
                    }
                    if !self.counted_connected && self.connected_at().is_some() {
                        self.counted_connected = true;
                        shared.connected.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Event::MediaData(d) if which == TOKEN_SUB => self.on_media(&d, shared),
                Event::KeyframeRequest(k) if which == TOKEN_PUB => {
                    if let Some(m) = self.media.as_mut()
                        && Some(k.mid) == m.video_mid
                    {
                        for s in &mut m.video {
                            if k.rid.is_none() || s.rid == k.rid {
                                s.want_keyframe = true;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn on_media(&mut self, d: &MediaData, shared: &Shared) {
        let now_us = shared.clock.now();
        if self.first_pkt.is_none() {
            self.first_pkt = Some(Instant::now());
        }
        match self.spec.behaviour {
            Behaviour::Normal => {}
            // Media flows: from now on this subscriber is a dead end, measuring nothing.
            Behaviour::Stalled => return self.stall(),
            // What the flooder receives is no measure of the service either.
            Behaviour::Flood(_) => return,
        }
        let Some(s) = stamp::read(&d.data) else {
            return;
        };
        // RTP packets this frame came in (one per frame as the loadgen writes them).
        let packets = (**d.seq_range.end()).saturating_sub(**d.seq_range.start()) + 1;
        let start = shared.win_start_us.load(Ordering::Relaxed);
        let end = shared.win_end_us.load(Ordering::Relaxed);
        let in_window = s.sent_us >= start && s.sent_us < end;
        if stamp::is_flood(s.stream) {
            // The flooder's media is what got through the server's limit, not a measure of
            // the normal participants' service.
            if in_window {
                self.flood_packets += packets;
                self.flood_bytes += d.data.len() as u64;
            }
            return;
        }
        shared.received.fetch_add(packets, Ordering::Relaxed);
        if !in_window {
            return;
        }
        shared.window_received.fetch_add(packets, Ordering::Relaxed);
        let transit = now_us as i64 - s.sent_us as i64;
        shared.record_latency(transit.max(0) as u64);
        let code = (s.stream & 0xff) as u8;
        let new_run = code >= stamp::stream_layer(0)
            && self
                .layer_of
                .insert(s.stream >> 8, code)
                .is_some_and(|last| last != code);
        let st = self.streams.entry(s.stream).or_default();
        st.record(s.seq, new_run);
        if let Some(prev) = st.last_transit_us {
            let dd = (transit - prev).abs() as f64;
            st.jitter_us += (dd - st.jitter_us) / 16.0;
        }
        st.last_transit_us = Some(transit);
    }

    /// Stops reading the media sockets and driving str0m (no RTCP, no feedback, no ICE
    /// consent), and shrinks the receive buffers so the server's datagrams pile up and
    /// are dropped by the kernel, as for a client whose process hangs. Signalling stays up,
    /// so the server keeps it in the room and keeps sending.
    fn stall(&mut self) {
        self.stalled = true;
        for p in [self.sub.as_ref(), self.publ.as_ref()]
            .into_iter()
            .flatten()
        {
            let _ = socket2::SockRef::from(&p.socket).set_recv_buffer_size(STALLED_RECV_BUFFER);
        }
    }

    /// Timers, media due, pings. Returns the next instant this client wants a tick.
    pub(super) fn tick(&mut self, now: Instant, sending: bool, shared: &Shared) -> Instant {
        if self.failed() {
            return now + Duration::from_secs(3600);
        }
        if let Err(e) = self.tick_inner(now, sending, shared) {
            self.fail(shared, format!("{e:#}"));
        }
        if let (Behaviour::Flood(_), Some(p)) = (self.spec.behaviour, self.publ.as_ref()) {
            let (d, b) = self.flood_reported;
            shared
                .flood_sent_datagrams
                .fetch_add(p.sent_datagrams - d, Ordering::Relaxed);
            shared
                .flood_sent_bytes
                .fetch_add(p.sent_bytes - b, Ordering::Relaxed);
            self.flood_reported = (p.sent_datagrams, p.sent_bytes);
        }
        let mut next = self.next_ping;
        for p in [self.sub.as_ref(), self.publ.as_ref()]
            .into_iter()
            .flatten()
            .filter(|_| !self.stalled)
        {
            next = next.min(p.timeout);
        }
        if sending && let Some(m) = &self.media {
            next = next.min(m.next_audio);
            if !m.video.is_empty() {
                next = next.min(m.next_video);
            }
        }
        next
    }

    fn tick_inner(&mut self, now: Instant, sending: bool, shared: &Shared) -> anyhow::Result<()> {
        let stalled = self.stalled;
        for which in [TOKEN_SUB, TOKEN_PUB].into_iter().filter(|_| !stalled) {
            let peer = match which {
                TOKEN_SUB => self.sub.as_mut(),
                _ => self.publ.as_mut(),
            };
            if let Some(p) = peer
                && p.timeout <= now
            {
                p.rtc.handle_input(Input::Timeout(now))?;
                p.drain(&mut self.events)?;
                self.handle_events(which, shared);
            }
        }
        if sending {
            self.send_media(now, shared)?;
        }
        if now >= self.next_ping {
            self.next_ping = now + PING_EVERY;
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as i64;
            self.send(signal_request::Message::PingReq(proto::Ping {
                timestamp: ms,
                rtt: 0,
            }))?;
        }
        match self.ws.flush() {
            Ok(()) => Ok(()),
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(anyhow!("signalling: {e}")),
        }
    }

    fn send_media(&mut self, now: Instant, shared: &Shared) -> anyhow::Result<()> {
        let (Some(peer), Some(m)) = (self.publ.as_mut(), self.media.as_mut()) else {
            return Ok(());
        };
        if peer.connected.is_none() {
            return Ok(());
        }
        let clock = shared.clock;
        let publisher = self.spec.index;
        let flooding = matches!(self.spec.behaviour, Behaviour::Flood(_));
        let mut sent = 0u64;
        if let Some(pt) = m.opus {
            if now.saturating_duration_since(m.next_audio) > MAX_LAG {
                m.next_audio = now;
            }
            while m.next_audio <= now {
                let s = Stamp {
                    stream: stamp::stream_key(publisher, stamp::STREAM_AUDIO),
                    seq: m.audio_seq,
                    sent_us: clock.now(),
                };
                let data = stamp::audio(AUDIO_PAYLOAD, s);
                if let Some(w) = peer.rtc.writer(m.audio_mid) {
                    w.write(
                        pt,
                        now,
                        MediaTime::new(m.audio_rtp, Frequency::FORTY_EIGHT_KHZ),
                        data,
                    )?;
                    sent += 1;
                }
                peer.drain(&mut self.events)?;
                m.audio_seq = m.audio_seq.wrapping_add(1);
                m.audio_rtp += 960;
                m.next_audio += AUDIO_INTERVAL;
            }
        }
        if let (Some(pt), Some(mid)) = (m.vp8, m.video_mid) {
            if m.flood_max || now.saturating_duration_since(m.next_video) > MAX_LAG {
                m.next_video = now;
            }
            while m.next_video <= now {
                for vs in &mut m.video {
                    let keyframe = vs.want_keyframe
                        || vs
                            .last_keyframe
                            .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_EVERY);
                    if keyframe {
                        vs.want_keyframe = false;
                        vs.last_keyframe = Some(now);
                    }
                    // The frame's bytes as separate one-packet frames, the first carrying
                    // the keyframe flag.
                    let n = vs.bytes_per_frame.div_ceil(VIDEO_MAX_PAYLOAD).max(1);
                    let each = vs.bytes_per_frame / n;
                    for j in 0..n {
                        let s = Stamp {
                            stream: stamp::stream_key(publisher, vs.code),
                            seq: vs.seq,
                            sent_us: clock.now(),
                        };
                        let data = stamp::video(each, keyframe && j == 0, s);
                        let Some(w) = peer.rtc.writer(mid) else { break };
                        let w = match vs.rid {
                            Some(rid) => w.rid(rid),
                            None => w,
                        };
                        w.write(
                            pt,
                            now,
                            MediaTime::new(m.video_rtp + j as u64, Frequency::NINETY_KHZ),
                            data,
                        )?;
                        // str0m packetizes what was written on its next timeout, and
                        // refuses a 101st frame before that: hand it one now, so a burst
                        // (a flooder's, a catch-up after a stall) goes out as it is made.
                        peer.rtc.handle_input(Input::Timeout(now))?;
                        peer.drain(&mut self.events)?;
                        vs.seq = vs.seq.wrapping_add(1);
                        sent += 1;
                    }
                }
                m.video_rtp += (90_000.0 * m.video_interval.as_secs_f64()) as u64;
                m.next_video += m.video_interval;
            }
            if m.flood_max {
                // Due again at once: the worker comes straight back.
                m.next_video = now;
            }
        }
        if !flooding {
            shared.sent.fetch_add(sent, Ordering::Relaxed);
        }
        if !self.events.is_empty() {
            self.handle_events(TOKEN_PUB, shared);
        }
        Ok(())
    }

    /// Sends `leave` and closes the WebSocket.
    pub(super) fn leave(&mut self) {
        if self.left {
            return;
        }
        self.left = true;
        let _ = self.send(signal_request::Message::Leave(proto::LeaveRequest {
            reason: proto::DisconnectReason::ClientInitiated as i32,
            action: proto::leave_request::Action::Disconnect as i32,
            ..Default::default()
        }));
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
        for p in [self.sub.as_mut(), self.publ.as_mut()]
            .into_iter()
            .flatten()
        {
            p.rtc.disconnect();
        }
    }

    pub(super) fn report(self) -> Report {
        let ms = |t: Option<Instant>| t.map(|t| (t - self.started).as_secs_f64() * 1e3);
        // Per-participant timings on stderr, for diagnosing a slow join.
        if std::env::var_os("LOADGEN_SFU_DEBUG").is_some() {
            eprintln!(
                "{}: ws {:?} join {:?} sub {:?} pub {:?} first {:?}",
                self.spec.identity,
                ms(Some(self.ws_open)),
                ms(self.join_at),
                ms(self.sub.as_ref().and_then(|p| p.connected)),
                ms(self.publ.as_ref().and_then(|p| p.connected)),
                ms(self.first_pkt)
            );
        }
        Report {
            role: self.spec.role,
            behaviour: self.spec.behaviour,
            ws_ms: ms(Some(self.ws_open)),
            join_ms: ms(self.join_at),
            connected_ms: ms(self.connected_at()),
            first_pkt_ms: ms(self.first_pkt),
            streams: self.streams.into_values().collect(),
            flood_packets: self.flood_packets,
            flood_bytes: self.flood_bytes,
            stalled: self.stalled,
            error: self.error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StreamStat;

    #[test]
    fn loss_is_counted_inside_runs_of_a_layer() {
        let mut st = StreamStat::default();
        // 10..=19 with 15 missing: one lost.
        for seq in (10..20).filter(|s| *s != 15) {
            st.record(seq, false);
        }
        assert_eq!((st.expected(), st.received), (10, 9));
        // The server forwarded another layer for a while, then this one again from 40:
        // 20..=39 were not meant for this subscriber.
        for seq in 40..45 {
            st.record(seq, seq == 40);
        }
        assert_eq!((st.expected(), st.received), (15, 14));
        // Reordering inside a run still counts from the lowest sequence number.
        let mut st = StreamStat::default();
        for seq in [5, 3, 4, 6] {
            st.record(seq, false);
        }
        assert_eq!((st.expected(), st.received), (4, 4));
    }
}
