//! [`Message`]: a validated, borrowed view of one STUN message, with typed
//! getters. Parsing walks the attributes once and never allocates.

use std::net::SocketAddr;

use subtle::ConstantTimeEq;

use crate::address::{self, AddressFamily};
use crate::attr::{self, padded};
use crate::error::{AttrError, IntegrityError, ParseError};
use crate::header::{Class, HEADER_LEN, MAGIC_COOKIE, MessageType, Method, TransactionId};
use crate::integrity::{self, Integrity, MESSAGE_INTEGRITY_LEN, PasswordAlgorithm};

/// One attribute as it appears on the wire (value without padding).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct RawAttribute<'a> {
    /// Attribute type.
    pub typ: u16,
    /// Attribute value, unpadded.
    pub value: &'a [u8],
}

/// Where the walk is relative to the integrity attributes. RFC 8489 §14.5:
/// "With the exception of the MESSAGE-INTEGRITY-SHA256 and FINGERPRINT
/// attributes, which appear after MESSAGE-INTEGRITY, agents MUST ignore all
/// other attributes that follow MESSAGE-INTEGRITY." §14.6 says the same of
/// MESSAGE-INTEGRITY-SHA256, excepting FINGERPRINT.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Walk {
    Normal,
    AfterMi,
    AfterMi256,
    Done,
}

/// What the walk does with an attribute of type `typ` in state `w`:
/// (visible?, next state).
fn step(w: Walk, typ: u16) -> (bool, Walk) {
    match (w, typ) {
        (Walk::Done, _) => (false, Walk::Done),
        (_, attr::FINGERPRINT) => (true, Walk::Done),
        (Walk::Normal, attr::MESSAGE_INTEGRITY) => (true, Walk::AfterMi),
        (Walk::Normal | Walk::AfterMi, attr::MESSAGE_INTEGRITY_SHA256) => (true, Walk::AfterMi256),
        (Walk::Normal, _) => (true, Walk::Normal),
        (w, _) => (false, w),
    }
}

/// Reads the TLV at `pos`: (type, value, offset of the next attribute).
fn tlv(buf: &[u8], pos: usize) -> Option<(u16, &[u8], usize)> {
    let h = buf.get(pos..pos.checked_add(4)?)?;
    let (&[t0, t1, l0, l1], _) = h.split_first_chunk::<4>()?;
    let typ = u16::from_be_bytes([t0, t1]);
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    let start = pos + 4;
    let next = start.checked_add(padded(len))?;
    if next > buf.len() {
        return None;
    }
    Some((typ, buf.get(start..start + len)?, next))
}

/// Iterator over the attributes a receiver must look at, in wire order:
/// everything before the first integrity attribute, the integrity
/// attributes themselves and FINGERPRINT. Attributes the RFC says to ignore
/// (after MESSAGE-INTEGRITY(-SHA256)) are skipped.
#[derive(Clone, Debug)]
pub struct Attributes<'a> {
    buf: &'a [u8],
    pos: usize,
    walk: Walk,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = RawAttribute<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.walk == Walk::Done {
                return None;
            }
            let (typ, value, next) = tlv(self.buf, self.pos)?;
            self.pos = next;
            let (visible, walk) = step(self.walk, typ);
            self.walk = walk;
            if visible {
                return Some(RawAttribute { typ, value });
            }
        }
    }
}

/// A list of 16-bit values (UNKNOWN-ATTRIBUTES).
#[derive(Clone, Debug)]
pub struct U16List<'a>(std::slice::ChunksExact<'a, u8>);

impl Iterator for U16List<'_> {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        let c = self.0.next()?;
        let (&pair, _) = c.split_first_chunk::<2>()?;
        Some(u16::from_be_bytes(pair))
    }
}

/// The entries of PASSWORD-ALGORITHMS (RFC 8489 §14.11), validated when the
/// getter is called.
#[derive(Clone, Debug)]
pub struct PasswordAlgorithms<'a>(&'a [u8]);

/// Splits one `algorithm | params length | params (padded)` entry off `v`.
fn split_algorithm(v: &[u8]) -> Option<(PasswordAlgorithm<'_>, &[u8])> {
    let (&[a0, a1, l0, l1], rest) = v.split_first_chunk::<4>()?;
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    let params = rest.get(..len)?;
    let rest = rest.get(padded(len)..)?;
    Some((
        PasswordAlgorithm {
            algorithm: u16::from_be_bytes([a0, a1]),
            params,
        },
        rest,
    ))
}

impl<'a> Iterator for PasswordAlgorithms<'a> {
    type Item = PasswordAlgorithm<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let (alg, rest) = split_algorithm(self.0)?;
        self.0 = rest;
        Some(alg)
    }
}

/// ADDRESS-ERROR-CODE (RFC 8656 §18.12).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct AddressErrorCode<'a> {
    /// The family the error is about.
    pub family: AddressFamily,
    /// Error code, 300..=699.
    pub code: u16,
    /// Reason phrase.
    pub reason: &'a str,
}

/// ICMP attribute (RFC 8656 §18.13): a 16-bit reserved field, then a 7-bit
/// ICMP type and a 9-bit ICMP code, then 32 bits of error data.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Icmp {
    /// ICMP (or ICMPv6) type.
    pub icmp_type: u8,
    /// ICMP code.
    pub code: u16,
    /// Error data (the next-hop MTU for "packet too big" / "fragmentation needed").
    pub error_data: u32,
}

/// CHANGE-REQUEST flags (RFC 5780 §7.2).
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct ChangeRequest {
    /// Flag A: answer from a different IP address.
    pub change_ip: bool,
    /// Flag B: answer from a different port.
    pub change_port: bool,
}

/// RFC 8489 §14.3: USERNAME "MUST contain a UTF-8-encoded sequence of fewer than 509 bytes".
pub const MAX_USERNAME_LEN: usize = 508;
/// RFC 8489 §14.9, §14.10, §14.14: fewer than 128 characters, "which can be
/// as long as 763 bytes".
pub const MAX_TEXT_LEN: usize = 763;

/// A parsed, borrowed STUN message. See [`Message::parse`] for what is checked.
///
/// Typed getters return `Result<Option<T>, AttrError>`: `Ok(None)` when the
/// attribute is absent, `Err` when present but malformed (answer 400), so a
/// handler can write `msg.lifetime()?`. Presence-only attributes return `bool`,
/// opaque ones `Option<&[u8]>`. Every getter sees only the attributes before
/// the integrity attributes (RFC 8489 §14.5) and returns the first occurrence.
#[derive(Copy, Clone, Debug)]
pub struct Message<'a> {
    buf: &'a [u8],
    typ: MessageType,
    mi: Option<usize>,
    mi256: Option<usize>,
    fingerprint: bool,
}

impl<'a> Message<'a> {
    /// Validates and wraps one STUN message that fills `buf` exactly.
    ///
    /// Checks: a full header; top two bits zero and the magic cookie (RFC 8489
    /// §5); length a multiple of 4 and equal to `buf.len() - 20` (stream users
    /// cut frames with [`crate::frame`] first); every attribute fits; the
    /// integrity attributes have their defined lengths; FINGERPRINT, if present,
    /// is last and its CRC matches (§14.7). Attributes after the integrity
    /// attributes are checked for framing but otherwise ignored (§14.5, §14.6).
    pub fn parse(buf: &'a [u8]) -> Result<Self, ParseError> {
        let (hdr, _) = buf
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(ParseError::TruncatedHeader)?;
        let [t0, t1, l0, l1, c0, c1, c2, c3, ..] = *hdr;
        let typ = MessageType::from_u16(u16::from_be_bytes([t0, t1])).ok_or(ParseError::NotStun)?;
        if u32::from_be_bytes([c0, c1, c2, c3]) != MAGIC_COOKIE {
            return Err(ParseError::BadMagicCookie);
        }
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        if len % 4 != 0 {
            return Err(ParseError::UnalignedLength);
        }
        let body = buf.len() - HEADER_LEN;
        if len > body {
            return Err(ParseError::LengthExceedsBuffer);
        }
        if len < body {
            return Err(ParseError::TrailingBytes);
        }

        let mut msg = Message {
            buf,
            typ,
            mi: None,
            mi256: None,
            fingerprint: false,
        };
        let mut pos = HEADER_LEN;
        let mut walk = Walk::Normal;
        let mut fp_at = None;
        while pos < buf.len() {
            if fp_at.is_some() {
                return Err(ParseError::FingerprintNotLast);
            }
            let Some((t, value, next)) = tlv(buf, pos) else {
                let typ = buf
                    .get(pos..)
                    .and_then(|b| b.split_first_chunk::<2>())
                    .map_or(0, |(t, _)| u16::from_be_bytes(*t));
                return Err(ParseError::AttributeOverrun { typ });
            };
            let (visible, next_walk) = step(walk, t);
            if visible {
                match t {
                    attr::FINGERPRINT => {
                        if value.len() != 4 {
                            return Err(ParseError::BadFingerprintLength);
                        }
                        fp_at = Some(pos);
                    }
                    attr::MESSAGE_INTEGRITY => {
                        if value.len() != MESSAGE_INTEGRITY_LEN {
                            return Err(ParseError::BadIntegrityLength { typ: t });
                        }
                        msg.mi = Some(pos);
                    }
                    attr::MESSAGE_INTEGRITY_SHA256 => {
                        // RFC 8489 §14.6: "at most 32 bytes, but MUST be at
                        // least 16 bytes and MUST be a multiple of 4 bytes".
                        if !(16..=32).contains(&value.len()) || value.len() % 4 != 0 {
                            return Err(ParseError::BadIntegrityLength { typ: t });
                        }
                        msg.mi256 = Some(pos);
                    }
                    _ => {}
                }
            }
            walk = next_walk;
            pos = next;
        }
        if let Some(at) = fp_at {
            // The header length already counts FINGERPRINT because it is last.
            let covered = buf.get(..at).ok_or(ParseError::AttributeOverrun {
                typ: attr::FINGERPRINT,
            })?;
            let wire = buf
                .get(at + 4..)
                .and_then(|v| v.first_chunk::<4>())
                .map(|v| u32::from_be_bytes(*v));
            if wire != Some(integrity::fingerprint(covered)) {
                return Err(ParseError::FingerprintMismatch);
            }
            msg.fingerprint = true;
        }
        Ok(msg)
    }

    /// Class and method.
    pub fn message_type(&self) -> MessageType {
        self.typ
    }

    /// Request, indication, success or error.
    pub fn class(&self) -> Class {
        self.typ.class
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.typ.method
    }

    /// The transaction id from the header.
    pub fn transaction_id(&self) -> TransactionId {
        let mut tid = [0u8; 12];
        if let Some(src) = self.buf.get(8..HEADER_LEN) {
            tid.copy_from_slice(src);
        }
        TransactionId(tid)
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The attributes a receiver must consider (see [`Attributes`]).
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            buf: self.buf,
            pos: HEADER_LEN,
            walk: Walk::Normal,
        }
    }

    /// Value of the first attribute of type `typ`.
    pub fn get(&self, typ: u16) -> Option<&'a [u8]> {
        self.attributes().find(|a| a.typ == typ).map(|a| a.value)
    }

    /// Values of every attribute of type `typ`, in order.
    pub fn get_all(&self, typ: u16) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        self.attributes()
            .filter(move |a| a.typ == typ)
            .map(|a| a.value)
    }

    /// Comprehension-required attribute types (< 0x8000) not in `known`, each
    /// reported once, in order of first appearance — the list for a 420
    /// response's UNKNOWN-ATTRIBUTES (RFC 8489 §6.3.1). `known` must include
    /// MESSAGE-INTEGRITY and MESSAGE-INTEGRITY-SHA256 if the caller handles them.
    pub fn unknown_comprehension_required<'k>(
        &self,
        known: &'k [u16],
    ) -> impl Iterator<Item = u16> + use<'a, 'k> {
        let all = self.attributes();
        self.attributes()
            .enumerate()
            .filter(move |(i, a)| {
                attr::is_comprehension_required(a.typ)
                    && !known.contains(&a.typ)
                    && !all.clone().take(*i).any(|b| b.typ == a.typ)
            })
            .map(|(_, a)| a.typ)
    }

    fn text(&self, typ: u16, max: usize) -> Result<Option<&'a str>, AttrError> {
        let Some(v) = self.get(typ) else {
            return Ok(None);
        };
        if v.len() > max {
            return Err(AttrError::BadLength { typ });
        }
        std::str::from_utf8(v)
            .map(Some)
            .map_err(|_| AttrError::BadUtf8 { typ })
    }

    fn fixed<const N: usize>(&self, typ: u16) -> Result<Option<[u8; N]>, AttrError> {
        match self.get(typ) {
            None => Ok(None),
            Some(v) => <[u8; N]>::try_from(v)
                .map(Some)
                .map_err(|_| AttrError::BadLength { typ }),
        }
    }

    fn u32_attr(&self, typ: u16) -> Result<Option<u32>, AttrError> {
        Ok(self.fixed::<4>(typ)?.map(u32::from_be_bytes))
    }

    fn u64_attr(&self, typ: u16) -> Result<Option<u64>, AttrError> {
        Ok(self.fixed::<8>(typ)?.map(u64::from_be_bytes))
    }

    fn family_attr(&self, typ: u16) -> Result<Option<AddressFamily>, AttrError> {
        // RFC 8656 §18.6: "Family | Reserved (24 bits)".
        match self.fixed::<4>(typ)? {
            None => Ok(None),
            Some([f, ..]) => AddressFamily::from_u8(f)
                .map(Some)
                .ok_or(AttrError::UnknownFamily { typ, family: f }),
        }
    }

    fn address(&self, typ: u16) -> Result<Option<SocketAddr>, AttrError> {
        self.get(typ)
            .map(|v| address::decode(typ, v, None))
            .transpose()
    }

    fn xor_address(&self, typ: u16) -> Result<Option<SocketAddr>, AttrError> {
        let tid = self.transaction_id();
        self.get(typ)
            .map(|v| address::decode(typ, v, Some(&tid)))
            .transpose()
    }

    /// USERNAME (RFC 8489 §14.3): UTF-8, at most 508 bytes.
    pub fn username(&self) -> Result<Option<&'a str>, AttrError> {
        self.text(attr::USERNAME, MAX_USERNAME_LEN)
    }

    /// USERHASH (RFC 8489 §14.4): 32 bytes.
    pub fn userhash(&self) -> Result<Option<[u8; 32]>, AttrError> {
        self.fixed::<32>(attr::USERHASH)
    }

    /// REALM (RFC 8489 §14.9).
    pub fn realm(&self) -> Result<Option<&'a str>, AttrError> {
        self.text(attr::REALM, MAX_TEXT_LEN)
    }

    /// NONCE (RFC 8489 §14.10).
    pub fn nonce(&self) -> Result<Option<&'a str>, AttrError> {
        self.text(attr::NONCE, MAX_TEXT_LEN)
    }

    /// SOFTWARE (RFC 8489 §14.14).
    pub fn software(&self) -> Result<Option<&'a str>, AttrError> {
        self.text(attr::SOFTWARE, MAX_TEXT_LEN)
    }

    /// ALTERNATE-DOMAIN (RFC 8489 §14.16).
    pub fn alternate_domain(&self) -> Result<Option<&'a str>, AttrError> {
        self.text(attr::ALTERNATE_DOMAIN, MAX_TEXT_LEN)
    }

    /// ERROR-CODE (RFC 8489 §14.8) as (code, reason). The class must be 3..=6
    /// and the number 0..=99.
    pub fn error_code(&self) -> Result<Option<(u16, &'a str)>, AttrError> {
        let typ = attr::ERROR_CODE;
        let Some(v) = self.get(typ) else {
            return Ok(None);
        };
        let (&[_, _, class, number], reason) = v
            .split_first_chunk::<4>()
            .ok_or(AttrError::BadLength { typ })?;
        let code = error_code_value(typ, class, number)?;
        let reason = std::str::from_utf8(reason).map_err(|_| AttrError::BadUtf8 { typ })?;
        Ok(Some((code, reason)))
    }

    /// ADDRESS-ERROR-CODE (RFC 8656 §18.12).
    pub fn address_error_code(&self) -> Result<Option<AddressErrorCode<'a>>, AttrError> {
        let typ = attr::ADDRESS_ERROR_CODE;
        let Some(v) = self.get(typ) else {
            return Ok(None);
        };
        let (&[family, _, class, number], reason) = v
            .split_first_chunk::<4>()
            .ok_or(AttrError::BadLength { typ })?;
        let family =
            AddressFamily::from_u8(family).ok_or(AttrError::UnknownFamily { typ, family })?;
        let code = error_code_value(typ, class, number)?;
        let reason = std::str::from_utf8(reason).map_err(|_| AttrError::BadUtf8 { typ })?;
        Ok(Some(AddressErrorCode {
            family,
            code,
            reason,
        }))
    }

    /// UNKNOWN-ATTRIBUTES (RFC 8489 §14.13): a list of 16-bit types.
    pub fn unknown_attributes(&self) -> Result<Option<U16List<'a>>, AttrError> {
        let typ = attr::UNKNOWN_ATTRIBUTES;
        match self.get(typ) {
            None => Ok(None),
            Some(v) if v.len() % 2 != 0 => Err(AttrError::BadLength { typ }),
            Some(v) => Ok(Some(U16List(v.chunks_exact(2)))),
        }
    }

    /// MAPPED-ADDRESS (RFC 8489 §14.1).
    pub fn mapped_address(&self) -> Result<Option<SocketAddr>, AttrError> {
        self.address(attr::MAPPED_ADDRESS)
    }

    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
    pub fn xor_mapped_address(&self) -> Result<Option<SocketAddr>, AttrError> {
        self.xor_address(attr::XOR_MAPPED_ADDRESS)
    }

    /// First XOR-RELAYED-ADDRESS (RFC 8656 §18.5).
    pub fn xor_relayed_address(&self) -> Result<Option<SocketAddr>, AttrError> {
        self.xor_address(attr::XOR_RELAYED_ADDRESS)
    }

    /// Every XOR-RELAYED-ADDRESS: a dual-stack allocation (RFC 8656 §7.3,
    /// ADDITIONAL-ADDRESS-FAMILY) answers with one per family.
    pub fn xor_relayed_addresses(
        &self,
    ) -> impl Iterator<Item = Result<SocketAddr, AttrError>> + use<'a> {
        self.xor_addresses(attr::XOR_RELAYED_ADDRESS)
    }

    /// Every XOR-PEER-ADDRESS; CreatePermission may carry several (RFC 8656 §9.1).
    pub fn xor_peer_addresses(
        &self,
    ) -> impl Iterator<Item = Result<SocketAddr, AttrError>> + use<'a> {
        self.xor_addresses(attr::XOR_PEER_ADDRESS)
    }

    /// First XOR-PEER-ADDRESS.
    pub fn xor_peer_address(&self) -> Result<Option<SocketAddr>, AttrError> {
        self.xor_address(attr::XOR_PEER_ADDRESS)
    }

    fn xor_addresses(
        &self,
        typ: u16,
    ) -> impl Iterator<Item = Result<SocketAddr, AttrError>> + use<'a> {
        let tid = self.transaction_id();
        self.get_all(typ)
            .map(move |v| address::decode(typ, v, Some(&tid)))
    }

    /// ALTERNATE-SERVER (RFC 8489 §14.15).
    pub fn alternate_server(&self) -> Result<Option<SocketAddr>, AttrError> {
        self.address(attr::ALTERNATE_SERVER)
    }

    /// RESPONSE-ORIGIN (RFC 5780 §7.3).
    pub fn response_origin(&self) -> Result<Option<SocketAddr>, AttrError> {
        self.address(attr::RESPONSE_ORIGIN)
    }

    /// OTHER-ADDRESS (RFC 5780 §7.4).
    pub fn other_address(&self) -> Result<Option<SocketAddr>, AttrError> {
        self.address(attr::OTHER_ADDRESS)
    }

    /// CHANNEL-NUMBER (RFC 8656 §18.1): 16-bit number followed by 16 RFFU bits.
    /// The range check (0x4000..=0x4FFF) is the server's, since RFC 5766 allowed more.
    pub fn channel_number(&self) -> Result<Option<u16>, AttrError> {
        Ok(self
            .fixed::<4>(attr::CHANNEL_NUMBER)?
            .map(|[a, b, _, _]| u16::from_be_bytes([a, b])))
    }

    /// LIFETIME in seconds (RFC 8656 §18.2).
    pub fn lifetime(&self) -> Result<Option<u32>, AttrError> {
        self.u32_attr(attr::LIFETIME)
    }

    /// DATA (RFC 8656 §18.4).
    pub fn data(&self) -> Option<&'a [u8]> {
        self.get(attr::DATA)
    }

    /// REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.6). An unknown family is
    /// `AttrError::UnknownFamily`, which the server answers with 440.
    pub fn requested_address_family(&self) -> Result<Option<AddressFamily>, AttrError> {
        self.family_attr(attr::REQUESTED_ADDRESS_FAMILY)
    }

    /// ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.11).
    pub fn additional_address_family(&self) -> Result<Option<AddressFamily>, AttrError> {
        self.family_attr(attr::ADDITIONAL_ADDRESS_FAMILY)
    }

    /// EVEN-PORT (RFC 8656 §18.7): the R bit (reserve the next port too).
    /// The value is one byte; longer values are accepted for interop and only
    /// their first byte is read.
    pub fn even_port(&self) -> Result<Option<bool>, AttrError> {
        let typ = attr::EVEN_PORT;
        match self.get(typ) {
            None => Ok(None),
            Some([first, ..]) => Ok(Some(first & 0x80 != 0)),
            Some([]) => Err(AttrError::BadLength { typ }),
        }
    }

    /// REQUESTED-TRANSPORT protocol number (RFC 8656 §18.8): 17 = UDP, 6 = TCP.
    pub fn requested_transport(&self) -> Result<Option<u8>, AttrError> {
        Ok(self.fixed::<4>(attr::REQUESTED_TRANSPORT)?.map(|[p, ..]| p))
    }

    /// DONT-FRAGMENT present (RFC 8656 §18.9).
    pub fn dont_fragment(&self) -> bool {
        self.get(attr::DONT_FRAGMENT).is_some()
    }

    /// RESERVATION-TOKEN (RFC 8656 §18.10).
    pub fn reservation_token(&self) -> Result<Option<[u8; 8]>, AttrError> {
        self.fixed::<8>(attr::RESERVATION_TOKEN)
    }

    /// ICMP (RFC 8656 §18.13).
    pub fn icmp(&self) -> Result<Option<Icmp>, AttrError> {
        Ok(self
            .fixed::<8>(attr::ICMP)?
            .map(|[_, _, t0, t1, d0, d1, d2, d3]| {
                let tc = u16::from_be_bytes([t0, t1]);
                Icmp {
                    icmp_type: (tc >> 9) as u8,
                    code: tc & 0x01FF,
                    error_data: u32::from_be_bytes([d0, d1, d2, d3]),
                }
            }))
    }

    /// CONNECTION-ID (RFC 6062 §6.2.1).
    pub fn connection_id(&self) -> Result<Option<u32>, AttrError> {
        self.u32_attr(attr::CONNECTION_ID)
    }

    /// CHANGE-REQUEST (RFC 5780 §7.2).
    pub fn change_request(&self) -> Result<Option<ChangeRequest>, AttrError> {
        Ok(self
            .fixed::<4>(attr::CHANGE_REQUEST)?
            .map(|[.., flags]| ChangeRequest {
                change_ip: flags & 0x04 != 0,
                change_port: flags & 0x02 != 0,
            }))
    }

    /// RESPONSE-PORT (RFC 5780 §7.5): 16-bit port then 16 bits of padding.
    pub fn response_port(&self) -> Result<Option<u16>, AttrError> {
        Ok(self
            .fixed::<4>(attr::RESPONSE_PORT)?
            .map(|[a, b, _, _]| u16::from_be_bytes([a, b])))
    }

    /// PADDING (RFC 5780 §7.6).
    pub fn padding(&self) -> Option<&'a [u8]> {
        self.get(attr::PADDING)
    }

    /// MOBILITY-TICKET (RFC 8016 §3.1), opaque to the client.
    pub fn mobility_ticket(&self) -> Option<&'a [u8]> {
        self.get(attr::MOBILITY_TICKET)
    }

    /// ACCESS-TOKEN (RFC 7635), undecoded.
    pub fn access_token(&self) -> Option<&'a [u8]> {
        self.get(attr::ACCESS_TOKEN)
    }

    /// PRIORITY (RFC 8445 §16.1).
    pub fn priority(&self) -> Result<Option<u32>, AttrError> {
        self.u32_attr(attr::PRIORITY)
    }

    /// USE-CANDIDATE present (RFC 8445 §16.1).
    pub fn use_candidate(&self) -> bool {
        self.get(attr::USE_CANDIDATE).is_some()
    }

    /// ICE-CONTROLLED tie-breaker (RFC 8445 §16.1).
    pub fn ice_controlled(&self) -> Result<Option<u64>, AttrError> {
        self.u64_attr(attr::ICE_CONTROLLED)
    }

    /// ICE-CONTROLLING tie-breaker (RFC 8445 §16.1).
    pub fn ice_controlling(&self) -> Result<Option<u64>, AttrError> {
        self.u64_attr(attr::ICE_CONTROLLING)
    }

    /// PASSWORD-ALGORITHMS (RFC 8489 §14.11), checked to be a whole number of entries.
    pub fn password_algorithms(&self) -> Result<Option<PasswordAlgorithms<'a>>, AttrError> {
        let typ = attr::PASSWORD_ALGORITHMS;
        let Some(v) = self.get(typ) else {
            return Ok(None);
        };
        let mut rest = v;
        while !rest.is_empty() {
            let (_, r) = split_algorithm(rest).ok_or(AttrError::BadLength { typ })?;
            rest = r;
        }
        Ok(Some(PasswordAlgorithms(v)))
    }

    /// PASSWORD-ALGORITHM (RFC 8489 §14.12): exactly one entry.
    pub fn password_algorithm(&self) -> Result<Option<PasswordAlgorithm<'a>>, AttrError> {
        let typ = attr::PASSWORD_ALGORITHM;
        let Some(v) = self.get(typ) else {
            return Ok(None);
        };
        match split_algorithm(v) {
            Some((alg, [])) => Ok(Some(alg)),
            _ => Err(AttrError::BadLength { typ }),
        }
    }

    /// FINGERPRINT present (and, since parsing succeeded, correct).
    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint
    }

    /// The strongest integrity attribute present: MESSAGE-INTEGRITY-SHA256 if
    /// there is one, else MESSAGE-INTEGRITY.
    pub fn integrity(&self) -> Option<Integrity> {
        if self.mi256.is_some() {
            Some(Integrity::Sha256)
        } else if self.mi.is_some() {
            Some(Integrity::Sha1)
        } else {
            None
        }
    }

    /// Whether MESSAGE-INTEGRITY (HMAC-SHA1) is present.
    pub fn has_message_integrity(&self) -> bool {
        self.mi.is_some()
    }

    /// Whether MESSAGE-INTEGRITY-SHA256 is present.
    pub fn has_message_integrity_sha256(&self) -> bool {
        self.mi256.is_some()
    }

    /// Checks MESSAGE-INTEGRITY with `key` (the long-term key from
    /// [`crate::long_term_key`] or a short-term password). RFC 8489 §14.5: the
    /// HMAC covers the message up to the attribute, with the header length
    /// "adjusted to point to the end of the MESSAGE-INTEGRITY attribute".
    /// Compared in constant time.
    pub fn verify_integrity(&self, key: &[u8]) -> Result<(), IntegrityError> {
        let at = self.mi.ok_or(IntegrityError::Missing)?;
        self.verify_at(at, key, MESSAGE_INTEGRITY_LEN, |k, m, e, l| {
            integrity::hmac_sha1(k, m, e, l).map(Mac32::Sha1)
        })
    }

    /// Checks MESSAGE-INTEGRITY-SHA256 with `key` (RFC 8489 §14.6),
    /// accepting values truncated to 16..=32 bytes.
    pub fn verify_integrity_sha256(&self, key: &[u8]) -> Result<(), IntegrityError> {
        let at = self.mi256.ok_or(IntegrityError::Missing)?;
        let len = self
            .buf
            .get(at + 2..at + 4)
            .and_then(|l| l.first_chunk::<2>())
            .map_or(0, |l| usize::from(u16::from_be_bytes(*l)));
        self.verify_at(at, key, len, |k, m, e, l| {
            integrity::hmac_sha256(k, m, e, l).map(Mac32::Sha256)
        })
    }

    fn verify_at(
        &self,
        at: usize,
        key: &[u8],
        value_len: usize,
        mac: impl FnOnce(&[u8], &[u8], usize, u16) -> Option<Mac32>,
    ) -> Result<(), IntegrityError> {
        let wire = self
            .buf
            .get(at + 4..at + 4 + value_len)
            .ok_or(IntegrityError::Mismatch)?;
        let len_field =
            u16::try_from(at + 4 + value_len - HEADER_LEN).map_err(|_| IntegrityError::Mismatch)?;
        let computed = mac(key, self.buf, at, len_field).ok_or(IntegrityError::Mismatch)?;
        let computed = computed
            .as_slice()
            .get(..value_len)
            .ok_or(IntegrityError::Mismatch)?;
        if bool::from(computed.ct_eq(wire)) {
            Ok(())
        } else {
            Err(IntegrityError::Mismatch)
        }
    }
}

/// A MAC of either size, kept on the stack.
enum Mac32 {
    Sha1([u8; 20]),
    Sha256([u8; 32]),
}

impl Mac32 {
    fn as_slice(&self) -> &[u8] {
        match self {
            Mac32::Sha1(m) => m,
            Mac32::Sha256(m) => m,
        }
    }
}

/// RFC 8489 §14.8: "The Class represents the hundreds digit of the error code.
/// The value MUST be between 3 and 6. The Number represents the binary
/// encoding of the error code modulo 100, and its value MUST be between 0 and 99."
fn error_code_value(typ: u16, class: u8, number: u8) -> Result<u16, AttrError> {
    let class = class & 0x07;
    if !(3..=6).contains(&class) || number > 99 {
        return Err(AttrError::BadValue { typ });
    }
    Ok(u16::from(class) * 100 + u16::from(number))
}
