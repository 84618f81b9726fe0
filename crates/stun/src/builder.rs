//! [`MessageBuilder`]: writes a STUN message into a caller buffer. Never
//! allocates, never panics: every call that does not fit returns an error and
//! leaves the buffer holding the valid message built so far.

use std::net::SocketAddr;

use crate::address::{self, AddressFamily};
use crate::attr::{self, padded};
use crate::error::BuildError;
use crate::header::{HEADER_LEN, MAGIC_COOKIE, MessageType, TransactionId};
use crate::integrity::{
    self, MESSAGE_INTEGRITY_LEN, MESSAGE_INTEGRITY_SHA256_LEN, PasswordAlgorithm,
};
use crate::message::{ChangeRequest, Icmp};

/// Largest value of the header's length field that keeps 4-byte alignment.
const MAX_BODY: usize = 0xFFFC;

/// Builds one message. The header's length field is kept current after every
/// call, so the buffer always holds a well-formed message.
#[derive(Debug)]
pub struct MessageBuilder<'b> {
    buf: &'b mut [u8],
    len: usize,
    tid: TransactionId,
    pad: u8,
    sealed: bool,
}

impl<'b> MessageBuilder<'b> {
    /// Writes the header into `buf`.
    pub fn new(
        buf: &'b mut [u8],
        typ: MessageType,
        tid: TransactionId,
    ) -> Result<Self, BuildError> {
        let hdr = buf
            .first_chunk_mut::<HEADER_LEN>()
            .ok_or(BuildError::BufferTooSmall)?;
        let [t0, t1] = typ.to_u16().to_be_bytes();
        let [c0, c1, c2, c3] = MAGIC_COOKIE.to_be_bytes();
        let [i0, i1, i2, i3, i4, i5, i6, i7, i8, i9, i10, i11] = tid.0;
        *hdr = [
            t0, t1, 0, 0, c0, c1, c2, c3, i0, i1, i2, i3, i4, i5, i6, i7, i8, i9, i10, i11,
        ];
        Ok(MessageBuilder {
            buf,
            len: HEADER_LEN,
            tid,
            pad: 0,
            sealed: false,
        })
    }

    /// Byte used to pad values to 4 bytes (default 0). RFC 8489 §14: padding
    /// "MUST be ignored by the receiver", so any value is valid; RFC 5769's
    /// vectors use 0x20.
    pub fn set_padding(&mut self, byte: u8) {
        self.pad = byte;
    }

    /// Bytes written so far (header included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether only the header has been written.
    pub fn is_empty(&self) -> bool {
        self.len == HEADER_LEN
    }

    /// The message as built so far.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// The transaction id this message carries.
    pub fn transaction_id(&self) -> TransactionId {
        self.tid
    }

    /// Total length written; the message is `buf[..finish()]`.
    pub fn finish(self) -> usize {
        self.len
    }

    fn set_length_field(&mut self) {
        let body = u16::try_from(self.len - HEADER_LEN).unwrap_or(u16::MAX);
        if let Some(l) = self.buf.get_mut(2..4) {
            l.copy_from_slice(&body.to_be_bytes());
        }
    }

    /// Appends an attribute of `len` value bytes that `fill` writes in place
    /// (it receives exactly `len` bytes), then pads. For zero-copy values.
    pub fn add_with(
        &mut self,
        typ: u16,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), BuildError> {
        if self.sealed {
            return Err(BuildError::AfterFingerprint);
        }
        let wire_len = u16::try_from(len).map_err(|_| BuildError::TooLong)?;
        let end = self.len + 4 + padded(len);
        if end - HEADER_LEN > MAX_BODY {
            return Err(BuildError::TooLong);
        }
        let pad = self.pad;
        let region = self
            .buf
            .get_mut(self.len..end)
            .ok_or(BuildError::BufferTooSmall)?;
        let (head, rest) = region
            .split_first_chunk_mut::<4>()
            .ok_or(BuildError::BufferTooSmall)?;
        let [t0, t1] = typ.to_be_bytes();
        let [l0, l1] = wire_len.to_be_bytes();
        *head = [t0, t1, l0, l1];
        let (value, padding) = rest.split_at_mut(len.min(rest.len()));
        fill(value);
        padding.fill(pad);
        self.len = end;
        self.set_length_field();
        Ok(())
    }

    /// Appends an attribute with `value`, padded (RFC 8489 §14).
    pub fn add(&mut self, typ: u16, value: &[u8]) -> Result<(), BuildError> {
        self.add_with(typ, value.len(), |v| v.copy_from_slice(value))
    }

    /// Appends an attribute with an empty value (DONT-FRAGMENT, USE-CANDIDATE).
    pub fn add_flag(&mut self, typ: u16) -> Result<(), BuildError> {
        self.add(typ, &[])
    }

    /// Appends a 32-bit value (LIFETIME, PRIORITY, CONNECTION-ID, ...).
    pub fn add_u32(&mut self, typ: u16, v: u32) -> Result<(), BuildError> {
        self.add(typ, &v.to_be_bytes())
    }

    /// Appends a 64-bit value (ICE-CONTROLLED, ICE-CONTROLLING).
    pub fn add_u64(&mut self, typ: u16, v: u64) -> Result<(), BuildError> {
        self.add(typ, &v.to_be_bytes())
    }

    /// Appends an XOR-encoded address (XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS,
    /// XOR-RELAYED-ADDRESS), RFC 8489 §14.2.
    pub fn add_xor_address(&mut self, typ: u16, addr: SocketAddr) -> Result<(), BuildError> {
        let tid = self.tid;
        self.add_with(typ, address::encoded_len(&addr), |v| {
            address::encode(v, &addr, Some(&tid));
        })
    }

    /// Appends a plain address (MAPPED-ADDRESS, ALTERNATE-SERVER,
    /// RESPONSE-ORIGIN, OTHER-ADDRESS), RFC 8489 §14.1.
    pub fn add_address(&mut self, typ: u16, addr: SocketAddr) -> Result<(), BuildError> {
        self.add_with(typ, address::encoded_len(&addr), |v| {
            address::encode(v, &addr, None);
        })
    }

    fn add_code(&mut self, typ: u16, first: u8, code: u16, reason: &str) -> Result<(), BuildError> {
        if !(300..=699).contains(&code) {
            return Err(BuildError::InvalidValue);
        }
        // RFC 8489 §14.8: class = hundreds digit, number = code modulo 100.
        let class = (code / 100) as u8;
        let number = (code % 100) as u8;
        let r = reason.as_bytes();
        self.add_with(typ, 4 + r.len(), |v| {
            if let Some((head, tail)) = v.split_first_chunk_mut::<4>() {
                *head = [first, 0, class, number];
                tail.copy_from_slice(r);
            }
        })
    }

    /// Appends ERROR-CODE (RFC 8489 §14.8); `code` must be 300..=699.
    pub fn add_error_code(&mut self, code: u16, reason: &str) -> Result<(), BuildError> {
        self.add_code(attr::ERROR_CODE, 0, code, reason)
    }

    /// Appends ADDRESS-ERROR-CODE (RFC 8656 §18.12).
    pub fn add_address_error_code(
        &mut self,
        family: AddressFamily,
        code: u16,
        reason: &str,
    ) -> Result<(), BuildError> {
        self.add_code(attr::ADDRESS_ERROR_CODE, family.to_u8(), code, reason)
    }

    /// Appends UNKNOWN-ATTRIBUTES (RFC 8489 §14.13).
    pub fn add_unknown_attributes(&mut self, types: &[u16]) -> Result<(), BuildError> {
        let len = types.len().checked_mul(2).ok_or(BuildError::TooLong)?;
        self.add_with(attr::UNKNOWN_ATTRIBUTES, len, |v| {
            for (dst, t) in v.chunks_exact_mut(2).zip(types) {
                dst.copy_from_slice(&t.to_be_bytes());
            }
        })
    }

    /// Appends CHANNEL-NUMBER (RFC 8656 §18.1).
    pub fn add_channel_number(&mut self, channel: u16) -> Result<(), BuildError> {
        let [a, b] = channel.to_be_bytes();
        self.add(attr::CHANNEL_NUMBER, &[a, b, 0, 0])
    }

    /// Appends REQUESTED-TRANSPORT (RFC 8656 §18.8); 17 = UDP, 6 = TCP.
    pub fn add_requested_transport(&mut self, protocol: u8) -> Result<(), BuildError> {
        self.add(attr::REQUESTED_TRANSPORT, &[protocol, 0, 0, 0])
    }

    /// Appends REQUESTED-ADDRESS-FAMILY or ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.6, §18.11).
    pub fn add_address_family(
        &mut self,
        typ: u16,
        family: AddressFamily,
    ) -> Result<(), BuildError> {
        self.add(typ, &[family.to_u8(), 0, 0, 0])
    }

    /// Appends EVEN-PORT (RFC 8656 §18.7) with the R bit.
    pub fn add_even_port(&mut self, reserve_next: bool) -> Result<(), BuildError> {
        self.add(attr::EVEN_PORT, &[if reserve_next { 0x80 } else { 0 }])
    }

    /// Appends ICMP (RFC 8656 §18.13); the type keeps 7 bits, the code 9.
    pub fn add_icmp(&mut self, icmp: Icmp) -> Result<(), BuildError> {
        let tc = (u16::from(icmp.icmp_type & 0x7F) << 9) | (icmp.code & 0x01FF);
        let [t0, t1] = tc.to_be_bytes();
        let [d0, d1, d2, d3] = icmp.error_data.to_be_bytes();
        self.add(attr::ICMP, &[0, 0, t0, t1, d0, d1, d2, d3])
    }

    /// Appends CHANGE-REQUEST (RFC 5780 §7.2).
    pub fn add_change_request(&mut self, req: ChangeRequest) -> Result<(), BuildError> {
        let flags = (u8::from(req.change_ip) << 2) | (u8::from(req.change_port) << 1);
        self.add(attr::CHANGE_REQUEST, &[0, 0, 0, flags])
    }

    /// Appends RESPONSE-PORT (RFC 5780 §7.5).
    pub fn add_response_port(&mut self, port: u16) -> Result<(), BuildError> {
        let [a, b] = port.to_be_bytes();
        self.add(attr::RESPONSE_PORT, &[a, b, 0, 0])
    }

    /// Appends PASSWORD-ALGORITHMS (RFC 8489 §14.11).
    pub fn add_password_algorithms(
        &mut self,
        algs: &[PasswordAlgorithm<'_>],
    ) -> Result<(), BuildError> {
        let mut len = 0usize;
        for a in algs {
            if a.params.len() > usize::from(u16::MAX) {
                return Err(BuildError::TooLong);
            }
            len = len.saturating_add(4 + padded(a.params.len()));
        }
        let pad = self.pad;
        self.add_with(attr::PASSWORD_ALGORITHMS, len, |mut v| {
            for a in algs {
                v = write_algorithm(v, a, pad);
            }
        })
    }

    /// Appends PASSWORD-ALGORITHM (RFC 8489 §14.12).
    pub fn add_password_algorithm(&mut self, alg: PasswordAlgorithm<'_>) -> Result<(), BuildError> {
        if alg.params.len() > usize::from(u16::MAX) {
            return Err(BuildError::TooLong);
        }
        let pad = self.pad;
        self.add_with(
            attr::PASSWORD_ALGORITHM,
            4 + padded(alg.params.len()),
            |v| {
                write_algorithm(v, &alg, pad);
            },
        )
    }

    /// Drops everything after `len` bytes (used to undo a failed integrity step).
    fn truncate(&mut self, len: usize) {
        self.len = len;
        self.set_length_field();
    }

    /// Appends an integrity attribute of `value_len` bytes computed by `mac`
    /// over the message so far, with the length field already counting the
    /// attribute (RFC 8489 §14.5, §14.6).
    fn add_mac<const N: usize>(
        &mut self,
        typ: u16,
        mac: impl FnOnce(&[u8], usize, u16) -> Option<[u8; N]>,
    ) -> Result<(), BuildError> {
        let start = self.len;
        self.add_with(typ, N, |v| v.fill(0))?;
        let len_field = u16::try_from(self.len - HEADER_LEN).unwrap_or(u16::MAX);
        let Some(value) = mac(self.buf, start, len_field) else {
            self.truncate(start);
            return Err(BuildError::InvalidValue);
        };
        match self.buf.get_mut(start + 4..start + 4 + N) {
            Some(dst) => {
                dst.copy_from_slice(&value);
                Ok(())
            }
            None => {
                self.truncate(start);
                Err(BuildError::BufferTooSmall)
            }
        }
    }

    /// Appends MESSAGE-INTEGRITY: HMAC-SHA1 with `key` over the message so far,
    /// the header length "adjusted to point to the end of the MESSAGE-INTEGRITY
    /// attribute" (RFC 8489 §14.5).
    pub fn add_message_integrity(&mut self, key: &[u8]) -> Result<(), BuildError> {
        self.add_mac::<MESSAGE_INTEGRITY_LEN>(attr::MESSAGE_INTEGRITY, |m, e, l| {
            integrity::hmac_sha1(key, m, e, l)
        })
    }

    /// Appends MESSAGE-INTEGRITY-SHA256 (full 32 bytes, RFC 8489 §14.6).
    pub fn add_message_integrity_sha256(&mut self, key: &[u8]) -> Result<(), BuildError> {
        self.add_mac::<MESSAGE_INTEGRITY_SHA256_LEN>(attr::MESSAGE_INTEGRITY_SHA256, |m, e, l| {
            integrity::hmac_sha256(key, m, e, l)
        })
    }

    /// Appends FINGERPRINT, after which nothing more may be added (RFC 8489 §14.7):
    /// "the CRC-32 of the STUN message up to (but excluding) the FINGERPRINT
    /// attribute itself, XOR'ed with the 32-bit value 0x5354554e".
    pub fn add_fingerprint(&mut self) -> Result<(), BuildError> {
        let start = self.len;
        self.add_with(attr::FINGERPRINT, 4, |v| v.fill(0))?;
        let crc = integrity::fingerprint(self.buf.get(..start).unwrap_or(&[]));
        if let Some(dst) = self.buf.get_mut(start + 4..start + 8) {
            dst.copy_from_slice(&crc.to_be_bytes());
        }
        self.sealed = true;
        Ok(())
    }
}

/// Writes one password-algorithm entry at the front of `v`; returns the rest.
fn write_algorithm<'v>(v: &'v mut [u8], a: &PasswordAlgorithm<'_>, pad: u8) -> &'v mut [u8] {
    let total = (4 + padded(a.params.len())).min(v.len());
    let (entry, rest) = v.split_at_mut(total);
    if let Some((head, tail)) = entry.split_first_chunk_mut::<4>() {
        let [a0, a1] = a.algorithm.to_be_bytes();
        let [l0, l1] = (a.params.len() as u16).to_be_bytes();
        *head = [a0, a1, l0, l1];
        let n = a.params.len().min(tail.len());
        let (params, padding) = tail.split_at_mut(n);
        params.copy_from_slice(a.params.get(..n).unwrap_or(&[]));
        padding.fill(pad);
    }
    rest
}
