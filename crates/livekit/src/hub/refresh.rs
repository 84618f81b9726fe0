//! Token refresh. livekit-server does not hold a connected participant to its token's
//! `exp`: it keeps the participant and hands it fresh tokens over signalling
//! (`refresh_token`), so that a later resume, which must present a valid token, works
//! however long the call has lasted. A token goes out when a session starts (join or
//! resume, in case the token it came with is about to expire), every
//! [`REFRESH_INTERVAL`] while connected, and at once when the participant's claims
//! change (name, metadata, attributes, permissions), so a resume keeps them.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use livekit_protocol as proto;
use proto::signal_response;

use super::{Hub, Participant, signal};
use crate::token::{self, Claims};

/// How often a connected participant gets a fresh token (livekit-server's
/// `tokenRefreshInterval`).
pub(crate) const REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Lifetime of a refreshed token (`tokenDefaultTTL`): two refresh intervals, so one missed
/// refresh does not leave the client with an expired token.
pub(crate) const REFRESHED_TTL: Duration = Duration::from_secs(10 * 60);

/// Whether a participant last handed a token at `last` (never: `None`) is due another at
/// `now`.
pub(crate) fn refresh_due(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|at| now.saturating_duration_since(at) >= REFRESH_INTERVAL)
}

/// Seconds a token minted at `now` stays valid: [`REFRESHED_TTL`], or until the original
/// token's expiry if that is later, so refreshing never shortens what the participant was
/// granted (as livekit-server preserves it).
pub(crate) fn valid_for(original_exp: u64, now: u64) -> u64 {
    REFRESHED_TTL
        .as_secs()
        .max(original_exp.saturating_sub(now))
}

/// The participant's claims as they stand now: the joining token's, with the name,
/// metadata and attributes it has since been given. (The video grant is kept current
/// where permissions change.)
pub(crate) fn current_claims(p: &Participant) -> Claims {
    Claims {
        name: p.info.name.clone(),
        metadata: p.info.metadata.clone(),
        attributes: p.info.attributes.clone(),
        ..p.claims.clone()
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl Hub {
    /// Mints a token from the participant's current claims with the first configured key
    /// pair and sends it as `refresh_token`. Nothing happens while no session is attached;
    /// the resume that attaches one sends it.
    pub(crate) fn send_refresh_token(&mut self, room: &str, identity: &str, now: Instant) {
        let Some((key, secret)) = self.settings.keys.first().cloned() else {
            return;
        };
        let Some(p) = self.participant(room, identity) else {
            return;
        };
        let Some(tx) = &p.tx else {
            return;
        };
        let secs = unix_secs();
        match token::mint(
            &current_claims(p),
            &key,
            &secret,
            secs,
            valid_for(p.claims.exp, secs),
        ) {
            Ok(jwt) => {
                let _ = tx.send(signal(signal_response::Message::RefreshToken(jwt)));
                p.token_sent = Some(now);
                tracing::debug!(room, identity, "token refreshed");
            }
            Err(e) => tracing::warn!(room, identity, "could not mint a refresh token: {e}"),
        }
    }

    /// The periodic refresh: every connected participant whose last token is
    /// [`REFRESH_INTERVAL`] old gets a new one.
    pub(crate) fn refresh_tokens(&mut self, now: Instant) {
        let due: Vec<(String, String)> = self
            .rooms
            .iter()
            .flat_map(|(name, r)| {
                r.participants
                    .iter()
                    .filter(|(_, p)| p.tx.is_some() && refresh_due(p.token_sent, now))
                    .map(move |(identity, _)| (name.clone(), identity.clone()))
            })
            .collect();
        for (room, identity) in due {
            self.send_refresh_token(&room, &identity, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Outbound, SignalPath};
    use crate::settings::Settings;
    use crate::token::VideoGrant;
    use std::collections::HashMap;
    use std::sync::Arc;
    use switchyard_sfu::{Router, RouterConfig};
    use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

    const KEYS: [(&str, &str); 2] = [("first", "first-secret"), ("second", "second-secret")];

    fn hub() -> Hub {
        let settings = Settings {
            keys: KEYS
                .iter()
                .map(|(k, s)| (k.to_string(), s.to_string()))
                .collect(),
            ..Default::default()
        };
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let router = Router::new(
            RouterConfig {
                candidates: Vec::new(),
                tcp_candidates: Vec::new(),
                ingress_limit: None,
                congestion_control: Default::default(),
                shard: Default::default(),
            },
            Instant::now(),
        );
        Hub::new(
            Arc::new(settings),
            Arc::new(socket),
            router,
            None,
            Arc::default(),
        )
    }

    /// Claims of a token signed with the second key that expired a minute ago.
    fn joining_claims(video: VideoGrant) -> Claims {
        Claims {
            iss: "second".into(),
            sub: "alice".into(),
            jti: String::new(),
            name: "Alice".into(),
            metadata: "joined".into(),
            attributes: HashMap::from([("team".into(), "red".into())]),
            video: VideoGrant {
                room_join: true,
                room: "r".into(),
                ..video
            },
            exp: unix_secs() - 60,
            kind: String::new(),
            room_preset: String::new(),
            room_config: None,
        }
    }

    /// The refreshed tokens queued for the participant, verified, in order.
    fn refreshed(rx: &mut UnboundedReceiver<Outbound>) -> Vec<Claims> {
        let keys: Vec<(String, String)> = KEYS
            .iter()
            .map(|(k, s)| (k.to_string(), s.to_string()))
            .collect();
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            if let Outbound::Signal(r) = m
                && let Some(signal_response::Message::RefreshToken(t)) = r.message
            {
                out.push(token::verify(&t, &keys).expect("refreshed token verifies"));
            }
        }
        out
    }

    #[test]
    fn join_and_claim_changes_hand_out_tokens_with_current_claims() {
        let mut h = hub();
        let (tx, mut rx) = unbounded_channel();
        let video = VideoGrant {
            can_update_own_metadata: Some(true),
            ..Default::default()
        };
        h.join(joining_claims(video), tx, SignalPath::V0, true)
            .unwrap();
        // On join: the joining claims, signed with the first key, ten minutes out.
        let t = refreshed(&mut rx);
        assert_eq!(t.len(), 1);
        let c = &t[0];
        let now = unix_secs();
        assert_eq!((c.iss.as_str(), c.identity()), ("first", "alice"));
        assert_eq!((c.name.as_str(), c.metadata.as_str()), ("Alice", "joined"));
        assert!(c.exp.abs_diff(now + 600) <= 2, "exp {} now {now}", c.exp);
        assert!(c.video.room_join && c.video.room == "r");

        // An admin update: new metadata, one attribute deleted, one added.
        let req = proto::UpdateParticipantRequest {
            room: "r".into(),
            identity: "alice".into(),
            metadata: "updated".into(),
            attributes: HashMap::from([
                ("team".into(), String::new()),
                ("role".into(), "host".into()),
            ]),
            ..Default::default()
        };
        h.update_participant(&req).unwrap();
        let t = refreshed(&mut rx);
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].name.as_str(), t[0].metadata.as_str()),
            ("Alice", "updated")
        );
        assert_eq!(
            t[0].attributes,
            HashMap::from([("role".to_string(), "host".to_string())])
        );
        // The same update again changes nothing: no token.
        h.update_participant(&req).unwrap();
        assert!(refreshed(&mut rx).is_empty());

        // The participant renames itself (its grant allows it).
        let own = proto::UpdateParticipantMetadata {
            name: "Alice B".into(),
            ..Default::default()
        };
        assert!(h.update_own_metadata("r", "alice", &own));
        let t = refreshed(&mut rx);
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].name.as_str(), t[0].metadata.as_str()),
            ("Alice B", "updated")
        );

        // Permissions taken away: the token's grant says so, and the participant may no
        // longer update itself.
        let perm = proto::ParticipantPermission {
            can_subscribe: true,
            ..Default::default()
        };
        h.update_participant(&proto::UpdateParticipantRequest {
            room: "r".into(),
            identity: "alice".into(),
            permission: Some(perm),
            ..Default::default()
        })
        .unwrap();
        let t = refreshed(&mut rx);
        assert_eq!(t.len(), 1);
        let v = &t[0].video;
        assert!(!v.can_publish() && !v.can_publish_data() && v.can_subscribe());
        assert!(!v.can_update_own_metadata());
        assert!(v.room_join && v.room == "r");
        assert!(!h.update_own_metadata("r", "alice", &own));
        assert!(refreshed(&mut rx).is_empty());
    }

    #[test]
    fn periodic_refresh_reaches_connected_participants_only() {
        let mut h = hub();
        let (tx, mut rx) = unbounded_channel();
        let (sid, session) = h
            .join(
                joining_claims(VideoGrant::default()),
                tx,
                SignalPath::V0,
                true,
            )
            .unwrap();
        assert_eq!(refreshed(&mut rx).len(), 1);
        let t0 = Instant::now();
        h.refresh_tokens(t0);
        assert!(refreshed(&mut rx).is_empty(), "refreshed again at once");
        h.refresh_tokens(t0 + REFRESH_INTERVAL + Duration::from_secs(1));
        assert_eq!(refreshed(&mut rx).len(), 1);
        // Detached (socket gone, resume pending): nothing is sent, even when due.
        h.detach("r", "alice", session);
        h.refresh_tokens(t0 + REFRESH_INTERVAL * 3);
        assert!(refreshed(&mut rx).is_empty());
        // The resume hands one over straight away.
        let (tx, mut rx) = unbounded_channel();
        h.resume(&joining_claims(VideoGrant::default()), &sid, tx)
            .unwrap();
        assert_eq!(refreshed(&mut rx).len(), 1);
    }

    #[test]
    fn due_when_never_sent_or_an_interval_old() {
        let t0 = Instant::now();
        assert!(refresh_due(None, t0));
        assert!(!refresh_due(Some(t0), t0));
        assert!(!refresh_due(
            Some(t0),
            t0 + REFRESH_INTERVAL - Duration::from_millis(1)
        ));
        assert!(refresh_due(Some(t0), t0 + REFRESH_INTERVAL));
        assert!(refresh_due(Some(t0), t0 + REFRESH_INTERVAL * 3));
        // A clock that reads earlier than the last send (it cannot, but) is not due.
        assert!(!refresh_due(Some(t0 + REFRESH_INTERVAL), t0));
    }

    #[test]
    fn lifetime_is_ten_minutes_unless_the_original_lasts_longer() {
        assert_eq!(REFRESHED_TTL.as_secs(), 600);
        assert_eq!(REFRESH_INTERVAL.as_secs(), 300);
        let now = 1_000_000;
        // Expired or soon-expiring originals: ten minutes.
        assert_eq!(valid_for(now - 120, now), 600);
        assert_eq!(valid_for(now + 5, now), 600);
        assert_eq!(valid_for(0, now), 600);
        // A six-hour original keeps its expiry.
        assert_eq!(valid_for(now + 6 * 3600, now), 6 * 3600);
    }
}
