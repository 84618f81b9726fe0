//! Zero-copy STUN codec for Switchyard's TURN server: RFC 8489 (and 5389),
//! TURN attributes of RFC 8656 (and 5766), RFC 6062, RFC 5780, RFC 8016 and
//! the ICE attributes of RFC 8445.
//!
//! - [`Message::parse`] validates a datagram and returns a borrowed view; it
//!   never allocates and never panics, whatever the input.
//! - [`MessageBuilder`] writes a message into a caller buffer and reports
//!   [`BuildError::BufferTooSmall`] instead of growing it.
//! - [`channel_data`] handles the 4-byte-header hot path, [`frame`] cuts
//!   TCP/TLS streams, [`classify`] demultiplexes datagrams.
//!
//! # Where this differs from the session contract
//!
//! - Typed getters return `Result<Option<T>, AttrError>` (`Ok(None)` = absent,
//!   `Err` = present but malformed, answer 400), so handlers can use `?`.
//!   This includes `username`, `realm`, `nonce`, `software`, `lifetime`,
//!   `channel_number`, `requested_transport`, `requested_address_family`,
//!   `even_port`, `reservation_token`, `error_code` and the address getters.
//!   Presence-only attributes (`dont_fragment`, `use_candidate`) return
//!   `bool`; opaque ones (`data`, `padding`, `mobility_ticket`) `Option<&[u8]>`.
//! - `unknown_attributes()` returns `Result<Option<U16List>, AttrError>`.
//! - Every `MessageBuilder::add_*` returns `Result<(), BuildError>`, including
//!   `add_address`, `add_error_code`, `add_unknown_attributes`, `add_u32`,
//!   the integrity adders and `add_fingerprint`.
//! - `Frame::Incomplete { need }` counts the *additional* bytes needed.
//!
//! Additions: `get_all`, `xor_peer_address`, `xor_relayed_addresses`,
//! `address_error_code`, `icmp`, `change_request`, `response_port`,
//! `password_algorithms`, `password_algorithm`, `userhash` (getter and
//! function), `long_term_key_sha256`, `has_message_integrity(_sha256)`,
//! builder `add_with` (zero-copy fill), `add_flag`, `add_u64`,
//! `add_channel_number`, `add_requested_transport`, `add_address_family`,
//! `add_even_port`, `add_icmp`, `add_change_request`, `add_response_port`,
//! `add_password_algorithm(s)`, `add_address_error_code`, `set_padding`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod address;
pub mod attr;
mod builder;
pub mod channel_data;
mod error;
mod frame;
mod header;
mod integrity;
mod message;

pub use address::AddressFamily;
pub use builder::MessageBuilder;
pub use error::{AttrError, BuildError, ChannelDataError, IntegrityError, ParseError};
pub use frame::{Frame, PacketKind, classify, frame};
pub use header::{Class, HEADER_LEN, MAGIC_COOKIE, MessageType, Method, TransactionId};
pub use integrity::{
    FINGERPRINT_XOR, Integrity, MESSAGE_INTEGRITY_LEN, MESSAGE_INTEGRITY_SHA256_LEN,
    PasswordAlgorithm, long_term_key, long_term_key_sha256, userhash,
};
pub use message::{
    AddressErrorCode, Attributes, ChangeRequest, Icmp, MAX_TEXT_LEN, MAX_USERNAME_LEN, Message,
    PasswordAlgorithms, RawAttribute, U16List,
};
