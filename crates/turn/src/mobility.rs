//! RFC 8016 mobility: an allocation that follows its client to a new address.
//!
//! The client asks for a ticket with an empty MOBILITY-TICKET in its Allocate; the success
//! response carries an opaque ticket. After an address change (Wi-Fi to cellular), a Refresh
//! from the new 5-tuple that carries the ticket and authenticates as the allocation's user
//! moves the allocation there: relayed address, permissions and channels stay, so the peer
//! sees nothing. Every Refresh that carries the current ticket gets a fresh one and the old
//! one stops working (RFC 8016 §3.2, §3.3), so a captured ticket is good for one move at most.
//!
//! The ticket is a key into this table, not an encrypted blob of state: the allocation
//! lives in this worker anyway, and 16 random bytes are unguessable enough for a value that
//! also needs the user's credentials (with authentication on) to be used. On the wire it is
//! their base64url text: coturn's clients (`turnutils_uclient -M`) keep the ticket as a C
//! string, so a binary ticket with a zero byte would come back cut short.
//!
//! Only allocations made over UDP (or DTLS) get a ticket: a TCP/TLS allocation lives and
//! dies with its connection (RFC 8656 §2.2), so there is nothing to move.

use rustc_hash::FxHashMap;

/// Random bytes in a ticket.
const TICKET_RANDOM: usize = 16;
/// Length of the tickets this server issues: base64url of [`TICKET_RANDOM`] bytes, unpadded.
pub(crate) const TICKET_LEN: usize = 22;

pub(crate) type Ticket = [u8; TICKET_LEN];

/// The printable ticket for `random`.
pub(crate) fn encode(random: [u8; TICKET_RANDOM]) -> Ticket {
    use base64::Engine as _;
    let mut t = [0u8; TICKET_LEN];
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode_slice(random, &mut t)
        .unwrap_or(0);
    debug_assert_eq!(n, TICKET_LEN);
    t
}

/// Current ticket of each mobile allocation, both ways.
#[derive(Debug, Default)]
pub(crate) struct Tickets {
    by_ticket: FxHashMap<Ticket, u32>,
    by_index: FxHashMap<u32, Ticket>,
}

impl Tickets {
    /// Give allocation `index` the ticket `fresh`, retiring its previous one.
    pub(crate) fn issue(&mut self, index: u32, fresh: Ticket) {
        if let Some(old) = self.by_index.insert(index, fresh) {
            self.by_ticket.remove(&old);
        }
        self.by_ticket.insert(fresh, index);
    }

    /// The allocation a ticket from the wire names, if it is current.
    pub(crate) fn lookup(&self, ticket: &[u8]) -> Option<u32> {
        let t: &Ticket = ticket.try_into().ok()?;
        self.by_ticket.get(t).copied()
    }

    pub(crate) fn contains(&self, ticket: &Ticket) -> bool {
        self.by_ticket.contains_key(ticket)
    }

    /// The current ticket of allocation `index`, if it is mobile.
    pub(crate) fn current(&self, index: u32) -> Option<Ticket> {
        self.by_index.get(&index).copied()
    }

    /// The allocation is gone: its ticket with it.
    pub(crate) fn forget(&mut self, index: u32) {
        if let Some(t) = self.by_index.remove(&index) {
            self.by_ticket.remove(&t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reissue_retires_the_old_ticket() {
        let (a, b) = (encode([1; 16]), encode([0; 16]));
        assert!(
            b.iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        );
        let mut t = Tickets::default();
        t.issue(3, a);
        assert_eq!(t.lookup(&a), Some(3));
        t.issue(3, b);
        assert_eq!(t.lookup(&a), None);
        assert_eq!(t.lookup(&b), Some(3));
        assert_eq!(t.lookup(&b[..21]), None, "wrong length is no ticket");
        assert_eq!(t.current(3), Some(b));
        t.forget(3);
        assert_eq!(t.lookup(&b), None);
        assert_eq!(t.current(3), None);
    }
}
