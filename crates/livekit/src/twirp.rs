//! Twirp `livekit.RoomService` on the HTTP port: protobuf or JSON bodies, bearer-token auth,
//! Twirp JSON errors.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use livekit_protocol as proto;
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::http::App;
use crate::hub::SubscriptionError;
use crate::token::{self, Claims};

/// Largest request body decoded.
const MAX_BODY: usize = 1024 * 1024;

struct TwirpError {
    code: &'static str,
    status: StatusCode,
    msg: String,
}

impl TwirpError {
    fn new(code: &'static str, status: StatusCode, msg: impl Into<String>) -> Self {
        TwirpError {
            code,
            status,
            msg: msg.into(),
        }
    }
    fn unauthenticated(msg: impl Into<String>) -> Self {
        Self::new("unauthenticated", StatusCode::UNAUTHORIZED, msg)
    }
    fn denied() -> Self {
        Self::new(
            "permission_denied",
            StatusCode::FORBIDDEN,
            "permissions denied",
        )
    }
    fn not_found(msg: impl Into<String>) -> Self {
        Self::new("not_found", StatusCode::NOT_FOUND, msg)
    }
    fn malformed(msg: impl Into<String>) -> Self {
        Self::new("malformed", StatusCode::BAD_REQUEST, msg)
    }
}

impl IntoResponse for TwirpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"code": self.code, "msg": self.msg}).to_string();
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

#[derive(Clone, Copy)]
enum Format {
    Protobuf,
    Json,
}

struct Call<'a> {
    format: Format,
    body: &'a [u8],
}

impl Call<'_> {
    fn decode<T: Message + Default + DeserializeOwned>(&self) -> Result<T, TwirpError> {
        match self.format {
            Format::Protobuf => {
                T::decode(self.body).map_err(|e| TwirpError::malformed(e.to_string()))
            }
            Format::Json => {
                let body = if self.body.is_empty() {
                    b"{}".as_slice()
                } else {
                    self.body
                };
                serde_json::from_slice(body).map_err(|e| TwirpError::malformed(e.to_string()))
            }
        }
    }
    fn encode<T: Message + Serialize>(&self, v: &T) -> Response {
        match self.format {
            Format::Protobuf => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/protobuf")],
                v.encode_to_vec(),
            )
                .into_response(),
            Format::Json => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::to_vec(v).unwrap_or_default(),
            )
                .into_response(),
        }
    }
}

pub(crate) fn handle(app: &App, method: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    match dispatch(app, method, headers, body) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn admin_of(claims: &Claims, room: &str) -> Result<(), TwirpError> {
    if claims.video.room_admin && claims.video.room == room {
        Ok(())
    } else {
        Err(TwirpError::denied())
    }
}

fn dispatch(
    app: &App,
    method: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, TwirpError> {
    let format = match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
    {
        Some("application/protobuf") => Format::Protobuf,
        Some("application/json") => Format::Json,
        _ => {
            return Err(TwirpError::new(
                "bad_route",
                StatusCode::NOT_FOUND,
                "unsupported content type",
            ));
        }
    };
    if body.len() > MAX_BODY {
        return Err(TwirpError::malformed("request too large"));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(token::bearer)
        .ok_or_else(|| TwirpError::unauthenticated("missing bearer token"))?;
    let claims = token::verify(token, &app.settings.keys)
        .map_err(|e| TwirpError::unauthenticated(e.to_string()))?;
    let call = Call { format, body };
    // A room's state lives in one hub; the lock is taken once the request names the room.
    let lock = |room: &str| app.shards.for_room(room).lock().expect("hub lock");
    match method {
        "CreateRoom" => {
            let req: proto::CreateRoomRequest = call.decode()?;
            if !claims.video.room_create {
                return Err(TwirpError::denied());
            }
            if req.name.is_empty() {
                return Err(TwirpError::new(
                    "invalid_argument",
                    StatusCode::BAD_REQUEST,
                    "room name required",
                ));
            }
            let mut hub = lock(&req.name);
            let room = hub.create_room(&req.name);
            if req.empty_timeout > 0 {
                room.info.empty_timeout = req.empty_timeout;
            }
            if req.departure_timeout > 0 {
                room.info.departure_timeout = req.departure_timeout;
            }
            if req.max_participants > 0 {
                room.info.max_participants = req.max_participants;
            }
            if !req.metadata.is_empty() {
                room.info.metadata = req.metadata;
            }
            let info = room.info.clone();
            Ok(call.encode(&info))
        }
        "ListRooms" => {
            let req: proto::ListRoomsRequest = call.decode()?;
            if !claims.video.room_list {
                return Err(TwirpError::denied());
            }
            let mut rooms: Vec<proto::Room> = Vec::new();
            for hub in app.shards.hubs() {
                let hub = hub.lock().expect("hub lock");
                rooms.extend(
                    hub.rooms
                        .values()
                        .filter(|r| req.names.is_empty() || req.names.contains(&r.info.name))
                        .map(|r| hub.room_info(r)),
                );
            }
            rooms.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(call.encode(&proto::ListRoomsResponse { rooms }))
        }
        "DeleteRoom" => {
            let req: proto::DeleteRoomRequest = call.decode()?;
            if !claims.video.room_create {
                return Err(TwirpError::denied());
            }
            let mut hub = lock(&req.room);
            let identities: Vec<String> = hub
                .rooms
                .get(&req.room)
                .map(|r| r.participants.keys().cloned().collect())
                .unwrap_or_default();
            for id in identities {
                hub.remove_participant(&req.room, &id, Some(proto::DisconnectReason::RoomDeleted));
            }
            hub.finish_room(&req.room);
            Ok(call.encode(&proto::DeleteRoomResponse {}))
        }
        "ListParticipants" => {
            let req: proto::ListParticipantsRequest = call.decode()?;
            admin_of(&claims, &req.room)?;
            let hub = lock(&req.room);
            let participants = hub
                .rooms
                .get(&req.room)
                .map(|r| r.participants.values().map(|p| p.info.clone()).collect())
                .unwrap_or_default();
            Ok(call.encode(&proto::ListParticipantsResponse { participants }))
        }
        "GetParticipant" => {
            let req: proto::RoomParticipantIdentity = call.decode()?;
            admin_of(&claims, &req.room)?;
            let mut hub = lock(&req.room);
            let info = hub
                .participant(&req.room, &req.identity)
                .map(|p| p.info.clone())
                .ok_or_else(|| TwirpError::not_found("participant not found"))?;
            Ok(call.encode(&info))
        }
        "RemoveParticipant" => {
            let req: proto::RoomParticipantIdentity = call.decode()?;
            admin_of(&claims, &req.room)?;
            let mut hub = lock(&req.room);
            if !hub.remove_participant(
                &req.room,
                &req.identity,
                Some(proto::DisconnectReason::ParticipantRemoved),
            ) {
                return Err(TwirpError::not_found("participant not found"));
            }
            Ok(call.encode(&proto::RemoveParticipantResponse {}))
        }
        "UpdateParticipant" => {
            let req: proto::UpdateParticipantRequest = call.decode()?;
            admin_of(&claims, &req.room)?;
            let mut hub = lock(&req.room);
            let info = hub
                .update_participant(&req)
                .ok_or_else(|| TwirpError::not_found("participant not found"))?;
            Ok(call.encode(&info))
        }
        "UpdateRoomMetadata" => {
            let req: proto::UpdateRoomMetadataRequest = call.decode()?;
            admin_of(&claims, &req.room)?;
            let mut hub = lock(&req.room);
            let room = hub
                .update_room_metadata(&req.room, &req.metadata)
                .ok_or_else(|| TwirpError::not_found("room not found"))?;
            Ok(call.encode(&room))
        }
        "SendData" => {
            let req: proto::SendDataRequest = call.decode()?;
            admin_of(&claims, &req.room)?;
            let mut hub = lock(&req.room);
            if !hub.send_server_data(&req) {
                return Err(TwirpError::not_found("room not found"));
            }
            Ok(call.encode(&proto::SendDataResponse {}))
        }
        "MutePublishedTrack" => {
            let req: proto::MuteRoomTrackRequest = call.decode()?;
            admin_of(&claims, &req.room)?;
            let mut hub = lock(&req.room);
            let track = hub
                .mute_published_track(&req)
                .ok_or_else(|| TwirpError::not_found("participant or track not found"))?;
            Ok(call.encode(&proto::MuteRoomTrackResponse { track: Some(track) }))
        }
        "UpdateSubscriptions" => {
            let req: proto::UpdateSubscriptionsRequest = call.decode()?;
            admin_of(&claims, &req.room)?;
            let mut hub = lock(&req.room);
            hub.update_subscription(
                &req.room,
                &req.identity,
                &req.track_sids,
                &req.participant_tracks,
                req.subscribe,
            )
            .map_err(|e| match e {
                SubscriptionError::NoRoom => TwirpError::not_found("room not found"),
                SubscriptionError::NoParticipant => TwirpError::not_found("participant not found"),
            })?;
            Ok(call.encode(&proto::UpdateSubscriptionsResponse {}))
        }
        _ => Err(TwirpError::new(
            "bad_route",
            StatusCode::NOT_FOUND,
            format!("no such method {method}"),
        )),
    }
}
