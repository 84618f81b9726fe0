//! What the Twirp RoomService changes inside a room on an admin's behalf: room metadata,
//! server-sent data and muting a published track (participant metadata and permissions
//! are in [`super::claims`]).
//! Each change reaches the clients the way livekit-server sends it (participant updates,
//! `room_update`, data packets from the server, a `mute` request to the publisher).

use livekit_protocol as proto;
use prost::Message;
use proto::signal_response;

use super::{Hub, signal};

impl Hub {
    /// `UpdateRoomMetadata`: stores it and sends `room_update` to everyone in the room.
    pub(crate) fn update_room_metadata(
        &mut self,
        room: &str,
        metadata: &str,
    ) -> Option<proto::Room> {
        let r = self.rooms.get_mut(room)?;
        r.info.metadata = metadata.to_owned();
        let info = self.room_info(self.rooms.get(room)?);
        for p in self.rooms.get(room)?.participants.values() {
            if let Some(tx) = &p.tx {
                let _ = tx.send(signal(signal_response::Message::RoomUpdate(
                    proto::RoomUpdate {
                        room: Some(info.clone()),
                    },
                )));
            }
        }
        Some(info)
    }

    /// `SendData`: a user packet from the server to the room, or to the participants named
    /// by identity or (legacy) sid. Returns false when the room does not exist.
    pub(crate) fn send_server_data(&mut self, req: &proto::SendDataRequest) -> bool {
        let Some(r) = self.rooms.get(&req.room) else {
            return false;
        };
        let mut targets = req.destination_identities.clone();
        for sid in &req.destination_sids {
            if let Some(p) = r.participants.values().find(|p| &p.info.sid == sid) {
                targets.push(p.info.identity.clone());
            }
        }
        #[allow(deprecated)] // `kind` is deprecated in the proto but still what SDKs read.
        let packet = proto::DataPacket {
            kind: req.kind,
            destination_identities: targets.clone(),
            value: Some(proto::data_packet::Value::User(proto::UserPacket {
                payload: req.data.clone(),
                destination_identities: targets.clone(),
                topic: req.topic.clone(),
                nonce: req.nonce.clone(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let bytes = packet.encode_to_vec();
        let reliable = req.kind == proto::data_packet::Kind::Reliable as i32;
        let recipients: Vec<_> = r
            .participants
            .values()
            .filter(|p| targets.is_empty() || targets.contains(&p.info.identity))
            .map(|p| p.router)
            .collect();
        for to in recipients {
            self.router().send_data(to, reliable, &bytes);
        }
        self.flush();
        true
    }

    /// `MutePublishedTrack`: asks the publisher to mute (or unmute) the track, as
    /// livekit-server does, and marks it. `None` when the participant or track is unknown.
    pub(crate) fn mute_published_track(
        &mut self,
        req: &proto::MuteRoomTrackRequest,
    ) -> Option<proto::TrackInfo> {
        let p = self.participant(&req.room, &req.identity)?;
        let t = p.tracks.iter_mut().find(|t| t.info.sid == req.track_sid)?;
        t.info.muted = req.muted;
        let info = t.info.clone();
        if let Some(tx) = &p.tx {
            let _ = tx.send(signal(signal_response::Message::Mute(
                proto::MuteTrackRequest {
                    sid: req.track_sid.clone(),
                    muted: req.muted,
                },
            )));
        }
        self.participant_changed(&req.room, &req.identity);
        Some(info)
    }
}
