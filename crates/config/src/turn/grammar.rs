//! coturn's line grammar (`parse_arg_string` in `mainrelay.c`) and its value grammars.

/// One meaningful line of a config file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    /// 1-based line number.
    pub(crate) number: usize,
    /// The option name as written.
    pub(crate) key: &'a str,
    /// The value, quotes removed; `None` for a bare flag.
    pub(crate) value: Option<&'a str>,
}

/// The option lines of `text`: blank lines and lines whose first non-blank character is
/// `#` are skipped. There are no inline comments in coturn's grammar.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    text.lines().enumerate().filter_map(|(i, raw)| {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let (key, value) = split_line(line);
        Some(Line {
            number: i + 1,
            key,
            value,
        })
    })
}

/// `name<sep>value` where `<sep>` is any run of spaces, tabs and `=`; a value wrapped in
/// double quotes loses them; trailing whitespace is already gone.
pub(crate) fn split_line(line: &str) -> (&str, Option<&str>) {
    let Some(end) = line.find([' ', '\t', '=']) else {
        return (line, None);
    };
    let key = &line[..end];
    let rest = line[end..].trim_start_matches([' ', '\t', '=']).trim_end();
    if rest.is_empty() {
        return (key, None);
    }
    (key, Some(unquote(rest)))
}

/// `"x"` → `x`; anything else unchanged.
pub(crate) fn unquote(v: &str) -> &str {
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

/// coturn's `get_bool_value`: the first character decides — `0`, `n`, `f` false; `1`-`9`,
/// `y`, `t` true — and `on`/`off` are spelled out. Anything else makes coturn exit, so it is
/// an error here too.
pub(crate) fn parse_bool(v: &str) -> Result<bool, String> {
    let t = v.trim();
    let l = t.to_ascii_lowercase();
    if l == "off" {
        return Ok(false);
    }
    if l == "on" {
        return Ok(true);
    }
    match l.chars().next() {
        Some('0' | 'n' | 'f') => Ok(false),
        Some('1'..='9' | 'y' | 't') => Ok(true),
        _ => Err(format!(
            "`{v}` is not a boolean (use yes/no, true/false, on/off, 1/0)"
        )),
    }
}

/// A non-negative integer. coturn reads integers with `atoi`, which stops at the first
/// non-digit, so Synapse's documented `user-quota=12 # 4 streams ...` means 12: a number
/// followed by whitespace and `#...` is accepted and the second value says a comment was
/// cut off (the caller warns). Any other trailing text is an error rather than atoi's
/// silent truncation.
pub(crate) fn parse_int(v: &str) -> Result<(u64, bool), String> {
    let t = v.trim();
    let (num, rest) = match t.find(char::is_whitespace) {
        Some(i) => (&t[..i], t[i..].trim_start()),
        None => (t, ""),
    };
    if !rest.is_empty() && !rest.starts_with('#') {
        return Err(format!("`{v}` is not a number"));
    }
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{num}` is not a number"));
    }
    let n = num
        .parse::<u64>()
        .map_err(|_| format!("`{num}` is too large"))?;
    Ok((n, !rest.is_empty()))
}

/// A port, strictly 1–65535 with nothing after it (coturn 4.17 `get_port_value` exits on
/// anything else).
pub(crate) fn parse_port(v: &str) -> Result<u16, String> {
    let t = v.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{v}` is not a port number (1-65535)"));
    }
    match t.parse::<u32>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        _ => Err(format!("port {t} is out of range (1-65535)")),
    }
}

/// `16` hex-encoded bytes (`0x` already removed): the MD5 long-term key of `user=name:0x…`.
pub(crate) fn parse_hex16(hex: &str) -> Result<[u8; 16], String> {
    if hex.len() != 32 {
        return Err(format!(
            "the key must be 32 hex digits (an MD5 long-term key), got {}",
            hex.chars().count()
        ));
    }
    let mut key = [0u8; 16];
    for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
        let hi = hex_digit(pair[0]);
        let lo = hex_digit(pair[1]);
        match (hi, lo) {
            (Some(h), Some(l)) => key[i] = h << 4 | l,
            _ => return Err("the key is not hexadecimal".into()),
        }
    }
    Ok(key)
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_forms() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("realm=x", "realm", Some("x")),
            ("realm x", "realm", Some("x")),
            ("realm = x", "realm", Some("x")),
            ("realm\t=\tx", "realm", Some("x")),
            ("realm\tx y", "realm", Some("x y")),
            ("realm==x", "realm", Some("x")),
            (
                "static-auth-secret=abc==",
                "static-auth-secret",
                Some("abc=="),
            ),
            ("pidfile=\"/run/t.pid\"", "pidfile", Some("/run/t.pid")),
            ("cipher-list=\"HIGH\"", "cipher-list", Some("HIGH")),
            ("realm=\"", "realm", Some("\"")),
            ("fingerprint", "fingerprint", None),
            ("fingerprint=", "fingerprint", None),
            ("fingerprint  ", "fingerprint", None),
            ("realm=x # y", "realm", Some("x # y")),
        ];
        for (line, key, value) in cases {
            assert_eq!(split_line(line.trim()), (*key, *value), "{line:?}");
        }
    }

    #[test]
    fn comments_blank_lines_and_numbers() {
        let text = "# c\n\n  # indented comment\nrealm=a\r\n\tno-udp \n  listening-port 1\n";
        let got: Vec<_> = lines(text).collect();
        assert_eq!(
            got,
            vec![
                Line {
                    number: 4,
                    key: "realm",
                    value: Some("a")
                },
                Line {
                    number: 5,
                    key: "no-udp",
                    value: None
                },
                Line {
                    number: 6,
                    key: "listening-port",
                    value: Some("1")
                },
            ]
        );
    }

    #[test]
    fn booleans_follow_coturn() {
        for t in [
            "1", "yes", "Y", "true", "T", "on", "ON", "On", "7", "tru", "9x",
        ] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["0", "no", "N", "false", "F", "off", "OFF", "nope", "01"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        for bad in ["maybe", "", "  ", "-1", "enable", "o"] {
            assert!(parse_bool(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn integers() {
        assert_eq!(parse_int("12"), Ok((12, false)));
        assert_eq!(parse_int(" 12 "), Ok((12, false)));
        assert_eq!(parse_int("12 # 4 streams per call"), Ok((12, true)));
        assert_eq!(parse_int("12\t#x"), Ok((12, true)));
        assert!(parse_int("12#x").is_err());
        assert!(parse_int("12abc").is_err());
        assert!(parse_int("12 abc").is_err());
        assert!(parse_int("-1").is_err());
        assert!(parse_int("+1").is_err());
        assert!(parse_int("").is_err());
        assert!(parse_int("99999999999999999999999").is_err());
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port("3478"), Ok(3478));
        assert_eq!(parse_port("65535"), Ok(65535));
        assert_eq!(
            parse_port("0"),
            Err("port 0 is out of range (1-65535)".into())
        );
        assert!(parse_port("65536").is_err());
        assert!(parse_port("99999999999").is_err());
        assert_eq!(
            parse_port("34x"),
            Err("`34x` is not a port number (1-65535)".into())
        );
        assert!(parse_port("3478 # x").is_err());
        assert!(parse_port("-1").is_err());
    }

    #[test]
    fn hex_keys() {
        assert_eq!(
            parse_hex16("8abac9f92c49a921b09b4da0663dea0a"),
            Ok([
                0x8a, 0xba, 0xc9, 0xf9, 0x2c, 0x49, 0xa9, 0x21, 0xb0, 0x9b, 0x4d, 0xa0, 0x66, 0x3d,
                0xea, 0x0a
            ])
        );
        assert!(parse_hex16("8ABAC9F92C49A921B09B4DA0663DEA0A").is_ok());
        assert!(parse_hex16("1234").is_err());
        assert!(parse_hex16("zzbac9f92c49a921b09b4da0663dea0a").is_err());
        assert!(parse_hex16("éabac9f92c49a921b09b4da0663dea0").is_err());
    }
}
