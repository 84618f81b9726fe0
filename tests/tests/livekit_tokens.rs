//! Token refresh against `switchyard livekit`, as livekit-server does it: a participant
//! whose token expires while it is connected stays, is handed fresh tokens over signalling
//! (`refresh_token`) when its claims change, and can resume with one after the token it
//! joined with has expired, while a resume with that expired token is refused (401).

use livekit_protocol as proto;
use proto::{signal_request, signal_response};
use serde_json::{Value, json};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use switchyard_tests::livekit::{API_KEY, API_SECRET, LivekitServer, http, token, twirp};
use switchyard_tests::need;
use switchyard_tests::signal::{Ws, connect, resume, send, wait_for};

const ROOM: &str = "tokens";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The claims of `jwt` if it verifies with the test secret (HS256, unexpired, no leeway).
fn verified(jwt: &str) -> Option<Value> {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.leeway = 0;
    v.validate_aud = false;
    v.set_required_spec_claims(&["exp", "nbf", "iat"]);
    jsonwebtoken::decode::<Value>(
        jwt,
        &jsonwebtoken::DecodingKey::from_secret(API_SECRET.as_bytes()),
        &v,
    )
    .ok()
    .map(|d| d.claims)
}

/// Waits for a `refresh_token` whose claims satisfy `want`; returns the token and its
/// claims. Tokens that do not verify fail the test.
fn refreshed(ws: &mut Ws, want: impl Fn(&Value) -> bool) -> Option<(String, Value)> {
    wait_for(ws, Duration::from_secs(5), |m| match m {
        signal_response::Message::RefreshToken(t) => {
            let claims = verified(&t).unwrap_or_else(|| panic!("refresh token not valid: {t}"));
            want(&claims).then_some((t, claims))
        }
        _ => None,
    })
}

/// Sends a ping and waits for its pong.
fn pings(ws: &mut Ws, ts: i64) -> bool {
    send(
        ws,
        signal_request::Message::PingReq(proto::Ping {
            timestamp: ts,
            rtt: 0,
        }),
    );
    wait_for(ws, Duration::from_secs(3), |m| match m {
        signal_response::Message::PongResp(p) if p.last_ping_timestamp == ts => Some(()),
        _ => None,
    })
    .is_some()
}

fn validate(server: &LivekitServer, jwt: &str) -> u16 {
    let path = format!("/rtc/validate?access_token={jwt}");
    http(server.http, "GET", &path, &[], b"").0
}

/// Identities in the room, by Twirp `ListParticipants`.
fn listed(server: &LivekitServer, admin: &str) -> Vec<(String, String)> {
    let (s, body) = twirp(server, "ListParticipants", admin, json!({"room": ROOM}));
    assert_eq!(s, 200, "{body}");
    body["participants"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let f = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
                    (f("identity"), f("metadata"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn refreshed_token_outlives_the_joining_one() {
    let server = need!(LivekitServer::start(&[
        "--config-body",
        "room:\n  departure_timeout: 1\n"
    ]));
    let admin = token(
        API_KEY,
        API_SECRET,
        "admin",
        json!({"roomAdmin": true, "room": ROOM, "roomList": true}),
        600,
    );
    // exp a minute ago less 5 s: within the minute of leeway, so accepted for 5 s more.
    let short = token(
        API_KEY,
        API_SECRET,
        "alice",
        json!({"roomJoin": true, "room": ROOM, "canUpdateOwnMetadata": true}),
        -55,
    );
    let expired_at = Instant::now() + Duration::from_secs(5);
    let mut ws = connect(&server, &short).expect("join with the short token refused");
    let sid = wait_for(&mut ws, Duration::from_secs(5), |m| match m {
        signal_response::Message::Join(j) => j.participant.map(|p| p.sid),
        _ => None,
    })
    .expect("no join response");

    // An admin changes the metadata: a token carrying it comes at once.
    let (s, body) = twirp(
        &server,
        "UpdateParticipant",
        &admin,
        json!({"room": ROOM, "identity": "alice", "metadata": "meta-2",
               "attributes": {"seat": "3"}}),
    );
    assert_eq!(s, 200, "{body}");
    let (_, c) = refreshed(&mut ws, |c| c["metadata"] == "meta-2").unwrap_or_else(|| {
        panic!(
            "no refresh_token after UpdateParticipant:\n{}",
            server.log_tail(20)
        )
    });
    assert_eq!(c["iss"], API_KEY);
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["attributes"], json!({"seat": "3"}));
    assert_eq!(c["video"]["room"], ROOM);
    assert_eq!(c["video"]["roomJoin"], true);
    let exp = c["exp"].as_u64().expect("exp");
    let now = unix_now();
    assert!(exp.abs_diff(now + 600) <= 5, "exp {exp}, now {now}");
    assert!(c["nbf"].as_u64().unwrap() <= now && c["iat"].as_u64().unwrap() <= now);

    // The participant renames itself: another token, with the name and the metadata.
    send(
        &mut ws,
        signal_request::Message::UpdateMetadata(proto::UpdateParticipantMetadata {
            name: "Alice".into(),
            ..Default::default()
        }),
    );
    let (fresh, _) = refreshed(&mut ws, |c| {
        c["name"] == "Alice" && c["metadata"] == "meta-2"
    })
    .expect("no refresh_token after update_metadata");

    // Past the original expiry and its leeway the participant is still in, and answering.
    let mut ts = 1;
    while Instant::now() < expired_at + Duration::from_secs(1) {
        assert!(pings(&mut ws, ts), "no pong before expiry");
        ts += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        validate(&server, &short),
        401,
        "the original should have expired"
    );
    assert!(
        pings(&mut ws, ts),
        "no pong after the joining token expired"
    );
    assert_eq!(
        listed(&server, &admin),
        vec![("alice".to_string(), "meta-2".to_string())]
    );

    // The connection drops without a leave. The expired original cannot resume it...
    drop(ws);
    assert_eq!(resume(&server, &short, &sid).err(), Some(401));
    // ...the refreshed token can: same participant, claims kept, and a new token.
    let mut ws = resume(&server, &fresh, &sid).expect("resume with the refreshed token refused");
    wait_for(&mut ws, Duration::from_secs(5), |m| match m {
        signal_response::Message::Reconnect(_) => Some(()),
        _ => None,
    })
    .expect("no reconnect response");
    refreshed(&mut ws, |c| c["name"] == "Alice").expect("no refresh_token on resume");
    assert!(pings(&mut ws, 1000), "no pong after resume");
    let (s, p) = twirp(
        &server,
        "GetParticipant",
        &admin,
        json!({"room": ROOM, "identity": "alice"}),
    );
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        (p["sid"].as_str(), p["name"].as_str()),
        (Some(sid.as_str()), Some("Alice"))
    );

    // Leave: the participant and then (departure timeout 1 s) the room are gone.
    send(
        &mut ws,
        signal_request::Message::Leave(proto::LeaveRequest::default()),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (s, rooms) = twirp(&server, "ListRooms", &admin, json!({}));
        assert_eq!(s, 200, "{rooms}");
        let left = rooms["rooms"].as_array().map_or(0, Vec::len);
        if left == 0 && listed(&server, &admin).is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "room or participant stayed: {rooms}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
