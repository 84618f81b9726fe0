//! Client SDP, parsed before it reaches the [`Router`](crate::Router).
//!
//! str0m's SDP parser is thorough and slow: an answer for a subscriber connection with 20
//! m-lines (a ten-person call) is about 47 KB and takes 9-12 ms to parse. The router lives
//! behind the lock the media thread takes for every batch of datagrams, so parsing there
//! would stall forwarding in every room for that long. Callers parse with these types
//! first, outside any lock, and hand the router the result.

use str0m::change::{SdpAnswer, SdpOffer};

use crate::SfuError;

/// A client's offer for its publisher connection.
#[derive(Debug)]
pub struct PublisherOffer(pub(crate) SdpOffer);

impl PublisherOffer {
    pub fn parse(sdp: &str) -> Result<Self, SfuError> {
        SdpOffer::from_sdp_string(sdp)
            .map(Self)
            .map_err(|e| SfuError::Sdp(e.to_string()))
    }
}

/// A client's answer to the router's offer for its subscriber connection.
#[derive(Debug)]
pub struct SubscriberAnswer(pub(crate) SdpAnswer);

impl SubscriberAnswer {
    pub fn parse(sdp: &str) -> Result<Self, SfuError> {
        SdpAnswer::from_sdp_string(sdp)
            .map(Self)
            .map_err(|e| SfuError::Sdp(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_sdp_is_an_sdp_error() {
        assert!(matches!(
            PublisherOffer::parse("v=0\r\nnonsense"),
            Err(SfuError::Sdp(_))
        ));
        assert!(matches!(SubscriberAnswer::parse(""), Err(SfuError::Sdp(_))));
    }
}
