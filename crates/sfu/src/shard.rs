//! Several routers behind one UDP port, one per media thread.
//!
//! LiveKit clients reach every peer connection on the same UDP port (7882), so the port
//! cannot tell which router holds a connection. The kernel spreads datagrams over the
//! threads' `SO_REUSEPORT` sockets by address, not by room. So each router marks the ICE
//! credentials it hands out: the first character of our ufrag names the router. Every STUN
//! check carries that ufrag in its `USERNAME` (`ours:theirs`, RFC 8445 §7.2.2), and ICE
//! precedes DTLS and media, so the thread that receives a client's datagrams learns the
//! owner from the client's first check and remembers it by address (consent checks every
//! few seconds keep that fresh).

use str0m::{IceCreds, Rtc};

/// Characters a ufrag may start with (ice-char, RFC 8839 §5.4), one per router.
const TAGS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Which of a process's routers owns a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(u8);

impl ShardId {
    /// The most routers one port can tell apart.
    pub const MAX: usize = TAGS.len();

    /// The `index`-th router, if there can be that many.
    pub fn new(index: usize) -> Option<Self> {
        (index < Self::MAX).then_some(ShardId(index as u8))
    }

    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// The router whose ufrag a STUN request names; `None` for anything else (DTLS,
    /// SRTP, STUN without `USERNAME`, a ufrag no router made).
    pub fn of_datagram(bytes: &[u8]) -> Option<ShardId> {
        let first = *crate::router::local_ufrag(bytes)?.as_bytes().first()?;
        TAGS.iter()
            .position(|&t| t == first)
            .map(|i| ShardId(i as u8))
    }

    /// Fresh random ICE credentials whose ufrag names this router.
    pub(crate) fn ice_credentials(self) -> IceCreds {
        let mut creds = IceCreds::new();
        // str0m's ufrag is 16 random ice-chars; the first becomes the tag, leaving well
        // over the 24 random bits RFC 8445 §5.3 asks for.
        creds.ufrag.replace_range(..1, &self.tag());
        creds
    }

    fn tag(self) -> String {
        char::from(TAGS[self.index()]).to_string()
    }

    /// Puts this router's tag back on `rtc`'s ufrag after an ICE restart (a client offer
    /// with new credentials makes str0m pick new random ones for the answer). Returns the
    /// ufrag str0m picked and the one that replaces it, for the answer's SDP.
    pub(crate) fn retag(self, rtc: &mut Rtc) -> Option<(String, String)> {
        let mut creds = rtc.direct_api().local_ice_credentials();
        if creds.ufrag.starts_with(&self.tag()) {
            return None;
        }
        let old = creds.ufrag.clone();
        creds.ufrag.replace_range(..1, &self.tag());
        let new = creds.ufrag.clone();
        rtc.direct_api().set_local_ice_credentials(creds);
        Some((old, new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_stun::{Class, MessageBuilder, MessageType, Method, TransactionId, attr};

    fn check_for(ufrag: &str) -> Vec<u8> {
        let mut buf = vec![0u8; 256];
        let typ = MessageType::new(Class::Request, Method::BINDING);
        let mut b = MessageBuilder::new(&mut buf, typ, TransactionId([7; 12])).unwrap();
        b.add(attr::USERNAME, format!("{ufrag}:theirs").as_bytes())
            .unwrap();
        let n = b.finish();
        buf.truncate(n);
        buf
    }

    #[test]
    fn a_routers_checks_name_it() {
        for i in [0, 1, 9, 10, 35, 36, ShardId::MAX - 1] {
            let shard = ShardId::new(i).unwrap();
            let creds = shard.ice_credentials();
            assert_eq!(creds.ufrag.len(), 16);
            assert_eq!(ShardId::of_datagram(&check_for(&creds.ufrag)), Some(shard));
        }
        assert_eq!(ShardId::new(ShardId::MAX), None);
    }

    #[test]
    fn other_datagrams_name_none() {
        assert_eq!(ShardId::of_datagram(&check_for("+abc")), None);
        assert_eq!(ShardId::of_datagram(&check_for("")), None);
        // A DTLS record and an RTP packet.
        assert_eq!(ShardId::of_datagram(&[22, 254, 253, 0, 0, 0]), None);
        assert_eq!(ShardId::of_datagram(&[0x80, 96, 0, 1, 0, 0, 0, 0]), None);
    }
}
