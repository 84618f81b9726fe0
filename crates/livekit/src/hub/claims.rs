//! Changes to what a participant's token said about it: name, metadata, attributes
//! (Twirp `UpdateParticipant`, or its own `update_metadata`) and permissions (Twirp only).
//! They are applied as livekit-server applies them, announced to the room, and, when
//! something really changed, answered with a refreshed token carrying the new claims.

use std::collections::HashMap;
use std::time::Instant;

use livekit_protocol as proto;

use super::{Hub, Participant};

/// Name, metadata and attributes as livekit-server's setters take them: an empty name or
/// metadata leaves it as it is, an attribute with an empty value is deleted. Returns
/// whether anything changed.
fn set_descriptive(
    p: &mut Participant,
    name: &str,
    metadata: &str,
    attributes: &HashMap<String, String>,
) -> bool {
    let before = (
        p.info.name.clone(),
        p.info.metadata.clone(),
        p.info.attributes.clone(),
    );
    if !name.is_empty() {
        p.info.name = name.to_owned();
    }
    if !metadata.is_empty() {
        p.info.metadata = metadata.to_owned();
    }
    for (k, v) in attributes {
        if v.is_empty() {
            p.info.attributes.remove(k);
        } else {
            p.info.attributes.insert(k.clone(), v.clone());
        }
    }
    (&p.info.name, &p.info.metadata, &p.info.attributes) != (&before.0, &before.1, &before.2)
}

/// Replaces the participant's permissions: the reported `permission` and the video grant
/// that publishing is checked against (and that a refreshed token carries). Returns
/// whether they differ from what was in effect.
fn set_permission(p: &mut Participant, perm: &proto::ParticipantPermission) -> bool {
    let changed = p.claims.video.to_permission() != *perm;
    if changed {
        p.claims.video.update_from_permission(perm);
    }
    p.info.permission = Some(perm.clone());
    changed
}

impl Hub {
    /// `UpdateParticipant`: metadata, name, attributes and permission. `None` when the
    /// participant is not in the room.
    pub(crate) fn update_participant(
        &mut self,
        req: &proto::UpdateParticipantRequest,
    ) -> Option<proto::ParticipantInfo> {
        let p = self.participant(&req.room, &req.identity)?;
        let mut changed = set_descriptive(p, &req.name, &req.metadata, &req.attributes);
        if let Some(perm) = &req.permission {
            changed |= set_permission(p, perm);
        }
        self.claims_updated(&req.room, &req.identity, changed);
        self.participant(&req.room, &req.identity)
            .map(|p| p.info.clone())
    }

    /// A participant's own `update_metadata`, allowed by its `canUpdateOwnMetadata` grant.
    /// Returns false when refused (or the participant is gone).
    pub(crate) fn update_own_metadata(
        &mut self,
        room: &str,
        identity: &str,
        u: &proto::UpdateParticipantMetadata,
    ) -> bool {
        let Some(p) = self
            .participant(room, identity)
            .filter(|p| p.claims.video.can_update_own_metadata())
        else {
            return false;
        };
        let changed = set_descriptive(p, &u.name, &u.metadata, &u.attributes);
        self.claims_updated(room, identity, changed);
        true
    }

    /// Tells the room (as before, on every update) and, if the claims changed, the
    /// participant: a token with the new claims.
    fn claims_updated(&mut self, room: &str, identity: &str, changed: bool) {
        self.participant_changed(room, identity);
        if changed {
            self.send_refresh_token(room, identity, Instant::now());
        }
    }
}
