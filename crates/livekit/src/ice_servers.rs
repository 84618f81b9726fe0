//! The STUN and TURN servers a participant is given in its join response
//! (`JoinResponse.ice_servers`): the embedded TURN relay and `rtc.turn_servers` /
//! `rtc.stun_servers`. Servers with a shared secret get credentials minted per participant
//! in coturn's REST scheme (`<expiry>:<participant sid>`, HMAC-SHA1 of it), which
//! `switchyard turn` and coturn both verify without any per-user state.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use livekit_protocol as proto;

/// One entry of the list.
#[derive(Clone, PartialEq, Eq)]
pub struct IceServer {
    /// `turn:host:port?transport=udp`, `turns:host:port?transport=tcp`, `stun:host:port`.
    pub urls: Vec<String>,
    pub credential: IceCredential,
}

impl std::fmt::Debug for IceServer {
    /// Never prints a secret or a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match &self.credential {
            IceCredential::None => "no credentials",
            IceCredential::Static { .. } => "static credentials",
            IceCredential::SharedSecret { .. } => "shared-secret credentials",
        };
        write!(f, "{:?} ({how})", self.urls)
    }
}

#[derive(Clone, PartialEq, Eq)]
pub enum IceCredential {
    /// STUN.
    None,
    /// Handed out as configured.
    Static {
        username: String,
        credential: String,
    },
    /// Minted per participant, valid for `ttl`.
    SharedSecret { secret: String, ttl: Duration },
}

impl IceServer {
    /// The protobuf entry for participant `sid`, with credentials valid from `now`.
    pub(crate) fn for_participant(&self, sid: &str, now: SystemTime) -> proto::IceServer {
        let (username, credential) = match &self.credential {
            IceCredential::None => (String::new(), String::new()),
            IceCredential::Static {
                username,
                credential,
            } => (username.clone(), credential.clone()),
            IceCredential::SharedSecret { secret, ttl } => {
                rest_credentials(secret, sid, now + *ttl)
            }
        };
        proto::IceServer {
            urls: self.urls.clone(),
            username,
            credential,
        }
    }
}

/// coturn's `use-auth-secret` credentials: username `<unix expiry>:<user>`, password
/// `base64(HMAC-SHA1(secret, username))`.
pub fn rest_credentials(secret: &str, user: &str, expires: SystemTime) -> (String, String) {
    let expiry = expires
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let username = format!("{expiry}:{user}");
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("any key size");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checked against the same HMAC computed independently with openssl:
    /// `printf '1700000000:PA_x' | openssl dgst -sha1 -hmac secret -binary | base64`.
    #[test]
    fn shared_secret_credentials_follow_the_rest_scheme() {
        let (user, pass) = rest_credentials(
            "secret",
            "PA_x",
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        );
        assert_eq!(user, "1700000000:PA_x");
        assert_eq!(pass, "hGRbykIKGeoxGLzBGMhDb8AYud0=");
    }

    #[test]
    fn static_and_stun_entries_pass_through() {
        let stun = IceServer {
            urls: vec!["stun:stun.example.org:3478".into()],
            credential: IceCredential::None,
        };
        let p = stun.for_participant("PA_x", SystemTime::now());
        assert_eq!(p.urls, ["stun:stun.example.org:3478"]);
        assert!(p.username.is_empty() && p.credential.is_empty());
        let fixed = IceServer {
            urls: vec!["turn:t.example.org:3478?transport=udp".into()],
            credential: IceCredential::Static {
                username: "u".into(),
                credential: "c".into(),
            },
        };
        let p = fixed.for_participant("PA_x", SystemTime::now());
        assert_eq!((p.username.as_str(), p.credential.as_str()), ("u", "c"));
        // Debug output names the kind of credential, never the credential.
        assert!(!format!("{fixed:?}").contains("\"c\""), "{fixed:?}");
    }
}
