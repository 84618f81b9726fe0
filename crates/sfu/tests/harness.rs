//! The router with real str0m clients pumped in memory on a virtual clock: a publisher
//! offers audio and VP8 video, a subscriber answers the router's offer, and frames, keyframe
//! requests and data-channel messages must make it across with per-subscriber RTP state.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event as RtcEvent, Input, Output, Rtc};
use switchyard_sfu::{
    CongestionControl, Event, IngressLimit, LayerChoice, ParticipantId, PcMode, PcRole,
    PublisherOffer, Router, RouterConfig, SfuError, ShardId, Subscribe, SubscriberAnswer,
    TrackKind, TrackLabel,
};

const SFU: &str = "10.0.0.1:7882";

// Counts per thread, and only while switched on: `World` switches it on around the
// router's calls, so the clients' and the harness's own allocations are not counted.
#[global_allocator]
static ALLOC: switchyard_netio::counting::Counting = switchyard_netio::counting::Counting;

use switchyard_netio::counting;

/// Client SDP goes to the router as text, as it arrives from signalling.
fn parse_offer(sdp: &str) -> PublisherOffer {
    PublisherOffer::parse(sdp).expect("the client's offer parses")
}

fn parse_answer(sdp: &str) -> SubscriberAnswer {
    SubscriberAnswer::parse(sdp).expect("the client's answer parses")
}

struct Client {
    rtc: Rtc,
    addr: SocketAddr,
    timeout: Instant,
    events: Vec<RtcEvent>,
}

impl Client {
    fn new(addr: &str, now: Instant) -> Self {
        let addr: SocketAddr = addr.parse().unwrap();
        let mut rtc = Rtc::builder()
            .set_stats_interval(Some(Duration::from_millis(500)))
            .build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        Client {
            rtc,
            addr,
            timeout: now,
            events: Vec::new(),
        }
    }
}

/// Everything in flight: datagrams to the router, datagrams to clients.
struct World {
    now: Instant,
    router: Router,
    clients: Vec<Client>,
    router_events: Vec<Event>,
    /// Drop every n-th large (media) datagram the router sends to this client.
    loss_to: Option<(SocketAddr, u32)>,
    sent_large: u32,
    dropped: u32,
    /// A bottleneck on the way from the router to one client.
    bottleneck: Option<Bottleneck>,
    /// Heap allocations made inside the router's calls since the world began.
    router_allocs: u64,
    /// Media-sized datagrams (over 300 bytes) the router sent to each client.
    media_sent: std::collections::HashMap<SocketAddr, u64>,
}

/// A link of fixed capacity with a drop-tail queue: what a subscriber's slow downlink
/// looks like to the router's congestion control (queueing delay, then loss).
struct Bottleneck {
    to: SocketAddr,
    bits_per_sec: u64,
    /// Longest queueing delay before packets are dropped.
    max_queue: Duration,
    busy_until: Instant,
    queue: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
}

impl Bottleneck {
    fn new(to: SocketAddr, bits_per_sec: u64, now: Instant) -> Self {
        Bottleneck {
            to,
            bits_per_sec,
            max_queue: Duration::from_millis(200),
            busy_until: now,
            queue: VecDeque::new(),
        }
    }

    /// Queues a packet; false if the queue is full.
    fn push(&mut self, now: Instant, src: SocketAddr, bytes: Vec<u8>) -> bool {
        let start = self.busy_until.max(now);
        if start.saturating_duration_since(now) > self.max_queue {
            return false;
        }
        let wire = (bytes.len() as u64 + 28) * 8;
        let done = start + Duration::from_micros(wire * 1_000_000 / self.bits_per_sec);
        self.busy_until = done;
        self.queue.push_back((done, src, bytes));
        true
    }
}

impl World {
    fn new() -> Self {
        Self::with(CongestionControl::default())
    }

    fn with(congestion_control: CongestionControl) -> Self {
        Self::sharded(congestion_control, ShardId::default())
    }

    fn sharded(congestion_control: CongestionControl, shard: ShardId) -> Self {
        let now = Instant::now();
        World {
            now,
            router: Router::new(
                RouterConfig {
                    candidates: vec![SFU.parse().unwrap()],
                    tcp_candidates: Vec::new(),
                    ingress_limit: Some(IngressLimit::default()),
                    congestion_control,
                    shard,
                },
                now,
            ),
            clients: Vec::new(),
            router_events: Vec::new(),
            loss_to: None,
            sent_large: 0,
            dropped: 0,
            bottleneck: None,
            router_allocs: 0,
            media_sent: Default::default(),
        }
    }

    /// Runs `f` on the router, counting its heap allocations.
    fn counted<T>(&mut self, f: impl FnOnce(&mut Router) -> T) -> T {
        counting::start();
        let out = f(&mut self.router);
        self.router_allocs += counting::stop().allocs;
        out
    }

    /// Runs the network until quiet, then advances virtual time by `step`, `rounds` times.
    fn run(&mut self, rounds: usize, step: Duration) {
        for _ in 0..rounds {
            let mut to_router: VecDeque<(SocketAddr, Vec<u8>)> = VecDeque::new();
            let mut to_client: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)> = VecDeque::new();
            if let Some(b) = &mut self.bottleneck
                && let Some(c) = self.clients.iter_mut().find(|c| c.addr == b.to)
            {
                while b.queue.front().is_some_and(|(at, ..)| *at <= self.now) {
                    let (_, src, bytes) = b.queue.pop_front().unwrap();
                    let r = Receive {
                        proto: Protocol::Udp,
                        source: src,
                        destination: b.to,
                        contents: bytes.as_slice().try_into().unwrap(),
                    };
                    c.rtc
                        .handle_input(Input::Receive(self.now, r))
                        .expect("client input");
                }
            }
            loop {
                for c in &mut self.clients {
                    loop {
                        match c.rtc.poll_output().expect("client poll") {
                            Output::Timeout(t) => {
                                c.timeout = t;
                                break;
                            }
                            Output::Transmit(t) => {
                                to_router.push_back((c.addr, t.contents.to_vec()))
                            }
                            Output::Event(e) => c.events.push(e),
                        }
                    }
                }
                while let Some(t) = self.counted(|r| r.poll_transmit()) {
                    to_client.push_back((t.source, t.destination, t.contents.to_vec()));
                }
                while let Some(e) = self.counted(|r| r.poll_event()) {
                    self.router_events.push(e);
                }
                if to_router.is_empty() && to_client.is_empty() {
                    break;
                }
                while let Some((from, bytes)) = to_router.pop_front() {
                    let (sfu, now) = (SFU.parse().unwrap(), self.now);
                    self.counted(|r| r.handle_datagram(now, Protocol::Udp, from, sfu, &bytes));
                }
                while let Some((src, dst, bytes)) = to_client.pop_front() {
                    if bytes.len() > 300 {
                        *self.media_sent.entry(dst).or_default() += 1;
                    }
                    if let Some((lossy, nth)) = self.loss_to
                        && lossy == dst
                        && bytes.len() > 300
                    {
                        self.sent_large += 1;
                        if self.sent_large.is_multiple_of(nth) {
                            self.dropped += 1;
                            continue;
                        }
                    }
                    if let Some(b) = &mut self.bottleneck
                        && b.to == dst
                    {
                        if !b.push(self.now, src, bytes) {
                            self.dropped += 1;
                        }
                        continue;
                    }
                    if let Some(c) = self.clients.iter_mut().find(|c| c.addr == dst) {
                        let r = Receive {
                            proto: Protocol::Udp,
                            source: src,
                            destination: dst,
                            contents: bytes.as_slice().try_into().unwrap(),
                        };
                        c.rtc
                            .handle_input(Input::Receive(self.now, r))
                            .expect("client input");
                    }
                }
            }
            self.now += step;
            for c in &mut self.clients {
                if c.timeout <= self.now {
                    c.rtc
                        .handle_input(Input::Timeout(self.now))
                        .expect("client timeout");
                }
            }
            let now = self.now;
            self.counted(|r| r.handle_timeout(now));
        }
    }

    /// The publisher (client 0) writes VP8 frame `i` of `len` bytes at 30 fps, now; the
    /// first frame is a keyframe.
    fn write_vp8(&mut self, mid: Mid, pt: str0m::media::Pt, i: u64, len: usize) {
        let now = self.now;
        let wr = self.clients[0].rtc.writer(mid).unwrap();
        wr.write(
            pt,
            now,
            MediaTime::from_90khz(3000 * i),
            vp8_sized(i == 0, i as u8, len),
        )
        .unwrap();
    }

    fn take_router_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.router_events)
    }
}

fn pt_for(rtc: &mut Rtc, mid: Mid, codec: Codec) -> str0m::media::Pt {
    let w = rtc.writer(mid).expect("writer");
    w.payload_params()
        .find(|p| p.spec().codec == codec)
        .expect("codec negotiated")
        .pt()
}

/// A VP8 frame whose payload header marks it as a keyframe (P bit clear) or not.
fn vp8_frame(key: bool, n: u8) -> Vec<u8> {
    let mut f = vec![
        if key { 0x10 } else { 0x11 },
        0x02,
        0x00,
        0x9d,
        0x01,
        0x2a,
        0x40,
        0x01,
        0xf0,
        0x00,
    ];
    f.extend(std::iter::repeat_n(n, 200));
    f
}

struct Call {
    w: World,
    a: ParticipantId,
    b: ParticipantId,
    audio_mid: Mid,
    video_mid: Mid,
}

/// A publishes audio + video, B subscribes (and a participant without canSubscribe is
/// checked to be offered no media), everything connected.
fn call() -> Call {
    call_with(CongestionControl::default())
}

fn call_with(cc: CongestionControl) -> Call {
    let mut w = World::with(cc);

    // Publisher: participant A, whose publisher connection is a client-side offer.
    let a = w
        .router
        .add_participant("room", PcMode::Dual, Subscribe::Auto, w.now);
    w.clients.push(Client::new("10.0.0.2:5000", w.now));
    let (offer, pending, audio_mid, video_mid) = {
        let rtc = &mut w.clients[0].rtc;
        let mut api = rtc.sdp_api();
        let am = api.add_media(
            MediaKind::Audio,
            Direction::SendOnly,
            Some("sa".into()),
            Some("ta".into()),
            None,
        );
        let vm = api.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            Some("sv".into()),
            Some("tv".into()),
            None,
        );
        api.add_channel("_reliable".into());
        let (o, p) = api.apply().unwrap();
        (o, p, am, vm)
    };
    w.publisher_offers(a, 0, &offer, pending);
    // str0m reports incoming media once the connection is up. 1 ms steps: str0m's start-up
    // probes measure the rate the router's pacer achieved, and coarser steps would bunch
    // its packets into a rate that a real loop does not have.
    w.run(2000, Duration::from_millis(1));

    // The router reports the connection and both tracks; name them so they get forwarded.
    let events = w.take_router_events();
    assert!(
        events.contains(&Event::Connected {
            participant: a,
            role: PcRole::Publisher
        }),
        "{events:?}"
    );
    let opened: Vec<_> = events
        .into_iter()
        .filter_map(|e| match e {
            Event::TrackOpened {
                participant,
                track,
                kind,
                ..
            } if participant == a => Some((track, kind)),
            _ => None,
        })
        .collect();
    assert_eq!(opened.len(), 2, "{opened:?}");
    for (i, (track, _)) in opened.iter().enumerate() {
        let label = TrackLabel {
            stream_id: format!("PA_a|TR_{i}"),
            track_id: format!("TR_{i}"),
        };
        w.router.publish(*track, label).unwrap();
    }
    assert!(opened.iter().any(|(_, k)| *k == TrackKind::Video));

    // Subscriber B joins: the router offers it both tracks plus the data channels.
    let b = w
        .router
        .add_participant("room", PcMode::Dual, Subscribe::Auto, w.now);
    w.clients.push(Client::new("10.0.0.3:5000", w.now));
    w.run(1, Duration::from_millis(1));
    let mut offers: Vec<String> = w
        .take_router_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::SubscriberOffer { participant, sdp } if participant == b => Some(sdp),
            _ => None,
        })
        .collect();
    let sdp = offers.pop().expect("subscriber offer for B");

    // C may not subscribe (no canSubscribe grant): its offer carries the data channels only.
    let c = w
        .router
        .add_participant("room", PcMode::Dual, Subscribe::Never, w.now);
    w.run(1, Duration::from_millis(1));
    let c_offer = w
        .take_router_events()
        .into_iter()
        .find_map(|e| match e {
            Event::SubscriberOffer { participant, sdp } if participant == c => Some(sdp),
            _ => None,
        })
        .expect("subscriber offer for C");
    assert!(c_offer.contains("m=application"), "{c_offer}");
    assert!(
        !c_offer.contains("m=audio") && !c_offer.contains("m=video"),
        "{c_offer}"
    );
    w.router.remove_participant(c);
    assert!(
        sdp.contains("a=msid:PA_a|TR_0 TR_0") || sdp.contains("a=msid:PA_a|TR_1 TR_1"),
        "{sdp}"
    );
    let answer = w.clients[1]
        .rtc
        .sdp_api()
        .accept_offer(SdpOffer::from_sdp_string(&sdp).unwrap())
        .unwrap();
    w.router
        .handle_subscriber_answer(b, parse_answer(&answer.to_sdp_string()), w.now)
        .unwrap();

    // Let ICE, DTLS and SCTP come up (and str0m's start-up probes run: 1 ms steps, as above).
    w.run(2000, Duration::from_millis(1));
    let connected: Vec<_> = w
        .take_router_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Connected { participant, role } => Some((participant, role)),
            _ => None,
        })
        .collect();

    assert!(
        connected.contains(&(b, PcRole::Subscriber)),
        "{connected:?}"
    );

    Call {
        w,
        a,
        b,
        audio_mid,
        video_mid,
    }
}

#[test]
fn audio_video_and_data_cross_the_router() {
    let Call {
        mut w,
        a,
        b,
        audio_mid,
        video_mid,
    } = call();
    // A sends 50 audio frames and 20 video frames (a keyframe first).
    let apt = pt_for(&mut w.clients[0].rtc, audio_mid, Codec::Opus);
    let vpt = pt_for(&mut w.clients[0].rtc, video_mid, Codec::Vp8);
    for i in 0..50u64 {
        let now = w.now;
        let wr = w.clients[0].rtc.writer(audio_mid).unwrap();
        wr.write(
            apt,
            now,
            MediaTime::new(960 * i, Frequency::FORTY_EIGHT_KHZ),
            vec![0xfc; 60],
        )
        .unwrap();
        if i < 20 {
            let wr = w.clients[0].rtc.writer(video_mid).unwrap();
            wr.write(
                vpt,
                now,
                MediaTime::from_90khz(3000 * i),
                vp8_frame(i == 0, i as u8),
            )
            .unwrap();
        }
        w.run(2, Duration::from_millis(10));
    }
    w.run(20, Duration::from_millis(10));

    let b_client = &w.clients[1];
    let audio = b_client
        .events
        .iter()
        .filter(|e| matches!(e, RtcEvent::MediaData(d) if d.params.spec().codec == Codec::Opus))
        .count();
    let video: Vec<_> = b_client
        .events
        .iter()
        .filter_map(|e| match e {
            RtcEvent::MediaData(d) if d.params.spec().codec == Codec::Vp8 => Some(d),
            _ => None,
        })
        .collect();
    assert!(audio >= 40, "B got {audio} of 50 audio frames");
    assert!(
        video.len() >= 15,
        "B got {} of 20 video frames",
        video.len()
    );
    assert!(
        video[0].is_keyframe(),
        "first forwarded video frame is the keyframe"
    );
    // RTP time is rewritten continuously: strictly increasing, 3000 ticks apart.
    for pair in video.windows(2) {
        assert_eq!(pair[1].time.numer() - pair[0].time.numer(), 3000);
    }

    // Data: A's message on its publisher channel comes out as a router event; relay it to B.
    let cid = w.clients[0]
        .events
        .iter()
        .find_map(|e| match e {
            RtcEvent::ChannelOpen(id, l) if l == "_reliable" => Some(*id),
            _ => None,
        })
        .expect("A's channel open");
    w.clients[0]
        .rtc
        .channel(cid)
        .unwrap()
        .write(true, b"hello")
        .unwrap();
    w.run(5, Duration::from_millis(10));
    let data: Vec<_> = w
        .take_router_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Data {
                from,
                reliable,
                data,
            } if from == a => Some((reliable, data)),
            _ => None,
        })
        .collect();
    assert_eq!(data, vec![(true, b"hello".to_vec())]);
    assert!(w.router.send_data(b, true, b"relayed"));
    w.run(5, Duration::from_millis(10));
    let got = w.clients[1]
        .events
        .iter()
        .any(|e| matches!(e, RtcEvent::ChannelData(d) if d.data == b"relayed"));
    assert!(got, "B did not receive the relayed data");

    // A leaves: B is offered a renegotiation that stops the tracks.
    w.router.remove_participant(a);
    w.run(1, Duration::from_millis(1));
    let reoffer = w
        .take_router_events()
        .into_iter()
        .any(|e| matches!(e, Event::SubscriberOffer { participant, .. } if participant == b));
    assert!(reoffer, "no renegotiation after the publisher left");
}

/// A publisher's burst (eight one-packet video frames at once) reaches the subscriber in
/// the same turn of the network, without timer turns in between. With congestion control
/// on, str0m's pacer hands out one packet per timeout; the router must keep handling the
/// due timeouts itself, or a subscriber gets one packet per IO-loop turn and its queue
/// (latency) grows whenever more arrive.
#[test]
fn a_burst_reaches_the_subscriber_without_waiting_for_timer_turns() {
    let Call {
        mut w,
        b: _,
        video_mid,
        ..
    } = call();
    let vpt = pt_for(&mut w.clients[0].rtc, video_mid, Codec::Vp8);
    let now = w.now;
    let before = |w: &World| {
        w.clients[1]
            .events
            .iter()
            .filter(|e| matches!(e, RtcEvent::MediaData(d) if d.params.spec().codec == Codec::Vp8))
            .count()
    };
    let got_before = before(&w);
    for i in 0..8u64 {
        w.write_vp8(video_mid, vpt, i, 900);
        // The publisher packetizes on its timeout (no pacer on the client side).
        w.clients[0].rtc.handle_input(Input::Timeout(now)).unwrap();
    }
    // One turn: the publisher's packets go to the router, whatever it sends goes to B, then
    // a single router timeout at the same instant.
    w.run(1, Duration::ZERO);
    let got = before(&w) - got_before;
    assert_eq!(got, 8, "B got {got} of the 8 frames in one turn");
}

/// Every 12th media packet to the subscriber is lost: its NACKs reach the router, str0m
/// retransmits (RTX) from the subscriber's send buffer, and every frame still arrives whole.
/// (Congestion control is off: it would rightly slow down on an 8 % lossy link.)
/// (Above ~15 % retransmissions str0m stops resending on purpose, so the loss stays below.)
#[test]
fn losses_to_a_subscriber_are_repaired() {
    let Call {
        mut w,
        a,
        b,
        video_mid,
        ..
    } = call_with(CongestionControl {
        enabled: false,
        allow_pause: false,
    });
    // Whatever the call setup reported is not part of this test.
    let _ = (w.router.take_link_stats(a), w.router.take_link_stats(b));
    w.loss_to = Some((w.clients[1].addr, 12));
    let vpt = pt_for(&mut w.clients[0].rtc, video_mid, Codec::Vp8);
    for i in 0..30u64 {
        let now = w.now;
        // Frames of several packets each, so most frames lose one.
        let mut frame = vp8_frame(i == 0, i as u8);
        frame.extend(std::iter::repeat_n(i as u8, 3000));
        let wr = w.clients[0].rtc.writer(video_mid).unwrap();
        wr.write(vpt, now, MediaTime::from_90khz(3000 * i), frame)
            .unwrap();
        w.run(10, Duration::from_millis(10));
    }
    w.run(100, Duration::from_millis(10));
    assert!(w.dropped >= 8, "only {} packets dropped", w.dropped);
    let frames: Vec<_> = w.clients[1]
        .events
        .iter()
        .filter_map(|e| match e {
            RtcEvent::MediaData(d) if d.params.spec().codec == Codec::Vp8 => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(
        frames.len(),
        30,
        "frames lost for good (dropped {})",
        w.dropped
    );
    assert!(
        frames.iter().all(|f| f.data.len() == 3210),
        "a frame arrived damaged"
    );
    // Connection quality's input: B's receiver reports show the loss on its downlink;
    // A's uplink lost nothing.
    let b_link = w.router.take_link_stats(b).expect("stats for B");
    assert!(
        b_link.loss > 0.02 && b_link.loss < 0.3,
        "B's reported loss {b_link:?} with {} of its packets dropped",
        w.dropped
    );
    let a_link = w.router.take_link_stats(a).expect("stats for A");
    assert!(a_link.loss < 0.01, "A lost nothing: {a_link:?}");
    // Taken: nothing new until the next report.
    assert_eq!(w.router.take_link_stats(b), None);
}

impl World {
    /// The participant's latest subscriber offer since the last call, answered by client
    /// `client`; returns the offer's SDP.
    /// Participant `who` (client `client`) offers its publisher connection; the router's
    /// answer is applied.
    fn publisher_offers(
        &mut self,
        who: ParticipantId,
        client: usize,
        offer: &SdpOffer,
        pending: SdpPendingOffer,
    ) {
        let answer = self
            .router
            .handle_publisher_offer(who, parse_offer(&offer.to_sdp_string()), self.now)
            .expect("router answers");
        self.clients[client]
            .rtc
            .sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
            .unwrap();
    }

    fn answer_offer(&mut self, who: ParticipantId, client: usize) -> String {
        self.run(1, Duration::from_millis(1));
        let sdp = self
            .take_router_events()
            .into_iter()
            .filter_map(|e| match e {
                Event::SubscriberOffer { participant, sdp } if participant == who => Some(sdp),
                _ => None,
            })
            .next_back()
            .expect("a subscriber offer");
        let answer = self.clients[client]
            .rtc
            .sdp_api()
            .accept_offer(SdpOffer::from_sdp_string(&sdp).unwrap())
            .unwrap();
        self.router
            .handle_subscriber_answer(who, parse_answer(&answer.to_sdp_string()), self.now)
            .unwrap();
        self.run(200, Duration::from_millis(1));
        sdp
    }
}

/// A participant that joined with `autoSubscribe: false` receives nothing until it names a
/// track, then exactly that track; unsubscribing renegotiates the m-line away.
#[test]
fn manual_subscriptions_add_and_remove_single_tracks() {
    let Call { mut w, a, b, .. } = call();
    // B (auto) receives both of A's tracks: that is where their router ids come from.
    let tracks: Vec<_> = w.router.outgoing(b).into_iter().map(|(_, t)| t).collect();
    assert_eq!(tracks.len(), 2, "{tracks:?}");

    let d = w
        .router
        .add_participant("room", PcMode::Dual, Subscribe::Manual, w.now);
    w.clients.push(Client::new("10.0.0.4:5000", w.now));
    let first = w.answer_offer(d, 2);
    assert!(
        !first.contains("m=audio") && !first.contains("m=video"),
        "{first}"
    );
    assert!(!w.router.is_subscribed(d, tracks[0]));

    w.router.subscribe(d, tracks[0]).unwrap();
    // Twice is fine and adds nothing.
    w.router.subscribe(d, tracks[0]).unwrap();
    assert!(w.router.is_subscribed(d, tracks[0]));
    assert!(!w.router.is_subscribed(d, tracks[1]));
    let second = w.answer_offer(d, 2);
    let media = second.matches("\nm=audio").count() + second.matches("\nm=video").count();
    assert_eq!(media, 1, "{second}");
    assert_eq!(w.router.outgoing(d).len(), 1);

    w.router.unsubscribe(d, tracks[0]).unwrap();
    assert!(!w.router.is_subscribed(d, tracks[0]));
    let third = w.answer_offer(d, 2);
    assert!(
        third.contains("a=inactive") || third.contains(" 0 UDP"),
        "{third}"
    );
    assert!(w.router.outgoing(d).is_empty());

    // A participant without the grant cannot be subscribed, even by the server.
    let e = w
        .router
        .add_participant("room", PcMode::Dual, Subscribe::Never, w.now);
    assert!(matches!(
        w.router.subscribe(e, tracks[0]),
        Err(SfuError::NotAllowed)
    ));
    // Nor can a publisher subscribe to its own track.
    assert!(matches!(
        w.router.subscribe(a, tracks[0]),
        Err(SfuError::NoTrack)
    ));
}

/// A client's first ICE checks usually arrive before its answer (the answer takes the
/// WebSocket, the checks go straight to the media port). They must not be lost: the
/// connection comes up as soon as the answer is in, not a retransmission later.
#[test]
fn checks_that_beat_the_answer_are_kept() {
    let mut w = World::new();
    let d = w
        .router
        .add_participant("room", PcMode::Dual, Subscribe::Auto, w.now);
    w.clients.push(Client::new("10.0.0.5:5000", w.now));
    w.run(1, Duration::from_millis(1));
    let sdp = w
        .take_router_events()
        .into_iter()
        .find_map(|e| match e {
            Event::SubscriberOffer { participant, sdp } if participant == d => Some(sdp),
            _ => None,
        })
        .expect("subscriber offer");
    let answer = w.clients[0]
        .rtc
        .sdp_api()
        .accept_offer(SdpOffer::from_sdp_string(&sdp).unwrap())
        .unwrap();
    // The client checks for 20 ms before its answer reaches the router. A browser starts
    // checking as soon as it has applied the offer; a str0m client waits for its next
    // timeout, so it is handed one now.
    w.clients[0]
        .rtc
        .handle_input(Input::Timeout(w.now))
        .unwrap();
    w.run(4, Duration::from_millis(5));
    w.router
        .handle_subscriber_answer(d, parse_answer(&answer.to_sdp_string()), w.now)
        .unwrap();
    let start = w.now;
    let mut up = None;
    for _ in 0..100 {
        w.run(1, Duration::from_millis(5));
        let connected = w.take_router_events().into_iter().any(|e| {
            e == Event::Connected {
                participant: d,
                role: PcRole::Subscriber,
            }
        });
        if connected {
            up = Some(w.now - start);
            break;
        }
    }
    let up = up.expect("subscriber connection never came up");
    assert!(up <= Duration::from_millis(60), "came up after {up:?}");
}

/// A VP8 frame of `len` bytes filled with `fill` (which tells the layer apart on receipt).
fn vp8_sized(key: bool, fill: u8, len: usize) -> Vec<u8> {
    let mut f = vp8_frame(key, fill);
    f.resize(len, fill);
    f
}

/// Simulcast rids, lowest first, and the size of each layer's frames (at 30 fps about 0.1,
/// 0.3 and 1.2 Mbit/s).
const RIDS: [&str; 3] = ["q", "h", "f"];
const SIZES: [usize; 3] = [400, 1250, 5000];

/// A room with congestion control on: A publishes one simulcast video track, and one
/// subscriber per address in `subscribers` receives it (clients 1, 2, ...).
struct SimulcastRoom {
    w: World,
    track: switchyard_sfu::TrackId,
    mid: Mid,
    pt: str0m::media::Pt,
    subs: Vec<ParticipantId>,
    frame: u64,
}

impl SimulcastRoom {
    fn new(subscribers: &[&str]) -> Self {
        use str0m::media::{Simulcast, SimulcastLayer};
        let mut w = World::with(CongestionControl {
            enabled: true,
            allow_pause: true,
        });
        let a = w
            .router
            .add_participant("room", PcMode::Dual, Subscribe::Auto, w.now);
        w.clients.push(Client::new("10.0.0.2:5000", w.now));
        let (offer, pending, mid) = {
            let mut api = w.clients[0].rtc.sdp_api();
            let mut sim = Simulcast::new();
            for rid in RIDS {
                sim.add_send_layer(SimulcastLayer::new(rid));
            }
            let mid = api.add_media(
                MediaKind::Video,
                Direction::SendOnly,
                Some("sv".into()),
                Some("tv".into()),
                Some(sim),
            );
            let (o, p) = api.apply().unwrap();
            (o, p, mid)
        };
        w.publisher_offers(a, 0, &offer, pending);
        w.run(100, Duration::from_millis(10));
        let track = w
            .take_router_events()
            .into_iter()
            .find_map(|e| match e {
                Event::TrackOpened { track, rids, .. } => {
                    assert_eq!(rids, RIDS);
                    Some(track)
                }
                _ => None,
            })
            .expect("the video track opens");
        w.router
            .publish(
                track,
                TrackLabel {
                    stream_id: "PA_a|TR_v".into(),
                    track_id: "TR_v".into(),
                },
            )
            .unwrap();
        let mut subs = Vec::new();
        for (i, addr) in subscribers.iter().enumerate() {
            let id = w
                .router
                .add_participant("room", PcMode::Dual, Subscribe::Auto, w.now);
            w.clients.push(Client::new(addr, w.now));
            w.answer_offer(id, i + 1);
            subs.push(id);
        }
        w.run(100, Duration::from_millis(10));
        let pt = pt_for(&mut w.clients[0].rtc, mid, Codec::Vp8);
        SimulcastRoom {
            w,
            track,
            mid,
            pt,
            subs,
            frame: 0,
        }
    }

    /// Publishes for `secs` of virtual time at 30 fps, a keyframe on every layer twice a
    /// second.
    fn publish(&mut self, secs: u64) {
        use str0m::media::Rid;
        let w = &mut self.w;
        for _ in 0..secs * 30 {
            let key = self.frame.is_multiple_of(15);
            for (l, rid) in RIDS.into_iter().enumerate() {
                let data = vp8_sized(key, l as u8 + 1, SIZES[l]);
                let now = w.now;
                let wr = w.clients[0]
                    .rtc
                    .writer(self.mid)
                    .unwrap()
                    .rid(Rid::from(rid));
                wr.write(self.pt, now, MediaTime::from_90khz(3000 * self.frame), data)
                    .unwrap();
            }
            self.frame += 1;
            // 1 ms network steps: the router's pacer sends what is due at each step, so
            // coarser steps would bunch its packets (and its probes) unrealistically.
            w.run(33, Duration::from_micros(33_333 / 33));
        }
    }

    /// Which layers client `client` got (by fill byte) since the last call.
    fn layers_seen(&mut self, client: usize) -> [usize; 3] {
        let mut n = [0; 3];
        for e in self.w.clients[client].events.drain(..) {
            if let RtcEvent::MediaData(d) = e
                && let Some(&fill) = d.data.get(100)
                && (1..=3).contains(&fill)
            {
                n[usize::from(fill) - 1] += 1;
            }
        }
        n
    }
}

/// B watches the middle layer for a while, so its estimate settles far below the top
/// layer: str0m lets it grow to about 1.5 times what is sent, and probes on its own only
/// when the sender uses less than about 65 % of it, which the middle layer does not. Then
/// B asks for the top layer: the router probes the link because a layer is held back, and
/// B gets the top layer within seconds instead of waiting for str0m's stagnation probe
/// (15 s of an unchanged estimate).
#[test]
fn a_subscriber_held_at_a_low_layer_probes_its_way_up() {
    let mut room = SimulcastRoom::new(&["10.0.0.3:5000"]);
    let b = room.subs[0];
    let track = room.track;
    room.w
        .router
        .set_layer(b, track, LayerChoice::UpTo(1))
        .unwrap();
    room.publish(8);
    let at_b = room.layers_seen(1);
    let low = room.w.router.bandwidth_estimate(b).unwrap();
    assert!(at_b[1] >= 200 && at_b[2] <= 20, "B got {at_b:?}");
    assert!(
        low < 1_000_000,
        "B's estimate after the middle layer: {low}"
    );

    room.w
        .router
        .set_layer(b, track, LayerChoice::UpTo(2))
        .unwrap();
    room.publish(6);
    let _ = room.layers_seen(1);
    room.publish(2);
    let at_b = room.layers_seen(1);
    assert!(
        at_b[2] >= 55,
        "B got {at_b:?} 6 s after asking for the top layer (estimate {low} -> {:?})",
        room.w.router.bandwidth_estimate(b)
    );
}

/// A publisher sends three simulcast layers (about 0.1, 0.3 and 1.2 Mbit/s). B's downlink
/// is unconstrained, C's is a 700 kbit/s bottleneck: the router's TWCC estimate for C falls
/// and C is moved to the middle layer while B keeps the top one. At 40 kbit/s not even the
/// lowest layer fits: C's copy is paused and the router says so (stream state), and it
/// resumes when the link recovers.
#[test]
fn bandwidth_estimates_choose_layers_and_pause_what_does_not_fit() {
    let mut room = SimulcastRoom::new(&["10.0.0.3:5000", "10.0.0.4:5000"]);
    let (b, c, track) = (room.subs[0], room.subs[1], room.track);
    let c_addr = room.w.clients[2].addr;
    room.w.bottleneck = Some(Bottleneck::new(c_addr, 700_000, room.w.now));
    room.publish(12);
    let _ = (room.layers_seen(1), room.layers_seen(2));
    room.publish(4);
    let (at_b, at_c) = (room.layers_seen(1), room.layers_seen(2));
    let (est_b, est_c) = (
        room.w.router.bandwidth_estimate(b).unwrap(),
        room.w.router.bandwidth_estimate(c).unwrap(),
    );
    assert!(
        est_c < 700_000 && est_b > 1_300_000,
        "estimates B {est_b} C {est_c}"
    );
    // 4 s at 30 fps: nearly all of B's frames are the top layer; C never gets it and mostly
    // gets the middle one (a probe into C's full queue may cut its estimate below the
    // middle layer for a moment, as it would on a real link).
    assert!(at_b[2] >= 100 && at_b[0] + at_b[1] <= 5, "B got {at_b:?}");
    assert!(
        at_c[1] >= 80 && at_c[2] == 0,
        "C got {at_c:?} (estimate {est_c})"
    );
    assert!(
        !room
            .w
            .take_router_events()
            .iter()
            .any(|e| matches!(e, Event::StreamState { .. })),
        "nothing was paused yet"
    );

    // 40 kbit/s: not even the lowest layer (~110 kbit/s with headers) fits.
    room.w.bottleneck.as_mut().unwrap().bits_per_sec = 40_000;
    room.publish(8);
    let paused: Vec<_> = room
        .w
        .take_router_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::StreamState {
                subscriber,
                track: t,
                paused,
            } => Some((subscriber, t, paused)),
            _ => None,
        })
        .collect();
    let est_c = room.w.router.bandwidth_estimate(c);
    assert_eq!(paused, [(c, track, true)], "estimate {est_c:?}");
    let _ = (room.layers_seen(1), room.layers_seen(2));
    room.w.run(20, Duration::from_millis(10));
    let _ = room.layers_seen(2);
    room.publish(1);
    assert_eq!(
        room.layers_seen(2),
        [0, 0, 0],
        "C still receives while paused"
    );
    assert!(room.layers_seen(1)[2] >= 25, "B is not affected");

    // The link recovers: C's copy resumes (on a keyframe; the router retries a paused
    // track after a while, since nothing sent means nothing measured) and climbs back to
    // the top layer.
    room.w.bottleneck.as_mut().unwrap().bits_per_sec = 10_000_000;
    room.publish(12);
    let resumed = room.w.take_router_events().into_iter().any(|e| {
        e == Event::StreamState {
            subscriber: c,
            track,
            paused: false,
        }
    });
    let _ = room.layers_seen(2);
    room.publish(3);
    let at_c = room.layers_seen(2);
    assert!(
        resumed,
        "no resume; estimate {:?}",
        room.w.router.bandwidth_estimate(c)
    );
    assert!(at_c[2] >= 80, "C got {at_c:?} after recovery");
}

/// Heap allocations per forwarded video packet, counted inside the router's calls only:
/// the publisher side, forwarding, the subscriber's send path and 1 ms timer ticks, str0m's
/// work and ours, with one subscriber and one packet per frame.
///
/// The goal is none, and the router's own code no longer allocates per frame or per tick
/// (it made 2 allocations per frame and about 2.3 per timer tick before). The rest is
/// str0m's API: every `Transmit` owns a fresh `Vec`, SRTP decryption and depacketizing
/// allocate per packet, every frame arrives as a `MediaData` owning its payload, and a
/// subscriber's writer takes the frame as an owned `Vec` (our one clone per frame per
/// subscriber). The count is deterministic (18.02 per packet with str0m 0.23.1); the bound
/// leaves less than one per packet of room, so any allocation added per frame fails this
/// test. A str0m upgrade may move the figure: measure again then.
#[test]
fn forwarding_allocates_no_more_than_str0m_needs() {
    let Call {
        mut w, video_mid, ..
    } = call();
    let vpt = pt_for(&mut w.clients[0].rtc, video_mid, Codec::Vp8);
    let b_addr = w.clients[1].addr;
    let frame = |w: &mut World, i: u64| {
        // One packet a frame: an allocation added per frame is one per packet.
        w.write_vp8(video_mid, vpt, i, 900);
        w.run(33, Duration::from_millis(1));
    };
    // Warm up: connection set-up, first keyframe, buffers and maps at their working size.
    for i in 0..60 {
        frame(&mut w, i);
    }
    let (allocs, sent) = (w.router_allocs, w.media_sent[&b_addr]);
    for i in 60..160 {
        frame(&mut w, i);
    }
    let allocs = w.router_allocs - allocs;
    let sent = w.media_sent[&b_addr] - sent;
    assert!(sent >= 95, "only {sent} media packets forwarded");
    let per_packet = allocs as f64 / sent as f64;
    eprintln!(
        "router: {allocs} allocations for {sent} forwarded packets, {per_packet:.2} per packet"
    );
    assert!(
        per_packet <= 18.5,
        "{per_packet:.2} allocations per forwarded packet (was 18.02)"
    );
}

/// The first character of every ICE ufrag a router hands out names it (how a media thread
/// finds the hub of a datagram another thread's socket received), and stays so when the
/// client restarts ICE: str0m answers a restart with random credentials, the router puts its
/// tag back, and the connection comes up again on the tagged ones.
#[test]
fn ice_credentials_name_the_router_across_a_restart() {
    let shard = ShardId::new(5).unwrap();
    let mut w = World::sharded(CongestionControl::default(), shard);
    let a = w
        .router
        .add_participant("room", PcMode::Dual, Subscribe::Never, w.now);
    w.clients.push(Client::new("10.0.0.2:5000", w.now));
    let ufrag = |sdp: &str| {
        sdp.lines()
            .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
            .expect("an ice-ufrag")
            .trim()
            .to_owned()
    };
    let mut answers = Vec::new();
    // A first offer, an ICE restart, then a renegotiation after the restart.
    for (round, kind) in [MediaKind::Audio, MediaKind::Audio, MediaKind::Video]
        .into_iter()
        .enumerate()
    {
        let restart = round == 1;
        let (offer, pending) = {
            let mut api = w.clients[0].rtc.sdp_api();
            if restart {
                api.ice_restart(true);
            } else {
                api.add_media(kind, Direction::SendOnly, None, None, None);
            }
            api.apply().expect("a change to offer")
        };
        let answer = w
            .router
            .handle_publisher_offer(a, parse_offer(&offer.to_sdp_string()), w.now)
            .expect("router answers");
        w.clients[0]
            .rtc
            .sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
            .unwrap();
        w.clients[0]
            .rtc
            .handle_input(Input::Timeout(w.now))
            .unwrap();
        w.clients[0].events.clear();
        w.run(300, Duration::from_millis(1));
        // ICE checks succeed on our (tagged) credentials: the client reaches Completed, and
        // a later renegotiation leaves it there.
        let states: Vec<_> = w.clients[0]
            .events
            .iter()
            .filter_map(|e| match e {
                RtcEvent::IceConnectionStateChange(s) => Some(*s),
                _ => None,
            })
            .collect();
        let want: &[str0m::IceConnectionState] = match round {
            2 => &[],
            _ => &[
                str0m::IceConnectionState::Checking,
                str0m::IceConnectionState::Completed,
            ],
        };
        assert_eq!(states, want, "round {round}");
        // Every ufrag the answer names (the candidates' too) is the tagged one.
        let u = ufrag(&answer);
        for line in answer.lines().filter(|l| l.contains("ufrag")) {
            assert!(line.contains(&u), "{line} in\n{answer}");
        }
        answers.push(u);
    }
    assert_ne!(answers[0], answers[1], "the restart kept the old ufrag");
    assert_eq!(answers[1], answers[2]);
    for u in &answers {
        assert!(u.starts_with('5'), "ufrag {u} does not name router 5");
    }
}
