//! One signalling WebSocket: binary protobuf `SignalRequest`s in, `SignalResponse`s out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use livekit_protocol as proto;
use prost::Message;
use proto::{SignalRequest, SignalResponse, signal_request, signal_response};
use switchyard_sfu::{PcRole, PublisherOffer, SubscriberAnswer};
use tokio::sync::mpsc;

use crate::hub::{Hub, Outbound, SignalPath};
use crate::token::Claims;

/// Largest signalling frame accepted (livekit-server's default limit).
pub(crate) const MAX_SIGNAL_BYTES: usize = 2 * 1024 * 1024;
/// Grace period for a resume after the WebSocket drops without a leave.
const RESUME_GRACE: Duration = Duration::from_secs(10);
/// A client that sends nothing (not even its pings, every 5 s) for this long is gone; the
/// same value is announced in `JoinResponse.ping_timeout`.
pub(crate) const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// How the session starts.
pub(crate) enum Start {
    /// `/rtc`: `auto_subscribe` is the query parameter (absent: true).
    Join {
        auto_subscribe: bool,
    },
    /// `/rtc/v1`: join with the client's first offer (and tracks) inline.
    JoinV1(Box<proto::JoinRequest>),
    Resume {
        sid: String,
    },
}

/// Largest decompressed `join_request`.
const MAX_JOIN_REQUEST: u64 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum JoinRequestError {
    #[error("join_request is not base64")]
    Base64,
    #[error("join_request is not a WrappedJoinRequest")]
    Wrapped,
    #[error("join_request does not decompress")]
    Gzip,
    #[error("join_request is too large")]
    TooLarge,
    #[error("join_request is not a JoinRequest")]
    Join,
}

/// Decodes the `join_request` query parameter: URL-safe base64 (padding optional) of a
/// `WrappedJoinRequest`, whose payload may be gzip'd.
pub fn decode_join_request(param: &str) -> Result<proto::JoinRequest, JoinRequestError> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use std::io::Read;
    let raw = URL_SAFE_NO_PAD
        .decode(param.trim_end_matches('='))
        .map_err(|_| JoinRequestError::Base64)?;
    let wrapped =
        proto::WrappedJoinRequest::decode(raw.as_slice()).map_err(|_| JoinRequestError::Wrapped)?;
    let bytes = if wrapped.compression == proto::wrapped_join_request::Compression::Gzip as i32 {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(wrapped.join_request.as_slice())
            .take(MAX_JOIN_REQUEST + 1)
            .read_to_end(&mut out)
            .map_err(|_| JoinRequestError::Gzip)?;
        out
    } else {
        wrapped.join_request
    };
    if bytes.len() as u64 > MAX_JOIN_REQUEST {
        return Err(JoinRequestError::TooLarge);
    }
    proto::JoinRequest::decode(bytes.as_slice()).map_err(|_| JoinRequestError::Join)
}

/// Decodes one client frame. Kept separate for the fuzz target.
pub fn decode_request(bytes: &[u8]) -> Option<signal_request::Message> {
    if bytes.len() > MAX_SIGNAL_BYTES {
        return None;
    }
    SignalRequest::decode(bytes).ok()?.message
}

/// `(cid, mid)` for every m-section of an SDP that carries `a=msid:<stream> <track>`: the
/// JS SDK's `cid` is the MediaStreamTrack id, which is the msid track part.
pub fn msid_by_mid(sdp: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut mid: Option<String> = None;
    let mut track: Option<String> = None;
    let mut flush = |mid: &mut Option<String>, track: &mut Option<String>| {
        if let (Some(m), Some(t)) = (mid.take(), track.take()) {
            out.push((t, m));
        }
    };
    for line in sdp.lines() {
        let line = line.trim_end();
        if line.starts_with("m=") {
            flush(&mut mid, &mut track);
        } else if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.to_owned());
        } else if let Some(ms) = line.strip_prefix("a=msid:")
            && let Some(t) = ms.split_whitespace().nth(1)
        {
            track = Some(t.to_owned());
        }
    }
    flush(&mut mid, &mut track);
    out
}

fn now_ms() -> i64 {
    crate::hub::unix_now().1
}

fn respond(m: signal_response::Message) -> Vec<u8> {
    SignalResponse { message: Some(m) }.encode_to_vec()
}

pub(crate) async fn run(
    mut ws: WebSocket,
    hub: Arc<Mutex<Hub>>,
    claims: Claims,
    start: Start,
    path: SignalPath,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let room = claims.video.room.clone();
    let identity = claims.identity().to_owned();
    let mut first: Option<Box<proto::JoinRequest>> = None;
    let joined = {
        let mut h = hub.lock().expect("hub lock");
        match start {
            Start::Join { auto_subscribe } => h
                .join(claims.clone(), tx, path, auto_subscribe)
                .map(|(_, s)| s),
            Start::JoinV1(req) if req.reconnect && !req.participant_sid.is_empty() => {
                let r = h.resume(&claims, &req.participant_sid, tx);
                first = Some(req);
                r
            }
            Start::JoinV1(req) => {
                // Without connection settings a v1 client gets livekit-server's default.
                let auto_subscribe = req
                    .connection_settings
                    .as_ref()
                    .is_none_or(|c| c.auto_subscribe);
                first = Some(req);
                h.join(claims.clone(), tx, path, auto_subscribe)
                    .map(|(_, s)| s)
            }
            Start::Resume { sid } => h.resume(&claims, &sid, tx),
        }
    };
    let session = match joined {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(room, identity, "join refused: {e}");
            let _ = ws
                .send(WsMessage::Binary(
                    respond(signal_response::Message::Leave(proto::LeaveRequest {
                        reason: proto::DisconnectReason::JoinFailure as i32,
                        action: proto::leave_request::Action::Disconnect as i32,
                        ..Default::default()
                    }))
                    .into(),
                ))
                .await;
            let _ = ws.send(WsMessage::Close(None)).await;
            return;
        }
    };
    // cid → TR_ sid of tracks announced by add_track whose m-line has not been offered yet.
    let mut pending_cids: HashMap<String, String> = HashMap::new();
    let mut left = false;
    // v1: the join request carries the first tracks and offer; handle them as if sent.
    if let Some(req) = first {
        let req = *req;
        // `join` (queued by the hub) must go out before the answer to the inline offer.
        while let Ok(Outbound::Signal(m)) = rx.try_recv() {
            if ws
                .send(WsMessage::Binary(m.encode_to_vec().into()))
                .await
                .is_err()
            {
                return;
            }
        }
        let mut inline: Vec<signal_request::Message> = req
            .add_track_requests
            .into_iter()
            .map(signal_request::Message::AddTrack)
            .collect();
        if let Some(offer) = req.publisher_offer {
            inline.push(signal_request::Message::Offer(offer));
        }
        for m in inline {
            if let Flow::Close | Flow::Leave =
                handle(&hub, &room, &identity, m, &mut pending_cids, &mut ws).await
            {
                let mut h = hub.lock().expect("hub lock");
                h.remove_participant(&room, &identity, None);
                return;
            }
        }
    }
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(last_heard + PING_TIMEOUT) => {
                tracing::info!(room, identity, "ping timeout, dropping the signalling connection");
                break;
            }
            out = rx.recv() => match out {
                Some(Outbound::Signal(m)) => {
                    if ws.send(WsMessage::Binary(m.encode_to_vec().into())).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close) => {
                    left = true;
                    let _ = ws.send(WsMessage::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
                    break;
                }
                None => break,
            },
            msg = ws.recv() => {
                let Some(Ok(msg)) = msg else { break };
                last_heard = tokio::time::Instant::now();
                let bytes = match msg {
                    WsMessage::Binary(b) => b,
                    WsMessage::Close(_) => break,
                    WsMessage::Text(_) => {
                        tracing::debug!(room, identity, "JSON signalling is not supported");
                        break;
                    }
                    _ => continue,
                };
                let Some(req) = decode_request(&bytes) else {
                    tracing::info!(room, identity, len = bytes.len(), "undecodable signal frame, closing");
                    break;
                };
                match handle(&hub, &room, &identity, req, &mut pending_cids, &mut ws).await {
                    Flow::Continue => {}
                    Flow::Leave => { left = true; break; }
                    Flow::Close => break,
                }
            }
        }
    }
    let mut h = hub.lock().expect("hub lock");
    if left {
        if h.is_current(&room, &identity, session) {
            h.remove_participant(&room, &identity, None);
        }
        return;
    }
    h.detach(&room, &identity, session);
    drop(h);
    // No leave: keep the participant around for a resume, then drop it.
    tokio::spawn(async move {
        tokio::time::sleep(RESUME_GRACE).await;
        let mut h = hub.lock().expect("hub lock");
        if h.is_current(&room, &identity, session) {
            tracing::info!(room, identity, "no resume after disconnect, removing");
            h.abort_participant(&room, &identity);
        }
    });
}

enum Flow {
    Continue,
    Leave,
    Close,
}

async fn handle(
    hub: &Arc<Mutex<Hub>>,
    room: &str,
    identity: &str,
    req: signal_request::Message,
    pending_cids: &mut HashMap<String, String>,
    ws: &mut WebSocket,
) -> Flow {
    use signal_request::Message as M;
    // Client SDP is parsed before the hub lock is taken: str0m needs 3–4 ms for a
    // ten-person call's answer, and the hub's media thread waits on this lock.
    let offer = match &req {
        M::Offer(sd) => Some(PublisherOffer::parse(&sd.sdp)),
        _ => None,
    };
    let answer = match &req {
        M::Answer(sd) => Some(SubscriberAnswer::parse(&sd.sdp)),
        _ => None,
    };
    let reply = {
        let mut h = hub.lock().expect("hub lock");
        let Some(router_id) = h.participant(room, identity).map(|p| p.router) else {
            return Flow::Close;
        };
        match req {
            M::Offer(sd) => {
                let mids = msid_by_mid(&sd.sdp);
                h.bind_mids(room, identity, &mids, pending_cids);
                pending_cids.retain(|cid, _| !mids.iter().any(|(c, _)| c == cid));
                let now = std::time::Instant::now();
                let r = offer
                    .unwrap_or_else(|| PublisherOffer::parse(&sd.sdp))
                    .and_then(|o| h.router().handle_publisher_offer(router_id, o, now));
                h.flush();
                match r {
                    Ok(sdp) => {
                        let mid_to_track_id = h.mid_to_track_id(room, identity);
                        Some(signal_response::Message::Answer(
                            proto::SessionDescription {
                                r#type: "answer".into(),
                                sdp,
                                id: sd.id,
                                mid_to_track_id,
                            },
                        ))
                    }
                    Err(e) => {
                        tracing::info!(room, identity, "publisher offer refused: {e}");
                        return Flow::Close;
                    }
                }
            }
            M::Answer(sd) => {
                let now = std::time::Instant::now();
                let r = answer
                    .unwrap_or_else(|| SubscriberAnswer::parse(&sd.sdp))
                    .and_then(|a| h.router().handle_subscriber_answer(router_id, a, now));
                h.flush();
                if let Err(e) = r {
                    tracing::debug!(room, identity, "subscriber answer refused: {e}");
                }
                None
            }
            M::Trickle(t) => {
                let role = if t.target == proto::SignalTarget::Subscriber as i32 {
                    PcRole::Subscriber
                } else {
                    PcRole::Publisher
                };
                if let Some(c) = candidate_of(&t.candidate_init) {
                    let _ = h.router().add_remote_candidate(router_id, role, &c);
                    h.flush();
                }
                None
            }
            M::AddTrack(req) => {
                let cid = req.cid.clone();
                match h.add_track(room, identity, req) {
                    Ok(track) => {
                        pending_cids.insert(cid.clone(), track.sid.clone());
                        Some(signal_response::Message::TrackPublished(
                            proto::TrackPublishedResponse {
                                cid,
                                track: Some(track),
                            },
                        ))
                    }
                    Err(why) => {
                        tracing::info!(room, identity, cid, "add_track refused: {why}");
                        Some(signal_response::Message::RequestResponse(
                            proto::RequestResponse {
                                reason: proto::request_response::Reason::NotAllowed as i32,
                                message: why.into(),
                                ..Default::default()
                            },
                        ))
                    }
                }
            }
            M::Mute(m) => {
                let mut changed = false;
                if let Some(p) = h.participant(room, identity)
                    && let Some(t) = p.tracks.iter_mut().find(|t| t.info.sid == m.sid)
                    && t.info.muted != m.muted
                {
                    t.info.muted = m.muted;
                    changed = true;
                }
                if changed {
                    h.participant_changed(room, identity);
                }
                None
            }
            M::TrackSetting(s) => {
                h.track_settings(room, identity, &s);
                h.flush();
                None
            }
            M::Subscription(u) => {
                // The session is gone only if the participant is; nothing to answer then.
                let _ = h.update_subscription(
                    room,
                    identity,
                    &u.track_sids,
                    &u.participant_tracks,
                    u.subscribe,
                );
                None
            }
            M::Leave(_) => {
                h.remove_participant(room, identity, None);
                return Flow::Leave;
            }
            M::Ping(ts) => Some(signal_response::Message::Pong(ts)),
            M::PingReq(p) => Some(signal_response::Message::PongResp(proto::Pong {
                last_ping_timestamp: p.timestamp,
                timestamp: now_ms(),
            })),
            M::UpdateMetadata(u) => {
                if !h.update_own_metadata(room, identity, &u) {
                    tracing::debug!(
                        room,
                        identity,
                        "update_metadata without canUpdateOwnMetadata, ignored"
                    );
                }
                None
            }
            // The rest is accepted and ignored.
            _ => None,
        }
    };
    if let Some(m) = reply
        && ws.send(WsMessage::Binary(respond(m).into())).await.is_err()
    {
        return Flow::Close;
    }
    Flow::Continue
}

/// The `candidate:` attribute of a JSON `RTCIceCandidateInit`, unless it is an mDNS
/// (`.local`) candidate, which a server cannot resolve.
fn candidate_of(init: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(init).ok()?;
    let c = v.get("candidate")?.as_str()?;
    if c.is_empty() || c.split_whitespace().any(|w| w.ends_with(".local")) {
        return None;
    }
    Some(c.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msid_per_mid() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=msid:s1 trackA\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=msid:- trackB\r\n\
                   m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n";
        assert_eq!(
            msid_by_mid(sdp),
            vec![("trackA".into(), "0".into()), ("trackB".into(), "1".into())]
        );
    }

    #[test]
    fn candidates_skip_mdns() {
        assert_eq!(
            candidate_of(r#"{"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host","sdpMid":"0"}"#).as_deref(),
            Some("candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host")
        );
        assert_eq!(
            candidate_of(
                r#"{"candidate":"candidate:1 1 udp 2122260223 abcd-ef.local 5000 typ host"}"#
            ),
            None
        );
        assert_eq!(candidate_of("not json"), None);
    }

    #[test]
    fn oversized_and_garbage_frames_are_refused() {
        assert!(decode_request(&vec![0u8; MAX_SIGNAL_BYTES + 1]).is_none());
        assert!(decode_request(&[0xff, 0xff, 0xff]).is_none());
        let ping = SignalRequest {
            message: Some(signal_request::Message::PingReq(proto::Ping {
                timestamp: 5,
                rtt: 0,
            })),
        }
        .encode_to_vec();
        assert!(matches!(
            decode_request(&ping),
            Some(signal_request::Message::PingReq(_))
        ));
    }
}
