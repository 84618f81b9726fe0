//! LiveKit rooms and participants over the router: what `JoinResponse`, `ParticipantUpdate`,
//! `TrackInfo` and the Twirp API report, and the glue that turns router events into
//! signalling messages.
//!
//! Each `Hub` holds some of the rooms (see [`crate::shards`]) and sits behind a mutex
//! shared by those rooms' WebSocket sessions, the Twirp handlers and its media thread. Every method that touches the router ends with [`Hub::flush`], which sends
//! what the router wants sent and acts on its events, so nothing waits for the UDP thread.

// Deprecated protocol fields (TrackInfo.layers/simulcast, UserPacket.participant_*) are
// still what older SDKs read, so they are filled in alongside their replacements.
#![allow(deprecated)]

use std::collections::{BTreeMap, HashMap};
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use livekit_protocol as proto;
use prost::Message;
use proto::{DataPacket, ParticipantInfo, SignalResponse, TrackInfo, signal_response};
use switchyard_sfu::{
    Event, LayerChoice, ParticipantId, PcMode, Protocol, Router, Subscribe, TrackId, TrackKind,
    TrackLabel, Transmit,
};
use tokio::sync::mpsc::UnboundedSender;

use crate::settings::Settings;

mod admin;
mod claims;
mod dynacast;
mod quality;
mod refresh;
mod subscriptions;
use crate::token::Claims;
use crate::webhook::Webhooks;
pub(crate) use subscriptions::SubscriptionError;

/// What a session task is told to do.
#[derive(Debug)]
pub(crate) enum Outbound {
    Signal(Box<SignalResponse>),
    /// Close the WebSocket (after a server-initiated leave).
    Close,
}

pub(crate) type Tx = UnboundedSender<Outbound>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignalPath {
    /// `/rtc`: publisher + subscriber connections.
    V0,
    /// `/rtc/v1` (or `/rtc` with `join_request`): one connection, the client offers.
    V1,
}

pub(crate) struct Published {
    pub(crate) info: TrackInfo,
    pub(crate) router: Option<TrackId>,
    /// Dynacast: the highest layer rank anyone watches, as last told to the publisher
    /// (`None` inside: nobody; outer `None`: never told).
    pub(crate) watched: Option<Option<usize>>,
}

pub(crate) struct Participant {
    pub(crate) info: ParticipantInfo,
    pub(crate) claims: Claims,
    pub(crate) router: ParticipantId,
    pub(crate) tracks: Vec<Published>,
    /// Set while a WebSocket session drives this participant.
    pub(crate) tx: Option<Tx>,
    /// Bumped on every new session so a stale session's cleanup is a no-op.
    pub(crate) session: u64,
    /// The connection-quality grade last sent to the room.
    quality: Option<quality::Grade>,
    next_offer_id: u32,
    /// When the participant was last handed a `refresh_token` (see [`refresh`]).
    token_sent: Option<Instant>,
}

pub(crate) struct Room {
    pub(crate) info: proto::Room,
    /// Each subscriber's layer choice per track sid, from `UpdateTrackSettings`
    /// (`None`: paused). Absent means the default, the top layer.
    pub(crate) choices: HashMap<(String, String), Option<usize>>,
    pub(crate) participants: BTreeMap<String, Participant>,
    /// When the room last became (or was created) empty.
    pub(crate) empty_since: Option<Instant>,
    pub(crate) ever_joined: bool,
    /// Participant sids last reported as speaking.
    speaking: Vec<String>,
}

pub(crate) struct Hub {
    pub(crate) settings: Arc<Settings>,
    router: Router,
    socket: Arc<UdpSocket>,
    pub(crate) rooms: HashMap<String, Room>,
    by_router: HashMap<ParticipantId, (String, String)>,
    next_session: u64,
    /// ICE-TCP datagrams for the first media thread, which owns the TCP connections.
    tcp_out: Vec<Transmit>,
    /// `webhook:` configured: lifecycle events go out from here.
    webhooks: Option<Webhooks>,
    /// Media counters for `/metrics`, shared by every hub and added to by the media threads.
    pub(crate) counters: Arc<switchyard_telemetry::livekit::SfuCounters>,
}

pub(crate) fn unix_now() -> (i64, i64) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.as_millis() as i64)
}

/// Linear audio level (about -36 dBov) from which a participant counts as speaking.
const SPEAKING_LEVEL: f32 = 0.016;

/// A LiveKit-style id: prefix plus 12 random base62 characters.
pub(crate) fn new_sid(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut raw = [0u8; 12];
    getrandom::getrandom(&mut raw).expect("OS randomness");
    let tail: String = raw
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("{prefix}{tail}")
}

fn signal(m: signal_response::Message) -> Outbound {
    Outbound::Signal(Box::new(SignalResponse { message: Some(m) }))
}

pub(crate) fn server_info() -> proto::ServerInfo {
    proto::ServerInfo {
        edition: proto::server_info::Edition::Standard as i32,
        version: crate::SERVER_VERSION.into(),
        protocol: crate::PROTOCOL_VERSION,
        node_id: "switchyard".into(),
        ..Default::default()
    }
}

/// Refusals a join can meet, with the HTTP status `/rtc` answers before upgrading.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JoinError {
    #[error("requested room does not exist")]
    RoomNotFound,
    #[error("permissions denied: no roomJoin grant")]
    NoRoomJoin,
    #[error("missing participant identity")]
    NoIdentity,
    #[error("participant not found for reconnect")]
    NoSuchParticipant,
}

impl Hub {
    /// `webhooks` and `counters` are shared by every hub of the process.
    pub(crate) fn new(
        settings: Arc<Settings>,
        socket: Arc<UdpSocket>,
        router: Router,
        webhooks: Option<Webhooks>,
        counters: Arc<switchyard_telemetry::livekit::SfuCounters>,
    ) -> Self {
        Hub {
            webhooks,
            settings,
            router,
            socket,
            rooms: HashMap::new(),
            by_router: HashMap::new(),
            next_session: 1,
            tcp_out: Vec::new(),
            counters,
        }
    }

    pub(crate) fn router(&mut self) -> &mut Router {
        &mut self.router
    }

    /// The checks `/rtc` and `/rtc/validate` make before upgrading.
    pub(crate) fn validate_join(&self, claims: &Claims) -> Result<(), JoinError> {
        if !claims.video.room_join {
            return Err(JoinError::NoRoomJoin);
        }
        if claims.identity().is_empty() {
            return Err(JoinError::NoIdentity);
        }
        if !self.rooms.contains_key(&claims.video.room)
            && !self.settings.auto_create
            && !claims.video.room_create
        {
            return Err(JoinError::RoomNotFound);
        }
        Ok(())
    }

    /// Queues a webhook about `room` (its current counts), if webhooks are configured.
    fn hook(
        &self,
        event: &str,
        room: &str,
        participant: Option<&ParticipantInfo>,
        track: Option<&proto::TrackInfo>,
    ) {
        let (Some(hooks), Some(r)) = (&self.webhooks, self.rooms.get(room)) else {
            return;
        };
        hooks.send(
            event,
            self.room_info(r),
            participant.cloned(),
            track.cloned(),
        );
    }

    /// Removes a room for good (reaped when empty, or Twirp `DeleteRoom` after its
    /// participants were removed): `room_finished`.
    pub(crate) fn finish_room(&mut self, name: &str) {
        self.hook("room_finished", name, None, None);
        self.rooms.remove(name);
    }

    /// Creates a room (idempotent), as Twirp `CreateRoom` and an auto-creating join do.
    pub(crate) fn create_room(&mut self, name: &str) -> &mut Room {
        if !self.rooms.contains_key(name) {
            self.new_room(name);
            self.hook("room_started", name, None, None);
        }
        self.rooms.get_mut(name).expect("created above")
    }

    fn new_room(&mut self, name: &str) {
        let settings = &self.settings;
        self.rooms.entry(name.to_owned()).or_insert_with(|| {
            let (secs, ms) = unix_now();
            tracing::info!(room = name, "room created");
            Room {
                info: proto::Room {
                    sid: new_sid("RM_"),
                    name: name.to_owned(),
                    empty_timeout: settings.empty_timeout.as_secs() as u32,
                    departure_timeout: settings.departure_timeout.as_secs() as u32,
                    creation_time: secs,
                    creation_time_ms: ms,
                    ..Default::default()
                },
                participants: BTreeMap::new(),
                choices: HashMap::new(),
                empty_since: Some(Instant::now()),
                ever_joined: false,
                speaking: Vec::new(),
            }
        });
    }

    /// Joins a participant: sends `join` first, then the subscriber offer, and tells the
    /// others. Returns the participant's sid and session number.
    pub(crate) fn join(
        &mut self,
        claims: Claims,
        tx: Tx,
        path: SignalPath,
        auto_subscribe: bool,
    ) -> Result<(String, u64), JoinError> {
        self.validate_join(&claims)?;
        let room_name = claims.video.room.clone();
        let identity = claims.identity().to_owned();
        // A second session with the same identity replaces the first, as LiveKit does.
        if self
            .rooms
            .get(&room_name)
            .is_some_and(|r| r.participants.contains_key(&identity))
        {
            self.remove_participant(
                &room_name,
                &identity,
                Some(proto::DisconnectReason::DuplicateIdentity),
            );
        }
        self.create_room(&room_name);
        let now = Instant::now();
        let mode = match path {
            SignalPath::V0 => PcMode::Dual,
            SignalPath::V1 => PcMode::Single,
        };
        let subscribe = match (claims.video.can_subscribe(), auto_subscribe) {
            (false, _) => Subscribe::Never,
            (true, true) => Subscribe::Auto,
            (true, false) => Subscribe::Manual,
        };
        let router_id = self
            .router
            .add_participant(&room_name, mode, subscribe, now);
        let (secs, ms) = unix_now();
        let info = ParticipantInfo {
            sid: new_sid("PA_"),
            identity: identity.clone(),
            state: proto::participant_info::State::Joined as i32,
            metadata: claims.metadata.clone(),
            joined_at: secs,
            joined_at_ms: ms,
            name: claims.name.clone(),
            version: 1,
            permission: Some(claims.video.to_permission()),
            attributes: claims.attributes.clone(),
            ..Default::default()
        };
        let sid = info.sid.clone();
        let session = self.next_session;
        self.next_session += 1;
        let room = self.rooms.get_mut(&room_name).expect("created above");
        room.ever_joined = true;
        room.empty_since = None;
        let others: Vec<ParticipantInfo> = room
            .participants
            .values()
            .filter(|p| !p.claims.video.hidden)
            .map(|p| p.info.clone())
            .collect();
        let mut room_info = room.info.clone();
        room_info.num_participants = room.participants.len() as u32 + 1;
        let join = proto::JoinResponse {
            room: Some(room_info),
            participant: Some(info.clone()),
            other_participants: others,
            server_version: crate::SERVER_VERSION.into(),
            subscriber_primary: path == SignalPath::V0,
            ping_timeout: crate::signal::PING_TIMEOUT.as_secs() as i32,
            ping_interval: 5,
            server_info: Some(server_info()),
            ice_servers: self
                .settings
                .ice_servers
                .iter()
                .map(|s| s.for_participant(&sid, SystemTime::now()))
                .collect(),
            client_configuration: Some(proto::ClientConfiguration {
                resume_connection: proto::ClientConfigSetting::Enabled as i32,
                ..Default::default()
            }),
            ..Default::default()
        };
        let _ = tx.send(signal(signal_response::Message::Join(join)));
        tracing::info!(room = room_name, identity, sid, ?path, "participant joined");
        room.participants.insert(
            identity.clone(),
            Participant {
                info: info.clone(),
                claims,
                router: router_id,
                tracks: Vec::new(),
                tx: Some(tx),
                session,
                quality: None,
                next_offer_id: 1,
                token_sent: None,
            },
        );
        self.by_router
            .insert(router_id, (room_name.clone(), identity.clone()));
        // The joining token may be about to expire: hand over a fresh one right away.
        self.send_refresh_token(&room_name, &identity, now);
        self.hook("participant_joined", &room_name, Some(&info), None);
        self.dynacast(&room_name);
        if !info.permission.as_ref().is_some_and(|p| p.hidden) {
            self.broadcast_update(&room_name, vec![info], Some(&sid));
        }
        self.flush();
        Ok((sid, session))
    }

    /// Resumes a participant whose WebSocket dropped (`reconnect=1&sid=`).
    pub(crate) fn resume(&mut self, claims: &Claims, sid: &str, tx: Tx) -> Result<u64, JoinError> {
        let room = self
            .rooms
            .get_mut(&claims.video.room)
            .ok_or(JoinError::NoSuchParticipant)?;
        let p = room
            .participants
            .get_mut(claims.identity())
            .filter(|p| p.info.sid == sid)
            .ok_or(JoinError::NoSuchParticipant)?;
        let session = self.next_session;
        self.next_session += 1;
        p.session = session;
        let _ = tx.send(signal(signal_response::Message::Reconnect(
            proto::ReconnectResponse {
                server_info: Some(server_info()),
                ice_servers: self
                    .settings
                    .ice_servers
                    .iter()
                    .map(|s| s.for_participant(sid, SystemTime::now()))
                    .collect(),
                client_configuration: Some(proto::ClientConfiguration {
                    resume_connection: proto::ClientConfigSetting::Enabled as i32,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )));
        p.tx = Some(tx);
        tracing::info!(
            room = claims.video.room,
            identity = claims.identity(),
            "participant resumed"
        );
        // As on join: the token the client resumed with may be its last.
        self.send_refresh_token(&claims.video.room, claims.identity(), Instant::now());
        Ok(session)
    }

    /// A session ended without a leave: forget its sender so a resume can attach.
    pub(crate) fn detach(&mut self, room: &str, identity: &str, session: u64) {
        if let Some(p) = self
            .rooms
            .get_mut(room)
            .and_then(|r| r.participants.get_mut(identity))
            .filter(|p| p.session == session)
        {
            p.tx = None;
        }
    }

    /// Whether `session` still drives the participant (a resume or replacement bumps it).
    pub(crate) fn is_current(&self, room: &str, identity: &str, session: u64) -> bool {
        self.rooms
            .get(room)
            .and_then(|r| r.participants.get(identity))
            .is_some_and(|p| p.session == session)
    }

    pub(crate) fn participant(&mut self, room: &str, identity: &str) -> Option<&mut Participant> {
        self.rooms
            .get_mut(room)
            .and_then(|r| r.participants.get_mut(identity))
    }

    /// Removes a participant, tells the others (DISCONNECTED) and, with a reason, tells
    /// the participant itself to leave.
    pub(crate) fn remove_participant(
        &mut self,
        room_name: &str,
        identity: &str,
        reason: Option<proto::DisconnectReason>,
    ) -> bool {
        self.drop_participant(room_name, identity, reason, "participant_left")
    }

    /// Removes a participant whose connection vanished without a leave and never came back
    /// (`participant_connection_aborted`, as LiveKit reports it).
    pub(crate) fn abort_participant(&mut self, room_name: &str, identity: &str) -> bool {
        self.drop_participant(
            room_name,
            identity,
            Some(proto::DisconnectReason::ConnectionTimeout),
            "participant_connection_aborted",
        )
    }

    fn drop_participant(
        &mut self,
        room_name: &str,
        identity: &str,
        reason: Option<proto::DisconnectReason>,
        hook: &str,
    ) -> bool {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return false;
        };
        let Some(mut p) = room.participants.remove(identity) else {
            return false;
        };
        room.choices.retain(|(sub, _), _| sub != identity);
        if room.participants.is_empty() {
            room.empty_since = Some(Instant::now());
        }
        if let (Some(reason), Some(tx)) = (reason, p.tx.as_ref()) {
            let _ = tx.send(signal(signal_response::Message::Leave(
                proto::LeaveRequest {
                    reason: reason as i32,
                    action: proto::leave_request::Action::Disconnect as i32,
                    ..Default::default()
                },
            )));
            let _ = tx.send(Outbound::Close);
        }
        self.router.remove_participant(p.router);
        self.by_router.remove(&p.router);
        p.info.state = proto::participant_info::State::Disconnected as i32;
        p.info.version += 1;
        p.info.disconnect_reason =
            reason.unwrap_or(proto::DisconnectReason::ClientInitiated) as i32;
        tracing::info!(room = room_name, identity, "participant left");
        self.hook(hook, room_name, Some(&p.info), None);
        self.dynacast(room_name);
        if !p.claims.video.hidden {
            self.broadcast_update(room_name, vec![p.info], None);
        }
        self.flush();
        true
    }

    /// Sends a `ParticipantUpdate` to everyone in the room except `skip` (a sid).
    pub(crate) fn broadcast_update(
        &self,
        room: &str,
        participants: Vec<ParticipantInfo>,
        skip: Option<&str>,
    ) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        for p in r.participants.values() {
            if Some(p.info.sid.as_str()) == skip {
                continue;
            }
            if let Some(tx) = &p.tx {
                let _ = tx.send(signal(signal_response::Message::Update(
                    proto::ParticipantUpdate {
                        participants: participants.clone(),
                    },
                )));
            }
        }
    }

    /// Bumps a participant's version and tells everyone (itself included, as LiveKit does
    /// for its own track changes).
    pub(crate) fn participant_changed(&mut self, room: &str, identity: &str) {
        let Some(p) = self.participant(room, identity) else {
            return;
        };
        p.info.version += 1;
        p.info.tracks = p.tracks.iter().map(|t| t.info.clone()).collect();
        p.info.is_publisher = !p.info.tracks.is_empty();
        let info = p.info.clone();
        if !p.claims.video.hidden {
            self.broadcast_update(room, vec![info], None);
        }
    }

    /// Sends to every participant's queue whatever the router produced.
    pub(crate) fn flush(&mut self) {
        // Signalling threads: the few packets a join or a track change produces go out
        // right away.
        let socket = self.socket.clone();
        self.drain(|t| {
            let _ = socket.send_to(&t.contents, t.destination);
        });
    }

    /// The media thread's flush: UDP datagrams are collected for one `sendmmsg` after the
    /// hub's lock is released.
    pub(crate) fn flush_into(&mut self, udp: &mut Vec<Transmit>) {
        self.drain(|t| udp.push(t));
    }

    fn drain(&mut self, mut udp: impl FnMut(Transmit)) {
        loop {
            let mut did = false;
            while let Some(t) = self.router.poll_transmit() {
                did = true;
                if t.proto == Protocol::Udp {
                    udp(t);
                } else {
                    self.tcp_out.push(t);
                }
            }
            while let Some(ev) = self.router.poll_event() {
                did = true;
                self.on_event(ev);
            }
            if !did {
                break;
            }
        }
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::SubscriberOffer { participant, sdp } => {
                let Some((room, identity)) = self.by_router.get(&participant).cloned() else {
                    return;
                };
                if let Some(p) = self.participant(&room, &identity) {
                    let id = p.next_offer_id;
                    p.next_offer_id += 1;
                    if let Some(tx) = &p.tx {
                        let _ = tx.send(signal(signal_response::Message::Offer(
                            proto::SessionDescription {
                                r#type: "offer".into(),
                                sdp,
                                id,
                                ..Default::default()
                            },
                        )));
                    }
                }
            }
            Event::TrackOpened {
                participant,
                track,
                mid,
                kind,
                rids,
            } => self.track_opened(participant, track, mid, kind, rids),
            Event::Data {
                from,
                reliable,
                data,
            } => self.relay_data(from, reliable, &data),
            Event::NeedOffer {
                participant,
                audio,
                video,
            } => {
                let Some((room, identity)) = self.by_router.get(&participant).cloned() else {
                    return;
                };
                tracing::debug!(room, identity, audio, video, "asking for a new offer");
                if let Some(tx) = self
                    .participant(&room, &identity)
                    .and_then(|p| p.tx.as_ref())
                {
                    let _ = tx.send(signal(signal_response::Message::MediaSectionsRequirement(
                        proto::MediaSectionsRequirement {
                            num_audios: audio,
                            num_videos: video,
                        },
                    )));
                }
            }
            Event::TrackClosed { participant, track } => {
                let Some((room, identity)) = self.by_router.get(&participant).cloned() else {
                    return;
                };
                let Some(p) = self.participant(&room, &identity) else {
                    return;
                };
                let Some(i) = p.tracks.iter().position(|t| t.router == Some(track)) else {
                    return;
                };
                let t = p.tracks.remove(i);
                tracing::info!(room, identity, track = t.info.sid, "track unpublished");
                if let Some(tx) = &p.tx {
                    let _ = tx.send(signal(signal_response::Message::TrackUnpublished(
                        proto::TrackUnpublishedResponse {
                            track_sid: t.info.sid.clone(),
                        },
                    )));
                }
                self.participant_changed(&room, &identity);
                if let Some(p) = self
                    .rooms
                    .get(&room)
                    .and_then(|r| r.participants.get(&identity))
                {
                    self.hook("track_unpublished", &room, Some(&p.info), Some(&t.info));
                }
            }
            Event::StreamState {
                subscriber,
                track,
                paused,
            } => self.stream_state(subscriber, track, paused),
            Event::Connected { participant, role } => {
                tracing::debug!(%participant, ?role, "peer connection up");
            }
            Event::Disconnected { participant, role } => {
                tracing::debug!(%participant, ?role, "peer connection down");
            }
        }
    }

    /// Tells a subscriber a track it receives was paused for lack of bandwidth, or
    /// resumed (`stream_state_update`, which clients show as the track's stream state).
    fn stream_state(&mut self, subscriber: ParticipantId, track: TrackId, paused: bool) {
        let Some((room, identity)) = self.by_router.get(&subscriber).cloned() else {
            return;
        };
        let Some(r) = self.rooms.get(&room) else {
            return;
        };
        let Some((publisher, info)) = r.participants.values().find_map(|p| {
            p.tracks
                .iter()
                .find(|t| t.router == Some(track))
                .map(|t| (p.info.sid.clone(), t.info.sid.clone()))
        }) else {
            return;
        };
        let state = if paused {
            proto::StreamState::Paused
        } else {
            proto::StreamState::Active
        };
        tracing::debug!(room, identity, track = info, ?state, "stream state");
        if let Some(tx) = r.participants.get(&identity).and_then(|p| p.tx.as_ref()) {
            let _ = tx.send(signal(signal_response::Message::StreamStateUpdate(
                proto::StreamStateUpdate {
                    stream_states: vec![proto::StreamStateInfo {
                        participant_sid: publisher,
                        track_sid: info,
                        state: state as i32,
                    }],
                },
            )));
        }
    }

    fn track_opened(
        &mut self,
        participant: ParticipantId,
        track: TrackId,
        mid: String,
        kind: TrackKind,
        rids: Vec<String>,
    ) {
        let Some((room, identity)) = self.by_router.get(&participant).cloned() else {
            return;
        };
        let Some(p) = self.participant(&room, &identity) else {
            return;
        };
        let want = match kind {
            TrackKind::Audio => proto::TrackType::Audio,
            TrackKind::Video => proto::TrackType::Video,
        } as i32;
        // The offer's msid names the client track (`cid`); the signalling layer stored the
        // mid it saw for each cid. Fall back to the oldest unbound track of the same kind.
        let idx = p
            .tracks
            .iter()
            .position(|t| t.router.is_none() && t.info.mid == mid)
            .or_else(|| {
                p.tracks.iter().position(|t| {
                    t.router.is_none() && t.info.mid.is_empty() && t.info.r#type == want
                })
            });
        let Some(idx) = idx else {
            tracing::debug!(
                room,
                identity,
                mid,
                "media without add_track, not forwarded"
            );
            return;
        };
        let t = &mut p.tracks[idx];
        t.router = Some(track);
        t.info.mid = mid;
        if !rids.is_empty() {
            t.info.simulcast = true;
        }
        let label = TrackLabel {
            stream_id: format!("{}|{}", p.info.sid, t.info.sid),
            track_id: t.info.sid.clone(),
        };
        let info = t.info.clone();
        let _ = self.router.publish(track, label);
        self.participant_changed(&room, &identity);
        if let Some(p) = self
            .rooms
            .get(&room)
            .and_then(|r| r.participants.get(&identity))
        {
            self.hook("track_published", &room, Some(&p.info), Some(&info));
        }
        self.dynacast(&room);
    }

    fn relay_data(&mut self, from: ParticipantId, reliable: bool, data: &[u8]) {
        let Some((room, identity)) = self.by_router.get(&from).cloned() else {
            return;
        };
        let Some(r) = self.rooms.get(&room) else {
            return;
        };
        let Some(sender) = r.participants.get(&identity) else {
            return;
        };
        if !sender.claims.video.can_publish_data() {
            return;
        }
        let Ok(mut packet) = DataPacket::decode(data) else {
            return;
        };
        packet.participant_identity = identity.clone();
        packet.participant_sid = sender.info.sid.clone();
        let mut targets: Vec<String> = packet.destination_identities.clone();
        if let Some(proto::data_packet::Value::User(u)) = packet.value.as_mut() {
            u.participant_identity = identity.clone();
            u.participant_sid = sender.info.sid.clone();
            if targets.is_empty() {
                targets = u.destination_identities.clone();
                // Legacy: destination sids.
                for sid in &u.destination_sids {
                    if let Some(p) = r.participants.values().find(|p| &p.info.sid == sid) {
                        targets.push(p.info.identity.clone());
                    }
                }
            }
        }
        let bytes = packet.encode_to_vec();
        let recipients: Vec<ParticipantId> = r
            .participants
            .values()
            .filter(|p| p.info.identity != identity)
            .filter(|p| targets.is_empty() || targets.contains(&p.info.identity))
            .map(|p| p.router)
            .collect();
        for to in recipients {
            self.router.send_data(to, reliable, &bytes);
        }
    }

    /// Records a client's `add_track` and answers `track_published`.
    pub(crate) fn add_track(
        &mut self,
        room: &str,
        identity: &str,
        req: proto::AddTrackRequest,
    ) -> Result<TrackInfo, &'static str> {
        let p = self.participant(room, identity).ok_or("gone")?;
        let source =
            proto::TrackSource::try_from(req.source).unwrap_or(proto::TrackSource::Unknown);
        let allowed = if source == proto::TrackSource::Unknown {
            p.claims.video.can_publish()
        } else {
            p.claims.video.may_publish_source(source)
        };
        if !allowed {
            return Err("not allowed to publish this source");
        }
        if let Some(t) = p
            .tracks
            .iter()
            .find(|t| t.info.sid == req.sid && !req.sid.is_empty())
        {
            return Ok(t.info.clone());
        }
        let layers = req.layers.clone();
        let info = TrackInfo {
            sid: new_sid("TR_"),
            r#type: req.r#type,
            name: req.name.clone(),
            muted: req.muted,
            width: req.width,
            height: req.height,
            simulcast: layers.len() > 1,
            disable_dtx: req.disable_dtx,
            source: req.source,
            layers: layers.clone(),
            mime_type: mime_type(
                req.r#type,
                req.simulcast_codecs.first().map(|c| c.codec.as_str()),
            ),
            codecs: req
                .simulcast_codecs
                .iter()
                .map(|c| proto::SimulcastCodecInfo {
                    mime_type: mime_type(req.r#type, Some(&c.codec)),
                    cid: c.cid.clone(),
                    layers: layers.clone(),
                    ..Default::default()
                })
                .collect(),
            stereo: req.stereo,
            disable_red: req.disable_red,
            encryption: req.encryption,
            stream: req.stream.clone(),
            ..Default::default()
        };
        p.tracks.push(Published {
            info: info.clone(),
            router: None,
            watched: None,
        });
        Ok(info)
    }

    /// Remembers which mid the client's next offer uses for a pending track (from the
    /// offer's `a=msid` lines, keyed by cid).
    pub(crate) fn bind_mids(
        &mut self,
        room: &str,
        identity: &str,
        cid_to_mid: &[(String, String)],
        pending_cids: &HashMap<String, String>,
    ) {
        let Some(p) = self.participant(room, identity) else {
            return;
        };
        for (cid, mid) in cid_to_mid {
            let Some(sid) = pending_cids.get(cid) else {
                continue;
            };
            if let Some(t) = p
                .tracks
                .iter_mut()
                .find(|t| &t.info.sid == sid && t.router.is_none())
            {
                t.info.mid = mid.clone();
            }
        }
    }

    /// `mid → TR_ sid` for an answer: the participant's own published tracks and, in
    /// single-connection mode, the tracks we send it.
    pub(crate) fn mid_to_track_id(&self, room: &str, identity: &str) -> HashMap<String, String> {
        let Some(r) = self.rooms.get(room) else {
            return HashMap::new();
        };
        let Some(me) = r.participants.get(identity) else {
            return HashMap::new();
        };
        let mut map: HashMap<String, String> = me
            .tracks
            .iter()
            .filter(|t| !t.info.mid.is_empty())
            .map(|t| (t.info.mid.clone(), t.info.sid.clone()))
            .collect();
        for (mid, tid) in self.router.outgoing(me.router) {
            let sid = r
                .participants
                .values()
                .flat_map(|p| p.tracks.iter())
                .find(|t| t.router == Some(tid))
                .map(|t| t.info.sid.clone());
            if let Some(sid) = sid {
                map.insert(mid, sid);
            }
        }
        map
    }

    /// Applies `UpdateTrackSettings` for a subscriber.
    pub(crate) fn track_settings(
        &mut self,
        room: &str,
        identity: &str,
        s: &proto::UpdateTrackSettings,
    ) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let Some(sub) = r.participants.get(identity).map(|p| p.router) else {
            return;
        };
        let mut changes = Vec::new();
        let mut choices = Vec::new();
        for sid in &s.track_sids {
            for p in r.participants.values() {
                let Some(t) = p.tracks.iter().find(|t| &t.info.sid == sid) else {
                    continue;
                };
                let layer = (!s.disabled).then(|| layer_for(&t.info, s));
                choices.push(((identity.to_owned(), sid.clone()), layer));
                let Some(tid) = t.router else { continue };
                let choice = match layer {
                    None => LayerChoice::Paused,
                    Some(l) => LayerChoice::UpTo(l),
                };
                changes.push((tid, choice));
            }
        }
        if let Some(r) = self.rooms.get_mut(room) {
            r.choices.extend(choices);
        }
        self.dynacast(room);
        tracing::debug!(room, identity, tracks = ?s.track_sids, disabled = s.disabled, width = s.width, height = s.height, quality = s.quality, ?changes, "track settings");
        for (tid, choice) in changes {
            let _ = self.router.set_layer(sub, tid, choice);
        }
    }

    /// Sends `speakers_changed` deltas to every room whose set of active speakers changed.
    pub(crate) fn speakers_tick(&mut self, now: Instant) {
        let levels = self.router.audio_levels(now);
        for room in self.rooms.values_mut() {
            let mut active: Vec<(String, f32)> = room
                .participants
                .values()
                .filter(|p| !p.claims.video.hidden)
                .filter_map(|p| {
                    let level = levels.iter().find(|(id, _)| *id == p.router)?.1;
                    (level >= SPEAKING_LEVEL).then(|| (p.info.sid.clone(), level))
                })
                .collect();
            active.sort_by(|a, b| b.1.total_cmp(&a.1));
            let mut changes: Vec<proto::SpeakerInfo> = active
                .iter()
                .filter(|(sid, _)| !room.speaking.contains(sid))
                .map(|(sid, level)| proto::SpeakerInfo {
                    sid: sid.clone(),
                    level: *level,
                    active: true,
                })
                .collect();
            changes.extend(
                room.speaking
                    .iter()
                    .filter(|sid| !active.iter().any(|(a, _)| a == *sid))
                    .map(|sid| proto::SpeakerInfo {
                        sid: sid.clone(),
                        level: 0.0,
                        active: false,
                    }),
            );
            if changes.is_empty() {
                continue;
            }
            room.speaking = active.into_iter().map(|(sid, _)| sid).collect();
            for p in room.participants.values() {
                if let Some(tx) = &p.tx {
                    let _ = tx.send(signal(signal_response::Message::SpeakersChanged(
                        proto::SpeakersChanged {
                            speakers: changes.clone(),
                        },
                    )));
                }
            }
        }
    }

    /// Closes rooms that stayed empty past their timeout.
    pub(crate) fn reap_rooms(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, r)| {
                let Some(since) = r.empty_since else {
                    return false;
                };
                let limit = if r.ever_joined {
                    r.info.departure_timeout
                } else {
                    r.info.empty_timeout
                };
                now.saturating_duration_since(since).as_secs() >= u64::from(limit)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in expired {
            tracing::info!(room = name, "room closed (empty)");
            self.finish_room(&name);
        }
    }

    pub(crate) fn room_info(&self, r: &Room) -> proto::Room {
        let mut info = r.info.clone();
        info.num_participants = r.participants.len() as u32;
        info.num_publishers = r
            .participants
            .values()
            .filter(|p| !p.tracks.is_empty())
            .count() as u32;
        info
    }

    /// ICE-TCP datagrams produced since the last call.
    pub(crate) fn take_tcp(&mut self) -> Vec<Transmit> {
        std::mem::take(&mut self.tcp_out)
    }

    /// Rooms, participants, published tracks by kind and forwarded tracks, for `/metrics`.
    pub(crate) fn gauges(&self) -> switchyard_telemetry::livekit::SfuGauges {
        let fb = self.router.feedback();
        let bw = self.router.bandwidth_summary();
        let mut g = switchyard_telemetry::livekit::SfuGauges {
            rooms: self.rooms.len() as u64,
            nacks_in: fb.nacks_received,
            plis_in: fb.plis_received,
            plis_out: fb.plis_sent,
            estimated: bw.estimated,
            estimate_bps: bw.total_bps,
            paused_tracks: bw.paused_tracks,
            ..Default::default()
        };
        for p in self.rooms.values().flat_map(|r| r.participants.values()) {
            g.participants += 1;
            g.subscriptions += self.router.outgoing(p.router).len() as u64;
            for t in p.tracks.iter().filter(|t| t.router.is_some()) {
                if t.info.r#type == proto::TrackType::Video as i32 {
                    g.video_tracks += 1;
                } else {
                    g.audio_tracks += 1;
                }
            }
        }
        g
    }

    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.router.poll_timeout()
    }
}

/// `video/VP8`-style MIME type from the SDK's codec name (`vp8`), defaulting per kind.
fn mime_type(kind: i32, codec: Option<&str>) -> String {
    let video = kind == proto::TrackType::Video as i32;
    match codec.filter(|c| !c.is_empty()) {
        Some(c) if c.contains('/') => c.to_owned(),
        Some(c) if video => format!("video/{}", c.to_uppercase()),
        Some(c) => format!("audio/{}", c.to_lowercase()),
        None if video => "video/VP8".into(),
        None => "audio/opus".into(),
    }
}

/// The layer rank (0 = lowest) that fits the subscriber's requested size or quality.
fn layer_for(info: &TrackInfo, s: &proto::UpdateTrackSettings) -> usize {
    let n = info.layers.len().max(1);
    if s.width > 0 || s.height > 0 {
        let mut layers: Vec<&proto::VideoLayer> = info.layers.iter().collect();
        layers.sort_by_key(|l| l.quality);
        for (i, l) in layers.iter().enumerate() {
            if l.width >= s.width && l.height >= s.height {
                return i;
            }
        }
        return n - 1;
    }
    (s.quality.max(0) as usize).min(n - 1)
}
