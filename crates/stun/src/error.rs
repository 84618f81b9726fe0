//! Error types. None of them carries heap data, so the hot path can return
//! them without allocating; each maps to one STUN error code at the server.

/// Why a datagram is not a well-formed STUN message (the server answers 400
/// or drops it, RFC 8489 §6.3).
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Fewer than 20 bytes: not even a header.
    #[error("shorter than the 20-byte STUN header")]
    TruncatedHeader,
    /// RFC 8489 §5: "The most significant 2 bits of every STUN message MUST be zeroes."
    #[error("top two bits of the message type are not zero")]
    NotStun,
    /// RFC 8489 §5: the magic cookie field MUST contain 0x2112A442.
    #[error("bad magic cookie")]
    BadMagicCookie,
    /// RFC 8489 §5: the message length is a multiple of 4 because attributes are padded.
    #[error("message length is not a multiple of 4")]
    UnalignedLength,
    /// The header's length field says more than the buffer holds.
    #[error("message length exceeds the buffer")]
    LengthExceedsBuffer,
    /// The buffer holds bytes beyond the message length (datagrams carry one message).
    #[error("bytes after the end of the message")]
    TrailingBytes,
    /// An attribute header or value runs past the end of the message.
    #[error("attribute {typ:#06x} overruns the message")]
    AttributeOverrun {
        /// Type of the offending attribute (0 when its header itself is cut).
        typ: u16,
    },
    /// RFC 8489 §14.7: "When present, the FINGERPRINT attribute MUST be the last attribute".
    #[error("attribute after FINGERPRINT")]
    FingerprintNotLast,
    /// FINGERPRINT value is not 4 bytes.
    #[error("FINGERPRINT has a bad length")]
    BadFingerprintLength,
    /// The CRC-32 in FINGERPRINT does not match the message.
    #[error("FINGERPRINT does not match")]
    FingerprintMismatch,
    /// MESSAGE-INTEGRITY is not 20 bytes, or MESSAGE-INTEGRITY-SHA256 not 16..=32
    /// bytes in steps of 4 (RFC 8489 §14.5, §14.6).
    #[error("integrity attribute {typ:#06x} has a bad length")]
    BadIntegrityLength {
        /// MESSAGE_INTEGRITY or MESSAGE_INTEGRITY_SHA256.
        typ: u16,
    },
}

/// Why an attribute value could not be decoded by a typed getter. The
/// server answers 400 (Bad Request) except where noted.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttrError {
    /// The value has a length the attribute's definition does not allow.
    #[error("attribute {typ:#06x} has a bad length")]
    BadLength {
        /// Attribute type.
        typ: u16,
    },
    /// A text attribute is not UTF-8 (RFC 8489 §14.3, §14.9, §14.10, §14.14).
    #[error("attribute {typ:#06x} is not valid UTF-8")]
    BadUtf8 {
        /// Attribute type.
        typ: u16,
    },
    /// An address family byte other than 0x01 (IPv4) or 0x02 (IPv6). For
    /// REQUESTED-ADDRESS-FAMILY this is a 440 (RFC 8656 §7.2), elsewhere 400.
    #[error("attribute {typ:#06x} has unknown address family {family:#04x}")]
    UnknownFamily {
        /// Attribute type.
        typ: u16,
        /// The family byte found.
        family: u8,
    },
    /// A field holds a value outside its defined range (e.g. ERROR-CODE class).
    #[error("attribute {typ:#06x} has an invalid value")]
    BadValue {
        /// Attribute type.
        typ: u16,
    },
}

/// Why MESSAGE-INTEGRITY(-SHA256) did not verify. The server answers 401
/// (RFC 8489 §9.2.4) whatever the variant; the variants exist for logs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrityError {
    /// The message has no attribute of the requested kind.
    #[error("no integrity attribute")]
    Missing,
    /// The HMAC does not match: wrong key or altered message.
    #[error("integrity check failed")]
    Mismatch,
}

/// Why the builder refused an attribute. The buffer is left holding a valid
/// message made of the attributes added before the failing call.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The caller's buffer cannot hold the header or the attribute.
    #[error("buffer too small")]
    BufferTooSmall,
    /// The value (or the whole message) would exceed the 16-bit length field.
    #[error("value too long for a STUN attribute")]
    TooLong,
    /// An argument outside its wire range (e.g. an ERROR-CODE outside 300..=699).
    #[error("value out of range")]
    InvalidValue,
    /// RFC 8489 §14.7: nothing may follow FINGERPRINT.
    #[error("attribute added after FINGERPRINT")]
    AfterFingerprint,
}

/// Why a datagram is not a ChannelData message.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelDataError {
    /// Shorter than the 4-byte header, or than the length field says.
    #[error("ChannelData truncated")]
    Truncated,
    /// The first two bits are not 0b01, so the channel is outside 0x4000..=0x7FFF.
    #[error("not a ChannelData channel number")]
    BadChannel,
}
