//! A sans-IO selective forwarding unit over [str0m].
//!
//! One [`Router`] holds every room, participant and peer connection. Each participant has a
//! *publisher* connection (the client offers, we answer; media flows in) and a *subscriber*
//! connection (we offer, the client answers; media flows out). All connections share one
//! UDP socket: the caller feeds datagrams in with [`Router::handle_receive`] and sends what
//! [`Router::poll_transmit`] yields. Time only enters through the `now` arguments.
//! A connection that sends more than its [`IngressLimit`] has the excess dropped before
//! str0m decrypts it ([`Router::take_ingress_dropped`] counts them).
//!
//! The router knows nothing about LiveKit: it speaks in [`ParticipantId`]s, [`TrackId`]s,
//! SDP (parsed outside the router: see [`PublisherOffer`]) and opaque data-channel payloads, and reports what happened as [`Event`]s.
//! str0m does the RTP/RTCP work (SRTP, NACK and RTX, sequence numbers, SSRCs); the router
//! picks which simulcast layer each subscriber gets and keeps the outgoing RTP timestamps
//! continuous across layer switches (see [`forward`]).

#![forbid(unsafe_code)]

mod allocate;
mod forward;
mod ids;
mod ingress;
mod rate;
mod router;
mod sdp;
mod shard;

pub use ids::{ParticipantId, PcRole, TrackId};
pub use ingress::IngressLimit;
pub use router::{
    BandwidthSummary, CongestionControl, Event, Feedback, LayerChoice, LinkStats, PcMode, Router,
    RouterConfig, SfuError, Subscribe, TrackKind, TrackLabel,
};
pub use sdp::{PublisherOffer, SubscriberAnswer};
pub use shard::ShardId;
pub use str0m::net::{Protocol, Transmit};

/// Pays str0m's one-time set-up now: the first peer connection a process builds
/// initialises the crypto provider, about 30 ms. A server calls this before it accepts
/// anyone, so the first join (made while the media thread waits on the room state) does
/// not pay it.
pub fn warm_up(now: std::time::Instant) {
    drop(str0m::Rtc::builder().build(now));
}
