//! Webhooks as livekit-server sends them (`webhook:` in livekit.yaml): each room and
//! participant lifecycle event is POSTed as protojson `WebhookEvent` with
//! `Content-Type: application/webhook+json` and an `Authorization` header holding a JWT
//! (no `Bearer`) signed with the configured API key's secret, valid five minutes, whose
//! `sha256` claim is the base64 SHA-256 of the body. Receivers (lk-jwt-service, the SDKs'
//! `WebhookReceiver`) check exactly that.
//!
//! The hub only queues events; one thread does the HTTP, so a slow or dead receiver never
//! holds the hub's lock. The queue is bounded: when it is full, events are dropped and the
//! next one delivered carries the count in `num_dropped`, as LiveKit's does.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use livekit_protocol as proto;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Where events go and which key signs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// `webhook.api_key`: one of `keys:`; its secret signs the requests.
    pub api_key: String,
    pub api_secret: String,
    /// `webhook.urls`.
    pub urls: Vec<String>,
}

/// Events waiting for the sender thread; beyond this they are dropped and counted.
const QUEUE: usize = 1024;
/// How long one POST may take (connect, send, answer).
const TIMEOUT: Duration = Duration::from_secs(5);
/// The token's lifetime (LiveKit's: five minutes).
const TOKEN_TTL: i64 = 300;

/// The hubs' handle: queues events for the sender thread.
#[derive(Clone)]
pub(crate) struct Webhooks {
    tx: SyncSender<proto::WebhookEvent>,
    dropped: Arc<AtomicI32>,
}

impl Webhooks {
    /// Starts the sender thread.
    pub(crate) fn start(config: WebhookConfig) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let dropped = Arc::new(AtomicI32::new(0));
        let counter = dropped.clone();
        let spawned = std::thread::Builder::new()
            .name("livekit-webhooks".into())
            .spawn(move || deliver(config, rx, counter));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the webhook thread; webhooks are off");
        }
        Webhooks { tx, dropped }
    }

    /// Queues `event` (`room_started`, `participant_joined`, …) about `room`, and the
    /// participant and track when it concerns them.
    pub(crate) fn send(
        &self,
        event: &str,
        room: proto::Room,
        participant: Option<proto::ParticipantInfo>,
        track: Option<proto::TrackInfo>,
    ) {
        let (secs, _) = crate::hub::unix_now();
        let ev = proto::WebhookEvent {
            event: event.to_owned(),
            room: Some(room),
            participant,
            track,
            id: crate::hub::new_sid("EV_"),
            created_at: secs,
            ..Default::default()
        };
        match self.tx.try_send(ev) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn deliver(config: WebhookConfig, rx: Receiver<proto::WebhookEvent>, dropped: Arc<AtomicI32>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    while let Ok(mut event) = rx.recv() {
        #[allow(deprecated)] // LiveKit still fills it.
        {
            event.num_dropped = dropped.swap(0, Ordering::Relaxed);
        }
        let body = match serde_json::to_vec(&event) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "webhook event not encodable");
                continue;
            }
        };
        let auth = match sign(&config, &body) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "webhook token not signable");
                continue;
            }
        };
        for url in &config.urls {
            let sent = agent
                .post(url)
                .header("Content-Type", "application/webhook+json")
                .header("Authorization", &auth)
                .send(&body[..]);
            match sent {
                Ok(r) if r.status().is_success() => {
                    tracing::debug!(url, event = event.event, "webhook delivered");
                }
                Ok(r) => {
                    tracing::warn!(url, event = event.event, status = %r.status(), "webhook refused")
                }
                Err(e) => {
                    tracing::warn!(url, event = event.event, error = %e, "webhook not delivered")
                }
            }
        }
    }
}

#[derive(Serialize)]
struct WebhookClaims<'a> {
    iss: &'a str,
    nbf: i64,
    exp: i64,
    sha256: String,
}

/// The `Authorization` value for `body`.
pub(crate) fn sign(
    config: &WebhookConfig,
    body: &[u8],
) -> Result<String, jsonwebtoken::errors::Error> {
    let (now, _) = crate::hub::unix_now();
    let claims = WebhookClaims {
        iss: &config.api_key,
        nbf: now,
        exp: now + TOKEN_TTL,
        sha256: base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body)),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(config.api_secret.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    fn config(urls: Vec<String>) -> WebhookConfig {
        WebhookConfig {
            api_key: "hookkey".into(),
            api_secret: "a-secret-of-at-least-thirty-two-chars".into(),
            urls,
        }
    }

    /// Reads one HTTP/1.1 request: (request line, headers lowercased, body), then answers 200.
    fn accept_one(l: &TcpListener) -> (String, Vec<(String, String)>, Vec<u8>) {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap();
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        (line, headers, body)
    }

    #[test]
    fn events_are_posted_signed_over_their_body() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let cfg = config(vec![url]);
        let hooks = Webhooks::start(cfg.clone());
        let room = proto::Room {
            name: "r1".into(),
            sid: "RM_x".into(),
            ..Default::default()
        };
        hooks.send("room_started", room, None, None);
        let (line, headers, body) = accept_one(&l);
        assert!(line.starts_with("POST /hook "), "{line}");
        let get = |k: &str| {
            headers
                .iter()
                .find(|(h, _)| h == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(get("content-type"), "application/webhook+json");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["event"], "room_started");
        assert_eq!(json["room"]["name"], "r1");
        assert!(json["id"].as_str().unwrap().starts_with("EV_"));
        // The token verifies with the key's secret and names the body's digest.
        let mut v = jsonwebtoken::Validation::new(Algorithm::HS256);
        v.set_issuer(&["hookkey"]);
        v.set_required_spec_claims(&["exp", "iss"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &get("authorization"),
            &jsonwebtoken::DecodingKey::from_secret(cfg.api_secret.as_bytes()),
            &v,
        )
        .expect("valid token");
        let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&body));
        assert_eq!(data.claims["sha256"], digest);
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        // A queue of one that nobody drains: the second and third events are dropped.
        let (tx, _rx) = std::sync::mpsc::sync_channel(1);
        let hooks = Webhooks {
            tx,
            dropped: Arc::new(AtomicI32::new(0)),
        };
        for _ in 0..3 {
            hooks.send("room_started", proto::Room::default(), None, None);
        }
        assert_eq!(hooks.dropped.load(Ordering::Relaxed), 2);
    }
}
