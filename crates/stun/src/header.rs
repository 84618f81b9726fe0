//! The 20-byte STUN header: message type (class + method), magic cookie and
//! transaction id (RFC 8489 §5).

/// RFC 8489 §5: "The Magic Cookie field MUST contain the fixed value 0x2112A442".
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

/// Length of the fixed STUN header.
pub const HEADER_LEN: usize = 20;

/// The 96-bit transaction id; also the key for XOR-encoding IPv6 addresses.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct TransactionId(pub [u8; 12]);

/// Message class, two bits spread over the message type (RFC 8489 §5).
#[derive(Copy, Clone, PartialEq, Eq, Debug, Hash)]
pub enum Class {
    /// C1C0 = 0b00.
    Request,
    /// C1C0 = 0b01.
    Indication,
    /// C1C0 = 0b10.
    Success,
    /// C1C0 = 0b11.
    Error,
}

impl Class {
    const fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::Success => 0b10,
            Class::Error => 0b11,
        }
    }

    const fn from_bits(bits: u16) -> Self {
        match bits & 0b11 {
            0b00 => Class::Request,
            0b01 => Class::Indication,
            0b10 => Class::Success,
            _ => Class::Error,
        }
    }
}

/// A 12-bit STUN method. Only the low 12 bits go on the wire; higher bits are
/// dropped by [`MessageType::to_u16`].
#[derive(Copy, Clone, PartialEq, Eq, Debug, Hash)]
pub struct Method(pub u16);

impl Method {
    /// RFC 8489 §18.2.
    pub const BINDING: Method = Method(0x001);
    /// RFC 8656 §17.
    pub const ALLOCATE: Method = Method(0x003);
    /// RFC 8656 §17.
    pub const REFRESH: Method = Method(0x004);
    /// RFC 8656 §17 (indication only).
    pub const SEND: Method = Method(0x006);
    /// RFC 8656 §17 (indication only).
    pub const DATA: Method = Method(0x007);
    /// RFC 8656 §17.
    pub const CREATE_PERMISSION: Method = Method(0x008);
    /// RFC 8656 §17.
    pub const CHANNEL_BIND: Method = Method(0x009);
    /// RFC 6062 §6.1.
    pub const CONNECT: Method = Method(0x00A);
    /// RFC 6062 §6.1.
    pub const CONNECTION_BIND: Method = Method(0x00B);
    /// RFC 6062 §6.1 (indication only).
    pub const CONNECTION_ATTEMPT: Method = Method(0x00C);
}

/// Class and method together, as packed into the 14-bit message type.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Hash)]
pub struct MessageType {
    /// Request, indication, success or error response.
    pub class: Class,
    /// The method, e.g. [`Method::ALLOCATE`].
    pub method: Method,
}

impl MessageType {
    /// Pairs a class with a method.
    pub const fn new(class: Class, method: Method) -> Self {
        MessageType { class, method }
    }

    /// Decodes the first two header bytes; `None` if either of the top two
    /// bits is set (RFC 8489 §5: such a packet is not STUN).
    pub const fn from_u16(v: u16) -> Option<Self> {
        if v & 0xC000 != 0 {
            return None;
        }
        // Layout (RFC 8489 §5 figure 3): M11..M7 C1 M6..M4 C0 M3..M0.
        let method = (v & 0x000F) | ((v & 0x00E0) >> 1) | ((v & 0x3E00) >> 2);
        let class = ((v >> 4) & 0b01) | ((v >> 7) & 0b10);
        Some(MessageType {
            class: Class::from_bits(class),
            method: Method(method),
        })
    }

    /// Encodes for the wire (the top two bits are always zero).
    pub const fn to_u16(self) -> u16 {
        let m = self.method.0 & 0x0FFF;
        let c = self.class.bits();
        (m & 0x000F)
            | ((m & 0x0070) << 1)
            | ((m & 0x0F80) << 2)
            | ((c & 0b01) << 4)
            | ((c & 0b10) << 7)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_type_values() {
        // RFC 8489 §5: Binding request 0x0001, success 0x0101, error 0x0111.
        let cases = [
            (Class::Request, Method::BINDING, 0x0001),
            (Class::Success, Method::BINDING, 0x0101),
            (Class::Error, Method::BINDING, 0x0111),
            (Class::Indication, Method::BINDING, 0x0011),
            (Class::Request, Method::ALLOCATE, 0x0003),
            (Class::Success, Method::ALLOCATE, 0x0103),
            (Class::Error, Method::ALLOCATE, 0x0113),
            (Class::Indication, Method::SEND, 0x0016),
            (Class::Indication, Method::DATA, 0x0017),
            (Class::Request, Method::CHANNEL_BIND, 0x0009),
            (Class::Indication, Method::CONNECTION_ATTEMPT, 0x001C),
        ];
        for (class, method, wire) in cases {
            let t = MessageType::new(class, method);
            assert_eq!(t.to_u16(), wire, "{t:?}");
            assert_eq!(MessageType::from_u16(wire), Some(t));
        }
    }

    #[test]
    fn every_14_bit_type_round_trips() {
        for v in 0..0x4000u16 {
            let t = MessageType::from_u16(v).expect("top bits clear");
            assert_eq!(t.to_u16(), v);
        }
        assert_eq!(MessageType::from_u16(0x4001), None);
        assert_eq!(MessageType::from_u16(0x8001), None);
    }
}
