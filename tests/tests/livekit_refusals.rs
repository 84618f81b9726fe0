//! Bad input against `switchyard livekit`: tokens that must be refused (before the WebSocket
//! upgrade, with livekit-server's statuses), grants that must be enforced, malformed and
//! oversized signalling frames, and a client that vanishes without a leave. After each, the
//! server must still serve the next valid client; a loop of joins and leaves leaks nothing.

use livekit_protocol as proto;
use proto::{signal_request, signal_response};
use serde_json::json;
use std::time::{Duration, Instant};
use switchyard_tests::livekit::{
    API_KEY, API_SECRET, LivekitServer, http, join_token, token, twirp,
};
use switchyard_tests::need;
use switchyard_tests::signal::{self, Ws, connect, join, send, wait_for};
use tungstenite::Message as WsMessage;

fn validate(server: &LivekitServer, token: &str) -> u16 {
    http(
        server.http,
        "GET",
        &format!("/rtc/validate?access_token={token}"),
        &[],
        b"",
    )
    .0
}

/// True once the socket is closed by the server (or errors), within `timeout`; whatever
/// else arrives meanwhile is skipped.
fn closed_within(ws: &mut Ws, timeout: Duration) -> bool {
    signal::read_until(ws, timeout, |_| None::<()>) == signal::ReadEnd::Closed
}

fn add_track(
    source: proto::TrackSource,
    kind: proto::TrackType,
    cid: &str,
) -> signal_request::Message {
    signal_request::Message::AddTrack(proto::AddTrackRequest {
        cid: cid.into(),
        name: cid.into(),
        r#type: kind as i32,
        source: source as i32,
        ..Default::default()
    })
}

/// Waits for the answer to an add_track: Ok(track sid) or Err(()) when refused.
fn add_track_outcome(ws: &mut Ws, cid: &str) -> Result<String, ()> {
    wait_for(ws, Duration::from_secs(5), |m| match m {
        signal_response::Message::TrackPublished(t) if t.cid == cid => {
            Some(Ok(t.track.map(|t| t.sid).unwrap_or_default()))
        }
        signal_response::Message::RequestResponse(r)
            if r.reason == proto::request_response::Reason::NotAllowed as i32 =>
        {
            Some(Err(()))
        }
        _ => None,
    })
    .expect("no answer to add_track")
}

#[test]
fn tokens_are_checked_before_upgrade() {
    let server = need!(LivekitServer::start(&[]));
    let room = json!({"roomJoin": true, "room": "r"});
    let good = join_token("alice", "r", json!({}));
    assert_eq!(validate(&server, &good), 200);

    let garbage = "not.a.token";
    let expired = token(API_KEY, API_SECRET, "alice", room.clone(), -3600);
    let unknown_key = token("nokey", API_SECRET, "alice", room.clone(), 600);
    let wrong_secret = token(
        API_KEY,
        "some-other-secret-of-enough-length!!",
        "alice",
        room.clone(),
        600,
    );
    let no_join = token(API_KEY, API_SECRET, "alice", json!({"room": "r"}), 600);
    for (what, t) in [
        ("garbage", garbage.to_string()),
        ("expired", expired),
        ("unknown key", unknown_key),
        ("wrong secret", wrong_secret),
        ("no roomJoin", no_join),
    ] {
        assert_eq!(validate(&server, &t), 401, "{what} via /rtc/validate");
        assert_eq!(connect(&server, &t).err(), Some(401), "{what} via /rtc");
    }
    assert_eq!(validate(&server, ""), 401, "missing token");
    // A plain GET on /rtc is not a WebSocket: 404, as livekit-server.
    assert_eq!(http(server.http, "GET", "/rtc", &[], b"").0, 404);
    // /rtc/v1 without join_request is a bad request.
    assert_eq!(
        http(
            server.http,
            "GET",
            &format!("/rtc/v1/validate?access_token={good}"),
            &[],
            b""
        )
        .0,
        400
    );
    // Still serving.
    let (_ws, j) = join(&server, "alice", "r", json!({}));
    assert_eq!(j.participant.unwrap().identity, "alice");
}

#[test]
fn publish_grants_are_enforced() {
    let server = need!(LivekitServer::start(&[]));
    let (mut viewer, j) = join(&server, "viewer", "g", json!({"canPublish": false}));
    let perm = j.participant.unwrap().permission.unwrap();
    assert!(!perm.can_publish && !perm.can_publish_data && perm.can_subscribe);
    send(
        &mut viewer,
        add_track(
            proto::TrackSource::Microphone,
            proto::TrackType::Audio,
            "mic",
        ),
    );
    assert_eq!(add_track_outcome(&mut viewer, "mic"), Err(()));

    let (mut mic_only, _) = join(
        &server,
        "speaker",
        "g",
        json!({"canPublishSources": ["microphone"]}),
    );
    send(
        &mut mic_only,
        add_track(proto::TrackSource::Camera, proto::TrackType::Video, "cam"),
    );
    assert_eq!(add_track_outcome(&mut mic_only, "cam"), Err(()));
    send(
        &mut mic_only,
        add_track(
            proto::TrackSource::Microphone,
            proto::TrackType::Audio,
            "mic2",
        ),
    );
    let sid = add_track_outcome(&mut mic_only, "mic2").expect("microphone allowed");
    assert!(sid.starts_with("TR_"), "{sid}");
}

#[test]
fn malformed_and_oversized_frames_close_only_that_session() {
    let server = need!(LivekitServer::start(&[]));
    let (mut ws, _) = join(&server, "fuzzy", "m", json!({}));
    ws.send(WsMessage::Binary(vec![0xff, 0xff, 0xff, 0x0f, 0x01].into()))
        .unwrap();
    assert!(
        closed_within(&mut ws, Duration::from_secs(5)),
        "garbage frame not refused"
    );

    let (mut ws, _) = join(&server, "big", "m", json!({}));
    let _ = ws.send(WsMessage::Binary(vec![0u8; 3 * 1024 * 1024].into()));
    assert!(
        closed_within(&mut ws, Duration::from_secs(5)),
        "oversized frame not refused"
    );

    // A ping still gets its pong on a fresh, valid session.
    let (mut ws, _) = join(&server, "after", "m", json!({}));
    send(
        &mut ws,
        signal_request::Message::PingReq(proto::Ping {
            timestamp: 42,
            rtt: 0,
        }),
    );
    let pong = wait_for(&mut ws, Duration::from_secs(5), |m| match m {
        signal_response::Message::PongResp(p) => Some(p),
        _ => None,
    })
    .expect("no pong");
    assert_eq!(pong.last_ping_timestamp, 42);
}

#[test]
fn vanished_client_is_cleaned_up_and_leave_is_broadcast() {
    let server = need!(LivekitServer::start(&[]));
    let (mut stay, _) = join(&server, "stay", "v", json!({}));
    let (gone, _) = join(&server, "gone", "v", json!({}));
    let gone_sid = wait_for(&mut stay, Duration::from_secs(5), |m| match m {
        signal_response::Message::Update(u) => u
            .participants
            .into_iter()
            .find(|p| p.identity == "gone")
            .map(|p| p.sid),
        _ => None,
    })
    .expect("join of `gone` not announced");
    // Drop the TCP connection without a leave or a close frame.
    drop(gone);
    let left = wait_for(&mut stay, Duration::from_secs(20), |m| match m {
        signal_response::Message::Update(u) => u.participants.into_iter().find(|p| {
            p.sid == gone_sid && p.state == proto::participant_info::State::Disconnected as i32
        }),
        _ => None,
    });
    assert!(
        left.is_some(),
        "no DISCONNECTED update for a vanished client:\n{}",
        server.log_tail(20)
    );

    // A clean leave is broadcast too, and the server keeps serving.
    let (mut polite, _) = join(&server, "polite", "v", json!({}));
    send(
        &mut polite,
        signal_request::Message::Leave(proto::LeaveRequest::default()),
    );
    let left = wait_for(&mut stay, Duration::from_secs(5), |m| match m {
        signal_response::Message::Update(u) => u.participants.into_iter().find(|p| {
            p.identity == "polite" && p.state == proto::participant_info::State::Disconnected as i32
        }),
        _ => None,
    });
    assert!(left.is_some(), "leave not broadcast");
}

#[test]
fn twirp_admin_grants_are_per_room_and_empty_rooms_expire() {
    let server = need!(LivekitServer::start(&[]));
    let creator = token(
        API_KEY,
        API_SECRET,
        "svc",
        json!({"roomCreate": true, "roomList": true}),
        600,
    );
    let (s, room) = twirp(
        &server,
        "CreateRoom",
        &creator,
        json!({"name": "short", "empty_timeout": 1}),
    );
    assert_eq!(s, 200, "{room}");
    assert_eq!(room["name"], "short");
    let (_ws, _) = join(&server, "member", "kept", json!({}));

    // roomAdmin for another room does not reach into this one.
    let admin_other = token(
        API_KEY,
        API_SECRET,
        "svc",
        json!({"roomAdmin": true, "room": "other"}),
        600,
    );
    let (s, e) = twirp(
        &server,
        "ListParticipants",
        &admin_other,
        json!({"room": "kept"}),
    );
    assert_eq!((s, e["code"].as_str()), (403, Some("permission_denied")));
    let admin = token(
        API_KEY,
        API_SECRET,
        "svc",
        json!({"roomAdmin": true, "room": "kept"}),
        600,
    );
    let (s, p) = twirp(
        &server,
        "GetParticipant",
        &admin,
        json!({"room": "kept", "identity": "member"}),
    );
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["identity"], "member");
    // Without roomCreate, no CreateRoom.
    let (s, e) = twirp(&server, "CreateRoom", &admin, json!({"name": "x"}));
    assert_eq!((s, e["code"].as_str()), (403, Some("permission_denied")));

    // The room nobody joined goes after its empty timeout; the occupied one stays.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = twirp(&server, "ListRooms", &creator, json!({}));
        let names: Vec<&str> = list["rooms"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["name"].as_str()).collect())
            .unwrap_or_default();
        if !names.contains(&"short") {
            assert!(names.contains(&"kept"), "{names:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "empty room never closed: {names:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A client whose connection stays open but which stops sending (not even pings) is dropped
/// after the announced ping timeout and, with no resume, removed; its peers are told.
#[test]
fn silent_client_times_out() {
    let server = need!(LivekitServer::start(&[]));
    let (mut stay, j) = join(&server, "stay", "quiet", json!({}));
    assert_eq!(j.ping_timeout, 15);
    let (_silent, _) = join(&server, "silent", "quiet", json!({}));
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut gone = false;
    while Instant::now() < deadline && !gone {
        send(
            &mut stay,
            signal_request::Message::PingReq(proto::Ping {
                timestamp: 1,
                rtt: 0,
            }),
        );
        gone = wait_for(&mut stay, Duration::from_secs(2), |m| match m {
            signal_response::Message::Update(u) => u.participants.into_iter().find(|p| {
                p.identity == "silent"
                    && p.state == proto::participant_info::State::Disconnected as i32
            }),
            _ => None,
        })
        .is_some();
    }
    assert!(
        gone,
        "silent client never timed out:\n{}",
        server.log_tail(20)
    );
    assert!(server.log().contains("ping timeout"));
}

/// Resident set size of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// 100 joins, half leaving cleanly and half vanishing (the TCP connection dropped with no
/// leave), in rooms that come and go: participants and rooms return to zero and memory
/// does not grow with the number of sessions served.
#[test]
fn joins_and_leaves_in_a_loop_leak_nothing() {
    let p = switchyard_tests::ports::allocate();
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], p.relay_min));
    let body = format!(
        "prometheus:\n  port: {}\nroom:\n  departure_timeout: 1\n",
        p.relay_min
    );
    let mut server = need!(LivekitServer::start(&["--config-body", &body]));
    let gauge = |name: &str| {
        let text = switchyard_tests::metrics::scrape(metrics);
        switchyard_tests::metrics::sample(&text, name).unwrap_or_else(|| panic!("{name}:\n{text}"))
    };
    let session = |i: usize| {
        let room = format!("loop-{}", i % 5);
        let (mut ws, j) = join(&server, &format!("p{i}"), &room, json!({}));
        assert!(j.participant.is_some());
        if i.is_multiple_of(2) {
            send(
                &mut ws,
                signal_request::Message::Leave(proto::LeaveRequest::default()),
            );
            let _ = ws.close(None);
            let _ = ws.flush();
        }
        // Odd sessions just vanish.
        drop(ws);
    };
    // A vanished participant is kept for the 10 s in which it may resume, then its room
    // for the 1 s departure timeout.
    let settle = |what: &str| {
        let end = Instant::now() + Duration::from_secs(25);
        while gauge("livekit_participant_total") != 0.0 || gauge("livekit_room_total") != 0.0 {
            assert!(Instant::now() < end, "{what}: participants or rooms stayed");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // A first round of the same size: allocator pools, thread stacks, lazily built
    // state. The vanished half is alive together for its grace period, so the heap's
    // high-water mark is set by the round's size; a second round must reuse it.
    for i in 0..100 {
        session(i);
    }
    settle("first round");
    let before = rss_kib(server.pid());
    for i in 100..200 {
        session(i);
    }
    settle("second round");
    let after = rss_kib(server.pid());
    eprintln!("server RSS over a second round of 100 sessions: {before} KiB -> {after} KiB");
    server.assert_alive();
    assert!(
        after <= before + 2048,
        "RSS grew from {before} KiB to {after} KiB over a second round of 100 sessions"
    );
}
