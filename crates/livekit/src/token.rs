//! LiveKit access tokens: HS256 JWTs whose `iss` names the API key and whose `video` claim
//! carries the grants. Verified here; the server mints its own (refreshed tokens) in
//! [`mint`].

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use livekit_protocol::{ParticipantPermission, TrackSource};
use serde::{Deserialize, Serialize};

mod mint;
pub use mint::mint;

/// Clock skew tolerated on `exp`/`nbf`, as livekit-server.
const LEEWAY_SECS: u64 = 60;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unknown API key")]
    UnknownKey,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token has expired")]
    Expired,
}

/// The `video` grant. Absent booleans are `false`; the `Option`s have LiveKit's defaults
/// applied by the accessors. Every field livekit-server knows is kept, even those this
/// server does not act on, so a refreshed token grants exactly what the original did;
/// serialised, unset fields are left out as livekit-server leaves them out (`omitempty`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VideoGrant {
    #[serde(skip_serializing_if = "is_false")]
    pub room_create: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub room_list: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub room_record: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub room_admin: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub room_join: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub room: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_publish: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_subscribe: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_publish_data: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub can_publish_sources: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_update_own_metadata: Option<bool>,
    #[serde(skip_serializing_if = "is_false")]
    pub ingress_admin: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub hidden: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub recorder: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub agent: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_subscribe_metrics: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_manage_agent_session: Option<bool>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub destination_room: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `camera`, `screen_share`…: a track source as grants name it (the proto name, lowercase).
fn source_name(source: TrackSource) -> String {
    source.as_str_name().to_lowercase()
}

impl VideoGrant {
    pub fn can_publish(&self) -> bool {
        self.can_publish.unwrap_or(true)
    }
    pub fn can_subscribe(&self) -> bool {
        self.can_subscribe.unwrap_or(true)
    }
    /// Defaults to `can_publish`.
    pub fn can_publish_data(&self) -> bool {
        self.can_publish_data.unwrap_or_else(|| self.can_publish())
    }
    pub fn can_update_own_metadata(&self) -> bool {
        self.can_update_own_metadata.unwrap_or(false)
    }
    /// Sources this token may publish; empty means all.
    pub fn publish_sources(&self) -> Vec<TrackSource> {
        self.can_publish_sources
            .iter()
            .filter_map(|s| match s.as_str() {
                "camera" => Some(TrackSource::Camera),
                "microphone" => Some(TrackSource::Microphone),
                "screen_share" => Some(TrackSource::ScreenShare),
                "screen_share_audio" => Some(TrackSource::ScreenShareAudio),
                _ => None,
            })
            .collect()
    }
    /// Whether a track of `source` may be published.
    pub fn may_publish_source(&self, source: TrackSource) -> bool {
        if !self.can_publish() {
            return false;
        }
        self.can_publish_sources.is_empty() || self.publish_sources().contains(&source)
    }

    /// The permission a participant holding this grant has (`ParticipantInfo.permission`).
    // `recorder` and `agent` are deprecated in the proto; livekit-server still fills them.
    #[allow(deprecated)]
    pub fn to_permission(&self) -> ParticipantPermission {
        ParticipantPermission {
            can_subscribe: self.can_subscribe(),
            can_publish: self.can_publish(),
            can_publish_data: self.can_publish_data(),
            can_publish_sources: self
                .publish_sources()
                .into_iter()
                .map(|s| s as i32)
                .collect(),
            hidden: self.hidden,
            recorder: self.recorder,
            can_update_metadata: self.can_update_own_metadata(),
            agent: self.agent,
            can_subscribe_metrics: self.can_subscribe_metrics.unwrap_or(false),
            can_manage_agent_session: self.can_manage_agent_session.unwrap_or(false),
        }
    }

    /// Overwrites the in-room permissions with `p` (Twirp `UpdateParticipant`), setting each
    /// explicitly as livekit-server does, so a refreshed token carries what is now in effect.
    /// Room-level grants (`room`, `roomJoin`, admin rights) are untouched.
    #[allow(deprecated)]
    pub fn update_from_permission(&mut self, p: &ParticipantPermission) {
        self.can_publish = Some(p.can_publish);
        self.can_publish_data = Some(p.can_publish_data);
        self.can_publish_sources = p
            .can_publish_sources
            .iter()
            .map(|s| source_name(TrackSource::try_from(*s).unwrap_or(TrackSource::Unknown)))
            .collect();
        self.can_subscribe = Some(p.can_subscribe);
        self.can_update_own_metadata = Some(p.can_update_metadata);
        self.hidden = p.hidden;
        self.recorder = p.recorder;
        self.agent = p.agent;
        self.can_subscribe_metrics = Some(p.can_subscribe_metrics);
        self.can_manage_agent_session = Some(p.can_manage_agent_session);
    }
}

/// The claims of a verified token.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    /// The API key that signed it.
    pub iss: String,
    /// The participant identity.
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub jti: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub metadata: String,
    #[serde(default)]
    pub attributes: HashMap<String, String>,
    #[serde(default)]
    pub video: VideoGrant,
    /// Expiry, Unix seconds (required by [`verify`]). A refreshed token lasts at least as
    /// long as the original would have.
    #[serde(default)]
    pub exp: u64,
    /// `standard`, `agent`…; empty means standard.
    #[serde(default)]
    pub kind: String,
    /// Cloud room preset, carried into refreshed tokens.
    #[serde(default, rename = "roomPreset")]
    pub room_preset: String,
    /// Room configuration for a room this participant creates, carried into refreshed
    /// tokens as it came.
    #[serde(default, rename = "roomConfig")]
    pub room_config: Option<serde_json::Value>,
}

impl Claims {
    /// `sub`, or `jti` for tokens that only set that.
    pub fn identity(&self) -> &str {
        if self.sub.is_empty() {
            &self.jti
        } else {
            &self.sub
        }
    }
}

#[derive(Deserialize)]
struct Issuer {
    iss: String,
}

/// Verifies `token` against `keys` (key → secret): HS256 only, `exp` required, one minute of
/// leeway. Uses the system clock.
pub fn verify(token: &str, keys: &[(String, String)]) -> Result<Claims, TokenError> {
    let payload = token.split('.').nth(1).ok_or(TokenError::Malformed)?;
    let raw = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed)?;
    let issuer: Issuer = serde_json::from_slice(&raw).map_err(|_| TokenError::Malformed)?;
    let secret = keys
        .iter()
        .find(|(k, _)| *k == issuer.iss)
        .map(|(_, s)| s)
        .ok_or(TokenError::UnknownKey)?;
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = LEEWAY_SECS;
    v.validate_nbf = true;
    v.validate_aud = false;
    v.set_required_spec_claims(&["exp"]);
    jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret.as_bytes()), &v)
        .map(|d| d.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid(e.to_string()),
        })
}

/// Reads the bearer token of an `Authorization` header value.
pub fn bearer(header: &str) -> Option<&str> {
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// Unix seconds, for `exp`/`nbf` in test tokens (the `mint` tests use it too).
    pub(super) fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn keys() -> Vec<(String, String)> {
        vec![
            ("devkey".into(), "secret".into()),
            ("other".into(), "another-secret".into()),
        ]
    }

    fn sign(claims: serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn valid_token_with_defaults() {
        let t = sign(
            json!({"iss": "devkey", "sub": "alice", "exp": now() + 600,
                   "video": {"roomJoin": true, "room": "r1"}}),
            "secret",
        );
        let c = verify(&t, &keys()).unwrap();
        assert_eq!(c.identity(), "alice");
        assert!(c.video.room_join);
        assert_eq!(c.video.room, "r1");
        assert!(c.video.can_publish() && c.video.can_subscribe() && c.video.can_publish_data());
        assert!(!c.video.can_update_own_metadata());
        assert!(c.video.may_publish_source(TrackSource::ScreenShare));
    }

    #[test]
    fn grants_narrow_permissions() {
        let t = sign(
            json!({"iss": "other", "sub": "bob", "exp": now() + 600,
                   "video": {"roomJoin": true, "room": "r", "canPublish": true,
                             "canPublishSources": ["microphone"], "canSubscribe": false}}),
            "another-secret",
        );
        let c = verify(&t, &keys()).unwrap();
        assert!(!c.video.can_subscribe());
        assert!(c.video.may_publish_source(TrackSource::Microphone));
        assert!(!c.video.may_publish_source(TrackSource::Camera));
        let t = sign(
            json!({"iss": "other", "sub": "bob", "exp": now() + 600,
                   "video": {"roomJoin": true, "room": "r", "canPublish": false}}),
            "another-secret",
        );
        let c = verify(&t, &keys()).unwrap();
        assert!(!c.video.can_publish_data());
        assert!(!c.video.may_publish_source(TrackSource::Microphone));
    }

    #[test]
    fn grant_fields_survive_a_round_trip_and_permissions_apply() {
        let raw = json!({"roomJoin": true, "room": "r", "roomRecord": true,
                         "canSubscribeMetrics": true, "destinationRoom": "d",
                         "canPublishSources": ["camera"]});
        let g: VideoGrant = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(serde_json::to_value(&g).unwrap(), raw);
        let perm = g.to_permission();
        assert!(perm.can_publish && perm.can_subscribe_metrics && !perm.can_update_metadata);
        assert_eq!(perm.can_publish_sources, vec![TrackSource::Camera as i32]);
        // Applying a permission sets every in-room flag explicitly, keeps the room grants.
        let mut g2 = g.clone();
        let narrowed = ParticipantPermission {
            can_subscribe: true,
            can_publish: true,
            can_publish_sources: vec![TrackSource::ScreenShareAudio as i32],
            ..Default::default()
        };
        g2.update_from_permission(&narrowed);
        assert_eq!(g2.to_permission(), narrowed);
        assert_eq!(
            g2.can_publish_sources,
            vec!["screen_share_audio".to_string()]
        );
        assert_eq!(g2.can_publish_data, Some(false));
        assert!(g2.room_join && g2.room_record && g2.room == "r" && g2.destination_room == "d");
    }

    #[test]
    fn refusals() {
        let claims = json!({"iss": "devkey", "sub": "a", "exp": now() + 600});
        assert!(matches!(
            verify(&sign(claims.clone(), "wrong"), &keys()),
            Err(TokenError::Invalid(_))
        ));
        let unknown = json!({"iss": "nobody", "sub": "a", "exp": now() + 600});
        assert_eq!(
            verify(&sign(unknown, "secret"), &keys()).unwrap_err(),
            TokenError::UnknownKey
        );
        let expired = json!({"iss": "devkey", "sub": "a", "exp": now() - 120});
        assert_eq!(
            verify(&sign(expired, "secret"), &keys()).unwrap_err(),
            TokenError::Expired
        );
        // Within the minute of leeway it still passes.
        let just = json!({"iss": "devkey", "sub": "a", "exp": now() - 10});
        assert!(verify(&sign(just, "secret"), &keys()).is_ok());
        let no_exp = json!({"iss": "devkey", "sub": "a"});
        assert!(verify(&sign(no_exp, "secret"), &keys()).is_err());
        let future = json!({"iss": "devkey", "sub": "a", "exp": now() + 900, "nbf": now() + 600});
        assert!(verify(&sign(future, "secret"), &keys()).is_err());
        assert_eq!(
            verify("not-a-jwt", &keys()).unwrap_err(),
            TokenError::Malformed
        );
        assert_eq!(
            verify("a.!!!.c", &keys()).unwrap_err(),
            TokenError::Malformed
        );
        // HS384 is refused even with the right secret.
        let hs384 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &claims,
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert!(verify(&hs384, &keys()).is_err());
    }
}
