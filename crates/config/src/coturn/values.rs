//! Value grammars of coturn options: booleans, numbers, ports, addresses and ranges.

use std::net::IpAddr;
use std::str::FromStr;

use super::{AddrRange, ExternalIp, UserEntry, UserKey};

/// coturn's `get_bool_value`: `0`, `n*`, `f*`, `off` are false; `1`-`9*`, `y*`, `t*`, `on`
/// are true; anything else is an error (coturn exits).
pub(crate) fn parse_bool(v: &str) -> Result<bool, String> {
    let l = v.trim().to_ascii_lowercase();
    if l == "off" || l == "0" || l.starts_with('n') || l.starts_with('f') {
        return Ok(false);
    }
    if l == "on" || l.starts_with('y') || l.starts_with('t') {
        return Ok(true);
    }
    if l.chars().next().is_some_and(|c| ('1'..='9').contains(&c)) {
        return Ok(true);
    }
    Err(format!(
        "`{v}` is not a boolean (use yes/no, true/false, on/off, 1/0)"
    ))
}

/// A number, accepting coturn's de-facto inline comment: coturn reads integers with
/// `atoi`, which stops at a space, so Synapse's documented `user-quota=12 # 4 streams ...`
/// means 12. The second value is true when such a trailing comment was cut off.
pub(crate) fn parse_number<T: FromStr>(v: &str) -> Result<(T, bool), String> {
    let v = v.trim();
    let (num, rest) = match v.find(|c: char| c.is_whitespace()) {
        Some(i) => (&v[..i], v[i..].trim_start()),
        None => (v, ""),
    };
    if !rest.is_empty() && !rest.starts_with('#') {
        return Err(format!("`{v}` is not a number"));
    }
    let n = num
        .parse::<T>()
        .map_err(|_| format!("`{num}` is not a number"))?;
    Ok((n, !rest.is_empty()))
}

/// A port: 1–65535, strictly numeric (coturn ≥ 4.17 `get_port_value`).
pub(crate) fn parse_port(v: &str) -> Result<(u16, bool), String> {
    let (n, comment) = parse_number::<u32>(v)?;
    if n == 0 || n > 65535 {
        return Err(format!("port {n} is out of range (1-65535)"));
    }
    Ok((n as u16, comment))
}

/// An IP address literal (brackets around IPv6 are tolerated).
pub(crate) fn parse_ip(v: &str) -> Result<IpAddr, String> {
    let t = v.trim().trim_start_matches('[').trim_end_matches(']');
    t.parse::<IpAddr>()
        .map_err(|_| format!("`{v}` is not an IP address"))
}

/// `IP`, coturn's `IP-IP`, or CIDR `IP/len`.
pub(crate) fn parse_range(v: &str) -> Result<AddrRange, String> {
    let v = v.trim();
    if let Some((ip, len)) = v.split_once('/') {
        let ip = parse_ip(ip)?;
        let len: u8 = len
            .trim()
            .parse()
            .map_err(|_| format!("`{v}`: bad prefix length"))?;
        return AddrRange::cidr(ip, len).ok_or_else(|| format!("`{v}`: prefix length too long"));
    }
    if let Some((a, b)) = v.split_once('-') {
        let first = parse_ip(a)?;
        let last = parse_ip(b)?;
        if first.is_ipv4() != last.is_ipv4() {
            return Err(format!(
                "`{v}`: the two ends are of different address families"
            ));
        }
        if first > last {
            return Err(format!(
                "`{v}`: the range is empty (first address above the last)"
            ));
        }
        return Ok(AddrRange { first, last });
    }
    let ip = parse_ip(v)
        .map_err(|_| format!("`{v}` is not an address, an `a-b` range or a CIDR prefix"))?;
    Ok(AddrRange {
        first: ip,
        last: ip,
    })
}

/// `PUBLIC` or `PUBLIC/PRIVATE`.
pub(crate) fn parse_external_ip(v: &str) -> Result<ExternalIp, String> {
    match v.trim().split_once('/') {
        Some((public, private)) => {
            let public = parse_ip(public)?;
            let private = parse_ip(private)?;
            if public.is_ipv4() != private.is_ipv4() {
                return Err(format!(
                    "`{v}`: public and private addresses differ in family"
                ));
            }
            Ok(ExternalIp {
                public,
                private: Some(private),
            })
        }
        None => Ok(ExternalIp {
            public: parse_ip(v)?,
            private: None,
        }),
    }
}

/// `name:password` or `name:0x<32 hex digits>` (the MD5 long-term key).
pub(crate) fn parse_user(v: &str) -> Result<UserEntry, String> {
    let Some((name, secret)) = v.split_once(':') else {
        return Err("expected `name:password` or `name:0x<hex key>`".into());
    };
    if name.is_empty() {
        return Err("the user name is empty".into());
    }
    let key = match secret.strip_prefix("0x") {
        Some(hex) => {
            if hex.len() != 32 {
                return Err(format!(
                    "the key of `{name}` must be 32 hex digits (an MD5 long-term key), got {}",
                    hex.len()
                ));
            }
            let mut key = [0u8; 16];
            for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
                let s = std::str::from_utf8(pair).map_err(|_| "bad hex key".to_owned())?;
                key[i] = u8::from_str_radix(s, 16)
                    .map_err(|_| format!("the key of `{name}` is not hexadecimal"))?;
            }
            UserKey::Key(key)
        }
        None => UserKey::Password(secret.to_owned()),
    };
    Ok(UserEntry {
        name: name.to_owned(),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_follow_coturn() {
        for t in ["1", "yes", "Y", "true", "on", "7", "tru"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["0", "no", "N", "false", "off", "nope"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        assert!(parse_bool("maybe").is_err());
        assert!(parse_bool("").is_err());
    }

    #[test]
    fn numbers_with_inline_comment() {
        assert_eq!(parse_number::<u32>("12"), Ok((12, false)));
        assert_eq!(
            parse_number::<u32>("12 # 4 streams per call"),
            Ok((12, true))
        );
        assert!(parse_number::<u32>("12abc").is_err());
        assert!(parse_number::<u32>("12 abc").is_err());
        assert!(parse_number::<u32>("-1").is_err());
        assert_eq!(parse_port("3478"), Ok((3478, false)));
        assert!(parse_port("0").is_err());
        assert!(parse_port("65536").is_err());
        assert!(parse_port("34x").is_err());
    }

    #[test]
    fn ranges() {
        let r = parse_range("10.0.0.0-10.255.255.255").unwrap();
        assert_eq!(r.first, "10.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(r.last, "10.255.255.255".parse::<IpAddr>().unwrap());
        assert_eq!(parse_range("10.0.0.0/8").unwrap(), r);
        let v6 = parse_range("fc00::/7").unwrap();
        assert_eq!(
            v6.last,
            "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
                .parse::<IpAddr>()
                .unwrap()
        );
        let one = parse_range("::1").unwrap();
        assert_eq!(one.first, one.last);
        assert_eq!(
            parse_range("64:ff9b::-64:ff9b::ffff:ffff").unwrap().last,
            "64:ff9b::ffff:ffff".parse::<IpAddr>().unwrap()
        );
        assert!(parse_range("10.0.0.0/33").is_err());
        assert!(parse_range("10.0.0.9-10.0.0.1").is_err());
        assert!(parse_range("10.0.0.1-::1").is_err());
        assert!(parse_range("banana").is_err());
        assert!(parse_range("10.0.0.0/x").is_err());
    }

    #[test]
    fn users_and_external_ips() {
        let u = parse_user("alice:secret:with:colons").unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.key, UserKey::Password("secret:with:colons".into()));
        let k = parse_user("bob:0x8abac9f92c49a921b09b4da0663dea0a").unwrap();
        assert_eq!(
            k.key,
            UserKey::Key([
                0x8a, 0xba, 0xc9, 0xf9, 0x2c, 0x49, 0xa9, 0x21, 0xb0, 0x9b, 0x4d, 0xa0, 0x66, 0x3d,
                0xea, 0x0a
            ])
        );
        assert!(parse_user("bob:0x1234").is_err());
        assert!(parse_user("nocolon").is_err());
        assert!(parse_user(":pw").is_err());
        let e = parse_external_ip("203.0.113.5/10.0.0.5").unwrap();
        assert_eq!(e.private, Some("10.0.0.5".parse().unwrap()));
        assert!(parse_external_ip("203.0.113.5/::1").is_err());
        assert!(parse_external_ip("x").is_err());
    }
}
