//! TURN REST API credentials, as Synapse mints them (`synapse/rest/client/voip.py`):
//! username `"<unix expiry>:<mxid>"`, password = standard padded base64 of
//! HMAC-SHA1(shared secret, username).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use std::time::{SystemTime, UNIX_EPOCH};

/// base64(HMAC-SHA1(secret, username)), padded, as coturn's `use-auth-secret` expects.
pub fn rest_password(secret: &str, username: &str) -> String {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A Synapse-shaped credential expiring `offset_secs` from now (negative: already expired).
pub fn synapse_style(secret: &str, mxid: &str, offset_secs: i64) -> (String, String) {
    let expiry = unix_now().saturating_add_signed(offset_secs);
    let username = format!("{expiry}:{mxid}");
    let password = rest_password(secret, &username);
    (username, password)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vector from turn-anchors.md §2.1 (turn-howto's example secret), cross-checked there
    /// with `openssl dgst -sha1 -hmac`.
    #[test]
    fn synapse_password_vector() {
        let secret = "n0t4ctuAllymatr1Xd0TorgSshar3d5ecret4obvIousreAsons";
        assert_eq!(
            rest_password(secret, "1700000000:@alice:example.org"),
            "Q3QFGwAasTAzWYffazEl6DtxxBg="
        );
        assert_eq!(
            rest_password(secret, "1700000000"),
            "OmN44DDjvtZVx7r6b7hjE8vL8K4="
        );
    }

    #[test]
    fn expired_credentials_are_in_the_past() {
        let (user, pass) = synapse_style("s", "@a:b", -60);
        let (ts, mxid) = user.split_once(':').unwrap();
        assert!(ts.parse::<u64>().unwrap() < unix_now());
        assert_eq!(mxid, "@a:b");
        assert_eq!(pass, rest_password("s", &user));
    }
}
