//! Long-term credentials (RFC 8489 §9.2): static users and the TURN REST shared-secret scheme
//! that Synapse uses (turn-anchors §2).
//!
//! REST: username `<unix-expiry><sep><user>` (coturn also accepts `<user><sep><expiry>`),
//! password `base64(HMAC-SHA1(secret, username))` over the *whole* username, key
//! `MD5(username ":" realm ":" password)`. Every configured secret is tried, so a secret can
//! be rotated without invalidating credentials Synapse already handed out.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rustc_hash::FxHashMap;
use sha1::Sha1;

/// A static `user=name:password` or `user=name:0xKEY` account.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// The long-term key `MD5(name:realm:password)`.
    pub key: [u8; 16],
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is password-equivalent: keep it out of logs.
        f.debug_struct("User")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Why a `user=` line could not be turned into a [`User`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserParseError {
    #[error("expected name:password or name:0xKEY")]
    MissingSeparator,
    #[error("empty user name")]
    EmptyName,
    #[error("0x key must be 32 hex digits")]
    BadKey,
}

impl User {
    pub fn with_password(name: &str, realm: &str, password: &str) -> User {
        User {
            name: name.to_owned(),
            key: long_term_key(name, realm, password),
        }
    }

    pub fn with_key(name: &str, key: [u8; 16]) -> User {
        User {
            name: name.to_owned(),
            key,
        }
    }

    /// coturn's `user=` syntax: `name:password`, or `name:0x<32 hex digits>` for a key that
    /// `turnadmin -k` printed. The name ends at the first `:`.
    pub fn parse(line: &str, realm: &str) -> Result<User, UserParseError> {
        let (name, secret) = line
            .split_once(':')
            .ok_or(UserParseError::MissingSeparator)?;
        if name.is_empty() {
            return Err(UserParseError::EmptyName);
        }
        if let Some(hex) = secret
            .strip_prefix("0x")
            .or_else(|| secret.strip_prefix("0X"))
        {
            let key = parse_hex16(hex).ok_or(UserParseError::BadKey)?;
            return Ok(User::with_key(name, key));
        }
        Ok(User::with_password(name, realm, secret))
    }
}

fn parse_hex16(hex: &str) -> Option<[u8; 16]> {
    let b = hex.as_bytes();
    if b.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Who may use the relay.
#[derive(Clone, Debug, Default)]
pub enum Auth {
    /// No credentials (coturn `no-auth`): every request is accepted without MESSAGE-INTEGRITY.
    #[default]
    None,
    /// Long-term credentials: static users and/or REST shared secrets.
    LongTerm {
        users: Vec<User>,
        /// `static-auth-secret` values, tried in order.
        secrets: Vec<String>,
        /// `rest-api-separator`, `:` by default.
        separator: char,
    },
}

/// Long-term credential key: `MD5(username ":" realm ":" password)` (RFC 8489 §9.2.2),
/// computed by the codec crate.
pub use switchyard_stun::long_term_key;

/// The REST password Synapse computes: standard padded base64 of HMAC-SHA1(secret, username).
pub fn rest_password(secret: &[u8], username: &str) -> String {
    let mut out = [0u8; 28];
    let n = rest_password_into(secret, username, &mut out);
    String::from_utf8_lossy(&out[..n]).into_owned()
}

fn rest_password_into(secret: &[u8], username: &str, out: &mut [u8; 28]) -> usize {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    let digest = mac.finalize().into_bytes();
    base64::engine::general_purpose::STANDARD
        .encode_slice(digest, out)
        .unwrap_or(0)
}

/// coturn `atol` on the digits at the start of `s`, wrapping instead of overflowing (the
/// value ends up as a `uint32_t` anyway).
fn atol_u32(s: &str) -> u32 {
    let mut v: u64 = 0;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            break;
        }
        v = v.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
    }
    v as u32
}

/// Split a REST username into (expiry timestamp as coturn's `uint32_t`, quota user).
///
/// coturn `get_rest_api_timestamp` / `get_real_username`: split at the *first* separator; if
/// the part before it is all digits it is the timestamp (`ts:user`), otherwise the part after
/// it is (`user:ts`). Without a separator the whole name is the timestamp.
pub fn rest_timestamp(username: &str, separator: char) -> (u32, &str) {
    match username.split_once(separator) {
        Some((head, tail)) => {
            if !head.is_empty() && head.bytes().all(|b| b.is_ascii_digit()) {
                (atol_u32(head), tail)
            } else {
                (atol_u32(tail), head)
            }
        }
        None => (atol_u32(username), username),
    }
}

/// coturn `turn_time_before(ts, now)` on `uint32_t` serial arithmetic: a timestamp equal to
/// now is still valid; `99999999999` wraps into the past and is rejected.
pub fn rest_expired(expiry: u32, now_unix: u64) -> bool {
    (expiry.wrapping_sub(now_unix as u32) as i32) < 0
}

/// Why a request did not authenticate (for events and counters).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthFailure {
    /// Neither a static user nor a REST secret applies to this username.
    UnknownUser,
    /// The REST username's expiry is in the past.
    Expired,
    /// MESSAGE-INTEGRITY did not verify with any candidate key.
    BadIntegrity,
    /// REALM differs from the server's realm.
    WrongRealm,
}

impl AuthFailure {
    pub fn name(self) -> &'static str {
        match self {
            AuthFailure::UnknownUser => "unknown_user",
            AuthFailure::Expired => "expired",
            AuthFailure::BadIntegrity => "bad_integrity",
            AuthFailure::WrongRealm => "wrong_realm",
        }
    }
}

/// A verified identity: the key that verified and where the quota name sits in the username.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Authenticated {
    pub(crate) key: [u8; 16],
    pub(crate) quota_user: String,
}

/// The compiled credential store.
pub(crate) struct Authenticator {
    users: FxHashMap<String, [u8; 16]>,
    secrets: Vec<Vec<u8>>,
    separator: char,
    realm: String,
}

impl Authenticator {
    pub(crate) fn new(auth: &Auth, realm: &str) -> Self {
        match auth {
            Auth::None => Authenticator {
                users: FxHashMap::default(),
                secrets: Vec::new(),
                separator: ':',
                realm: realm.to_owned(),
            },
            Auth::LongTerm {
                users,
                secrets,
                separator,
            } => Authenticator {
                users: users.iter().map(|u| (u.name.clone(), u.key)).collect(),
                secrets: secrets.iter().map(|s| s.as_bytes().to_vec()).collect(),
                separator: *separator,
                realm: realm.to_owned(),
            },
        }
    }

    pub(crate) fn realm(&self) -> &str {
        &self.realm
    }

    /// Try every key that could belong to `username`; `verify` checks MESSAGE-INTEGRITY with
    /// one. A static user wins over the REST scheme for the same name.
    pub(crate) fn authenticate(
        &self,
        username: &str,
        realm: &str,
        now_unix: u64,
        mut verify: impl FnMut(&[u8; 16]) -> bool,
    ) -> Result<Authenticated, AuthFailure> {
        if realm != self.realm {
            return Err(AuthFailure::WrongRealm);
        }
        if let Some(key) = self.users.get(username) {
            return if verify(key) {
                Ok(Authenticated {
                    key: *key,
                    quota_user: username.to_owned(),
                })
            } else {
                Err(AuthFailure::BadIntegrity)
            };
        }
        if self.secrets.is_empty() {
            return Err(AuthFailure::UnknownUser);
        }
        let (expiry, quota_user) = rest_timestamp(username, self.separator);
        if rest_expired(expiry, now_unix) {
            return Err(AuthFailure::Expired);
        }
        let mut pwd = [0u8; 28];
        for secret in &self.secrets {
            let n = rest_password_into(secret, username, &mut pwd);
            let password = std::str::from_utf8(&pwd[..n]).unwrap_or("");
            let key = long_term_key(username, &self.realm, password);
            if verify(&key) {
                return Ok(Authenticated {
                    key,
                    quota_user: quota_user.to_owned(),
                });
            }
        }
        Err(AuthFailure::BadIntegrity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "n0t4ctuAllymatr1Xd0TorgSshar3d5ecret4obvIousreAsons";

    fn hex(k: &[u8]) -> String {
        k.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn synapse_vector() {
        // turn-anchors §2.1, cross-checked with openssl there.
        let user = "1700000000:@alice:example.org";
        let pwd = rest_password(SECRET.as_bytes(), user);
        assert_eq!(pwd, "Q3QFGwAasTAzWYffazEl6DtxxBg=");
        assert_eq!(
            hex(&long_term_key(user, "turn.example.org", &pwd)),
            "8abac9f92c49a921b09b4da0663dea0a"
        );
        assert_eq!(
            rest_password(SECRET.as_bytes(), "1700000000"),
            "OmN44DDjvtZVx7r6b7hjE8vL8K4="
        );
    }

    #[test]
    fn timestamp_forms() {
        assert_eq!(
            rest_timestamp("1700000000:@alice:example.org", ':'),
            (1_700_000_000, "@alice:example.org")
        );
        assert_eq!(
            rest_timestamp("bob:1700000000", ':'),
            (1_700_000_000, "bob")
        );
        assert_eq!(
            rest_timestamp("1700000000", ':'),
            (1_700_000_000, "1700000000")
        );
        assert_eq!(rest_timestamp("x|17", '|'), (17, "x"));
        assert_eq!(rest_timestamp("bob:abc", ':'), (0, "bob"));
        // 99999999999 mod 2^32
        assert_eq!(rest_timestamp("99999999999:carol", ':').0, 1_215_752_191);
    }

    #[test]
    fn expiry_serial_arithmetic() {
        let now = 1_700_000_000u64;
        assert!(!rest_expired(1_700_000_000, now));
        assert!(!rest_expired(1_700_000_001, now));
        assert!(rest_expired(1_699_999_999, now));
        assert!(rest_expired(
            rest_timestamp("99999999999:carol", ':').0,
            now
        ));
        // Serial arithmetic survives the 2106 wrap of a u32 clock.
        assert!(!rest_expired(5, (1u64 << 32) - 5));
    }

    #[test]
    fn user_lines() {
        let u = User::parse("alice:secret", "r").unwrap();
        assert_eq!(u.key, long_term_key("alice", "r", "secret"));
        let k = User::parse("bob:0x8abac9f92c49a921b09b4da0663dea0a", "r").unwrap();
        assert_eq!(hex(&k.key), "8abac9f92c49a921b09b4da0663dea0a");
        assert_eq!(
            User::parse("bob", "r"),
            Err(UserParseError::MissingSeparator)
        );
        assert_eq!(User::parse(":x", "r"), Err(UserParseError::EmptyName));
        assert_eq!(User::parse("bob:0x12", "r"), Err(UserParseError::BadKey));
        assert!(!format!("{k:?}").contains("8abac9"));
    }

    #[test]
    fn authenticator_rotation_and_expiry() {
        let auth = Auth::LongTerm {
            users: vec![User::with_password("static", "r", "pw")],
            secrets: vec!["old".into(), "new".into()],
            separator: ':',
        };
        let a = Authenticator::new(&auth, "r");
        let user = "1700000100:@bob:example.org";
        for secret in ["old", "new"] {
            let want = long_term_key(user, "r", &rest_password(secret.as_bytes(), user));
            let got = a
                .authenticate(user, "r", 1_700_000_000, |k| *k == want)
                .unwrap();
            assert_eq!(got.key, want);
            assert_eq!(got.quota_user, "@bob:example.org");
        }
        assert_eq!(
            a.authenticate(user, "r", 1_700_000_000, |_| false),
            Err(AuthFailure::BadIntegrity)
        );
        assert_eq!(
            a.authenticate(user, "r", 1_700_000_101, |_| true),
            Err(AuthFailure::Expired)
        );
        assert_eq!(
            a.authenticate(user, "other", 1_700_000_000, |_| true),
            Err(AuthFailure::WrongRealm)
        );
        let skey = long_term_key("static", "r", "pw");
        assert!(a.authenticate("static", "r", 0, |k| *k == skey).is_ok());
        let none = Authenticator::new(
            &Auth::LongTerm {
                users: vec![],
                secrets: vec![],
                separator: ':',
            },
            "r",
        );
        assert_eq!(
            none.authenticate("x", "r", 0, |_| true),
            Err(AuthFailure::UnknownUser)
        );
    }
}
