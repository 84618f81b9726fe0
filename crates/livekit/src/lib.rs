//! A LiveKit-compatible SFU front end: the signalling WebSocket (`/rtc`), access tokens,
//! the Twirp `RoomService` and the health check, all on one HTTP port, over the sans-IO
//! [`switchyard_sfu::Router`]s, one per media thread, behind one UDP port.
//!
//! Real LiveKit SDKs connect to it unchanged. What is implemented and what is not is listed
//! in `README` terms in [`hub`]'s docs.

#![forbid(unsafe_code)]

mod http;
mod hub;
pub mod ice_servers;
mod media;
pub mod settings;
mod shards;
pub mod signal;
pub mod token;
mod twirp;
pub mod webhook;

pub use http::{Server, serve};
pub use ice_servers::{IceCredential, IceServer};
pub use settings::Settings;
pub use switchyard_sfu::{CongestionControl, IngressLimit};
pub use webhook::WebhookConfig;

/// The LiveKit server version we report. The JS SDK refuses RPC below 1.8.0.
pub const SERVER_VERSION: &str = "1.9.0";
/// The signalling protocol version we speak (`ServerInfo.protocol`).
pub const PROTOCOL_VERSION: i32 = 16;
