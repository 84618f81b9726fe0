//! Tokens the server signs itself: the `refresh_token` a connected participant is handed so
//! it can resume after the token it joined with has expired.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use livekit_protocol::participant_info::Kind;
use serde::Serialize;

use super::{Claims, VideoGrant};

/// The claims livekit-server writes (`AccessToken.ToJWT` of livekit/protocol): the
/// registered claims `iss`, `sub`, `iat`, `nbf`, `exp` (no `jti`), then the grants
/// with their Go JSON names, empty ones left out (`omitempty`). Its grants also repeat
/// the identity as `identity`, and always name the participant `kind`.
#[derive(Serialize)]
struct Minted<'a> {
    iss: &'a str,
    sub: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    identity: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    kind: String,
    video: &'a VideoGrant,
    #[serde(rename = "roomConfig", skip_serializing_if = "Option::is_none")]
    room_config: Option<&'a serde_json::Value>,
    #[serde(rename = "roomPreset", skip_serializing_if = "str::is_empty")]
    room_preset: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    metadata: &'a str,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    attributes: &'a HashMap<String, String>,
}

/// `kind` as livekit-server re-serialises it: a known kind in lowercase, anything else
/// (including none) `standard`.
fn kind_name(kind: &str) -> String {
    Kind::from_str_name(&kind.to_uppercase())
        .unwrap_or(Kind::Standard)
        .as_str_name()
        .to_lowercase()
}

/// Signs `grants` (identity, name, metadata, attributes, video grant, kind, room
/// config/preset) as a new HS256 token from API key `key`, issued at `now` (Unix seconds)
/// and valid for `valid_for` seconds. `grants`' own `iss`, `jti` and `exp` are not copied.
pub fn mint(
    grants: &Claims,
    key: &str,
    secret: &str,
    now: u64,
    valid_for: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let identity = grants.identity();
    let claims = Minted {
        iss: key,
        sub: identity,
        iat: now,
        nbf: now,
        exp: now + valid_for,
        identity,
        name: &grants.name,
        kind: kind_name(&grants.kind),
        video: &grants.video,
        room_config: grants.room_config.as_ref(),
        room_preset: &grants.room_preset,
        metadata: &grants.metadata,
        attributes: &grants.attributes,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::tests::now;
    use crate::token::verify;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::{Value, json};

    /// The token's claims as raw JSON, unverified.
    fn payload(token: &str) -> Value {
        let mut parts = token.split('.');
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap())
                .unwrap();
        assert_eq!(header["alg"], "HS256");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap()
    }

    fn grants() -> Claims {
        Claims {
            iss: "old-key".into(),
            sub: "alice".into(),
            jti: "old-jti".into(),
            name: "Alice".into(),
            metadata: "{\"m\":1}".into(),
            attributes: HashMap::from([("a".into(), "1".into())]),
            video: VideoGrant {
                room_join: true,
                room: "r1".into(),
                can_publish: Some(false),
                can_update_own_metadata: Some(true),
                can_publish_sources: vec!["microphone".into()],
                ..Default::default()
            },
            exp: 1,
            kind: String::new(),
            room_preset: String::new(),
            room_config: None,
        }
    }

    #[test]
    fn minted_token_verifies_and_carries_the_grants() {
        let keys = vec![
            ("first".to_string(), "first-secret".to_string()),
            ("second".to_string(), "second-secret".to_string()),
        ];
        let t = now();
        let token = mint(&grants(), "first", "first-secret", t, 600).unwrap();
        let c = verify(&token, &keys).unwrap();
        assert_eq!(c.iss, "first");
        assert_eq!(c.identity(), "alice");
        assert_eq!(c.name, "Alice");
        assert_eq!(c.metadata, "{\"m\":1}");
        assert_eq!(c.attributes.get("a").map(String::as_str), Some("1"));
        assert_eq!(c.video, grants().video);
        assert!(!c.video.can_publish() && c.video.can_update_own_metadata());
        assert_eq!(c.exp, t + 600);
        // Signed with that key's secret, not another's.
        assert!(verify(&token, &[("first".into(), "second-secret".into())]).is_err());
    }

    #[test]
    fn claims_are_named_as_livekit_server_names_them() {
        let token = mint(&grants(), "k", "s", 1_000, 600).unwrap();
        let p = payload(&token);
        assert_eq!(
            p,
            json!({
                "iss": "k", "sub": "alice", "iat": 1_000, "nbf": 1_000, "exp": 1_600,
                "identity": "alice", "name": "Alice", "kind": "standard",
                "video": {"roomJoin": true, "room": "r1", "canPublish": false,
                          "canPublishSources": ["microphone"], "canUpdateOwnMetadata": true},
                "metadata": "{\"m\":1}", "attributes": {"a": "1"},
            })
        );
        // Empty name, metadata and attributes are left out; a known kind is kept.
        let mut bare = grants();
        bare.name.clear();
        bare.metadata.clear();
        bare.attributes.clear();
        bare.kind = "Agent".into();
        bare.room_preset = "preset".into();
        bare.room_config = Some(json!({"name": "r1"}));
        let p = payload(&mint(&bare, "k", "s", 1_000, 600).unwrap());
        for absent in ["name", "metadata", "attributes", "jti"] {
            assert!(p.get(absent).is_none(), "{absent} in {p}");
        }
        assert_eq!(p["kind"], "agent");
        assert_eq!(p["roomPreset"], "preset");
        assert_eq!(p["roomConfig"], json!({"name": "r1"}));
    }

    #[test]
    fn identity_from_jti_becomes_sub() {
        let mut g = grants();
        g.sub.clear();
        g.jti = "bob".into();
        let p = payload(&mint(&g, "k", "s", 1_000, 600).unwrap());
        assert_eq!(
            (p["sub"].as_str(), p["identity"].as_str()),
            (Some("bob"), Some("bob"))
        );
    }

    #[test]
    fn unknown_kind_is_standard() {
        assert_eq!(kind_name(""), "standard");
        assert_eq!(kind_name("sip"), "sip");
        assert_eq!(kind_name("martian"), "standard");
    }
}
