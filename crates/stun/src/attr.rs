//! Attribute type numbers (IANA "STUN Attributes" registry) and the
//! comprehension rule.

/// RFC 8489 §14.1.
pub const MAPPED_ADDRESS: u16 = 0x0001;
/// RFC 5780 §7.2.
pub const CHANGE_REQUEST: u16 = 0x0003;
/// RFC 8489 §14.3.
pub const USERNAME: u16 = 0x0006;
/// RFC 8489 §14.5.
pub const MESSAGE_INTEGRITY: u16 = 0x0008;
/// RFC 8489 §14.8.
pub const ERROR_CODE: u16 = 0x0009;
/// RFC 8489 §14.13.
pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
/// RFC 8656 §18.1.
pub const CHANNEL_NUMBER: u16 = 0x000C;
/// RFC 8656 §18.2.
pub const LIFETIME: u16 = 0x000D;
/// RFC 8656 §18.3.
pub const XOR_PEER_ADDRESS: u16 = 0x0012;
/// RFC 8656 §18.4.
pub const DATA: u16 = 0x0013;
/// RFC 8489 §14.9.
pub const REALM: u16 = 0x0014;
/// RFC 8489 §14.10.
pub const NONCE: u16 = 0x0015;
/// RFC 8656 §18.5.
pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
/// RFC 8656 §18.6.
pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
/// RFC 8656 §18.7.
pub const EVEN_PORT: u16 = 0x0018;
/// RFC 8656 §18.8.
pub const REQUESTED_TRANSPORT: u16 = 0x0019;
/// RFC 8656 §18.9.
pub const DONT_FRAGMENT: u16 = 0x001A;
/// RFC 7635 §6.2.
pub const ACCESS_TOKEN: u16 = 0x001B;
/// RFC 8489 §14.6.
pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
/// RFC 8489 §14.12.
pub const PASSWORD_ALGORITHM: u16 = 0x001D;
/// RFC 8489 §14.4.
pub const USERHASH: u16 = 0x001E;
/// RFC 8489 §14.2.
pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// RFC 8656 §18.10.
pub const RESERVATION_TOKEN: u16 = 0x0022;
/// RFC 8445 §16.1.
pub const PRIORITY: u16 = 0x0024;
/// RFC 8445 §16.1.
pub const USE_CANDIDATE: u16 = 0x0025;
/// RFC 5780 §7.6.
pub const PADDING: u16 = 0x0026;
/// RFC 5780 §7.5.
pub const RESPONSE_PORT: u16 = 0x0027;
/// RFC 6062 §6.2.1.
pub const CONNECTION_ID: u16 = 0x002A;
/// RFC 8656 §18.11.
pub const ADDITIONAL_ADDRESS_FAMILY: u16 = 0x8000;
/// RFC 8656 §18.12.
pub const ADDRESS_ERROR_CODE: u16 = 0x8001;
/// RFC 8489 §14.11.
pub const PASSWORD_ALGORITHMS: u16 = 0x8002;
/// RFC 8489 §14.16.
pub const ALTERNATE_DOMAIN: u16 = 0x8003;
/// RFC 8656 §18.13.
pub const ICMP: u16 = 0x8004;
/// RFC 8489 §14.14.
pub const SOFTWARE: u16 = 0x8022;
/// RFC 8489 §14.15.
pub const ALTERNATE_SERVER: u16 = 0x8023;
/// RFC 7982 §3.
pub const TRANSACTION_TRANSMIT_COUNTER: u16 = 0x8025;
/// RFC 5780 §7.7 (reserved name kept for logs).
pub const CACHE_TIMEOUT: u16 = 0x8027;
/// RFC 8489 §14.7.
pub const FINGERPRINT: u16 = 0x8028;
/// RFC 8445 §16.1.
pub const ICE_CONTROLLED: u16 = 0x8029;
/// RFC 8445 §16.1.
pub const ICE_CONTROLLING: u16 = 0x802A;
/// RFC 5780 §7.3.
pub const RESPONSE_ORIGIN: u16 = 0x802B;
/// RFC 5780 §7.4.
pub const OTHER_ADDRESS: u16 = 0x802C;
/// RFC 8016 §3.1.
pub const MOBILITY_TICKET: u16 = 0x8030;

/// RFC 8489 §14: "Attributes with type values between 0x0000 and 0x7FFF are
/// comprehension-required attributes, which means that the STUN agent cannot
/// successfully process the message unless it understands the attribute."
pub const fn is_comprehension_required(t: u16) -> bool {
    t < 0x8000
}

/// The registry name of a known attribute, for logs.
pub const fn name(t: u16) -> Option<&'static str> {
    Some(match t {
        MAPPED_ADDRESS => "MAPPED-ADDRESS",
        CHANGE_REQUEST => "CHANGE-REQUEST",
        USERNAME => "USERNAME",
        MESSAGE_INTEGRITY => "MESSAGE-INTEGRITY",
        ERROR_CODE => "ERROR-CODE",
        UNKNOWN_ATTRIBUTES => "UNKNOWN-ATTRIBUTES",
        CHANNEL_NUMBER => "CHANNEL-NUMBER",
        LIFETIME => "LIFETIME",
        XOR_PEER_ADDRESS => "XOR-PEER-ADDRESS",
        DATA => "DATA",
        REALM => "REALM",
        NONCE => "NONCE",
        XOR_RELAYED_ADDRESS => "XOR-RELAYED-ADDRESS",
        REQUESTED_ADDRESS_FAMILY => "REQUESTED-ADDRESS-FAMILY",
        EVEN_PORT => "EVEN-PORT",
        REQUESTED_TRANSPORT => "REQUESTED-TRANSPORT",
        DONT_FRAGMENT => "DONT-FRAGMENT",
        ACCESS_TOKEN => "ACCESS-TOKEN",
        MESSAGE_INTEGRITY_SHA256 => "MESSAGE-INTEGRITY-SHA256",
        PASSWORD_ALGORITHM => "PASSWORD-ALGORITHM",
        USERHASH => "USERHASH",
        XOR_MAPPED_ADDRESS => "XOR-MAPPED-ADDRESS",
        RESERVATION_TOKEN => "RESERVATION-TOKEN",
        PRIORITY => "PRIORITY",
        USE_CANDIDATE => "USE-CANDIDATE",
        PADDING => "PADDING",
        RESPONSE_PORT => "RESPONSE-PORT",
        CONNECTION_ID => "CONNECTION-ID",
        ADDITIONAL_ADDRESS_FAMILY => "ADDITIONAL-ADDRESS-FAMILY",
        ADDRESS_ERROR_CODE => "ADDRESS-ERROR-CODE",
        PASSWORD_ALGORITHMS => "PASSWORD-ALGORITHMS",
        ALTERNATE_DOMAIN => "ALTERNATE-DOMAIN",
        ICMP => "ICMP",
        SOFTWARE => "SOFTWARE",
        ALTERNATE_SERVER => "ALTERNATE-SERVER",
        TRANSACTION_TRANSMIT_COUNTER => "TRANSACTION-TRANSMIT-COUNTER",
        CACHE_TIMEOUT => "CACHE-TIMEOUT",
        FINGERPRINT => "FINGERPRINT",
        ICE_CONTROLLED => "ICE-CONTROLLED",
        ICE_CONTROLLING => "ICE-CONTROLLING",
        RESPONSE_ORIGIN => "RESPONSE-ORIGIN",
        OTHER_ADDRESS => "OTHER-ADDRESS",
        MOBILITY_TICKET => "MOBILITY-TICKET",
        _ => return None,
    })
}

/// Length of an attribute's value rounded up to the 4-byte boundary
/// (RFC 8489 §14: attributes are padded to a multiple of 4 bytes).
pub(crate) const fn padded(len: usize) -> usize {
    len.saturating_add(3) & !3
}
