//! Which tracks a participant receives. Everyone receives everything unless it connected
//! with `autoSubscribe: false` (`auto_subscribe=0` on `/rtc`, `connection_settings` in a
//! v1 join request); then it names tracks itself (`subscription` signal request) or the
//! server does for it (Twirp `UpdateSubscriptions`). Either way a change is a
//! renegotiation of the subscriber's connection.

use livekit_protocol as proto;
use proto::signal_response;
use switchyard_sfu::{LayerChoice, SfuError};

use super::{Hub, signal};

/// Why a subscription change could not be applied at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubscriptionError {
    NoRoom,
    NoParticipant,
}

impl Hub {
    /// Subscribes `identity` to (or unsubscribes it from) the tracks named by sid, directly
    /// or per participant. Tracks that are not (yet) published in the room are answered
    /// with a `subscription_response` carrying `SE_TRACK_NOT_FOUND`, as livekit-server
    /// does; a participant without `canSubscribe` gets nothing new.
    pub(crate) fn update_subscription(
        &mut self,
        room: &str,
        identity: &str,
        track_sids: &[String],
        participant_tracks: &[proto::ParticipantTracks],
        subscribe: bool,
    ) -> Result<(), SubscriptionError> {
        let r = self.rooms.get(room).ok_or(SubscriptionError::NoRoom)?;
        let me = r
            .participants
            .get(identity)
            .ok_or(SubscriptionError::NoParticipant)?;
        let sub = me.router;
        let tx = me.tx.clone();
        let wanted = track_sids.iter().chain(
            participant_tracks
                .iter()
                .flat_map(|pt| pt.track_sids.iter()),
        );
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for sid in wanted {
            // The SDKs name a track both directly and under its participant.
            if found.iter().any(|(s, _)| s == sid) || missing.contains(sid) {
                continue;
            }
            let track = r
                .participants
                .values()
                .filter(|p| p.info.identity != identity)
                .flat_map(|p| p.tracks.iter())
                .find(|t| &t.info.sid == sid)
                .and_then(|t| t.router);
            match track {
                Some(t) => found.push((sid.clone(), t)),
                None => missing.push(sid.clone()),
            }
        }
        tracing::debug!(room, identity, subscribe, found = ?found, ?missing, "subscription update");
        for (sid, track) in found {
            let result = if subscribe {
                self.router.subscribe(sub, track).map(|()| {
                    // A layer choice made earlier (UpdateTrackSettings) still holds.
                    let choice = self
                        .rooms
                        .get(room)
                        .and_then(|r| r.choices.get(&(identity.to_owned(), sid.clone())))
                        .copied();
                    if let Some(choice) = choice {
                        let choice = choice.map_or(LayerChoice::Paused, LayerChoice::UpTo);
                        let _ = self.router.set_layer(sub, track, choice);
                    }
                })
            } else {
                self.router.unsubscribe(sub, track)
            };
            match result {
                Ok(()) => {}
                Err(SfuError::NotAllowed) => {
                    tracing::debug!(room, identity, sid, "subscription refused: no grant");
                }
                Err(e) => tracing::debug!(room, identity, sid, "subscription failed: {e}"),
            }
        }
        if let Some(tx) = tx {
            for sid in missing {
                let _ = tx.send(signal(signal_response::Message::SubscriptionResponse(
                    proto::SubscriptionResponse {
                        track_sid: sid,
                        err: proto::SubscriptionError::SeTrackNotfound as i32,
                    },
                )));
            }
        }
        self.dynacast(room);
        self.flush();
        Ok(())
    }
}
