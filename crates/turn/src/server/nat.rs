//! RFC 5780 Binding handling on [`Server`] (only with `ServerConfig::rfc5780`); the
//! address logic is in [`crate::nat_discovery`].

use std::net::SocketAddr;
use std::time::Instant;

use switchyard_stun::{Class, Message, attr};

use super::{BINDING_ATTRS, Server};
use crate::{ClientAddr, ClientOutcome, DropReason, Transport};

/// Attributes a Binding request may carry with RFC 5780 on.
const NAT_ATTRS: &[u16] = &[attr::CHANGE_REQUEST, attr::RESPONSE_PORT, attr::PADDING];
/// The most PADDING echoed back: keeps the answer within one unfragmented datagram
/// and never much larger than the request that asked for it.
const MAX_PADDING: usize = 1024;

impl Server {
    /// RFC 5780 §6: XOR-MAPPED-ADDRESS, MAPPED-ADDRESS (for ALG detection),
    /// RESPONSE-ORIGIN, OTHER-ADDRESS; CHANGE-REQUEST and RESPONSE-PORT move the answer to
    /// another source or destination ([`ClientOutcome::ReplyFrom`]).
    pub(super) fn binding_rfc5780(
        &mut self,
        now: Instant,
        from: ClientAddr,
        msg: &Message<'_>,
        reply: &mut [u8],
    ) -> ClientOutcome {
        let Some(nd) = self.cfg.rfc5780.as_ref() else {
            return self.drop(DropReason::StunDisabled);
        };
        let sign = self.base_sign(msg);
        let mut unknown = [0u16; 8];
        let mut n = 0;
        for t in msg
            .unknown_comprehension_required(BINDING_ATTRS)
            .filter(|t| !NAT_ATTRS.contains(t))
        {
            if n < unknown.len() {
                unknown[n] = t;
                n += 1;
            }
        }
        let (Ok(change), Ok(response_port)) = (msg.change_request(), msg.response_port()) else {
            return self.nat_error(now, from, msg, reply, 400, &[]);
        };
        let other = nd.other_address(from.local);
        let (change_ip, change_port) =
            change.map_or((false, false), |c| (c.change_ip, c.change_port));
        // CHANGE-REQUEST and RESPONSE-PORT steer UDP answers; a stream has one path.
        if (change.is_some() || response_port.is_some()) && from.transport != Transport::Udp {
            return self.nat_error(now, from, msg, reply, 400, &[]);
        }
        // RFC 5780 §6.1: a CHANGE-REQUEST the server cannot carry out → 420.
        let origin = nd.answer_from(from.local, change_ip, change_port);
        if n > 0 || origin.is_none() {
            if origin.is_none() && n < unknown.len() {
                unknown[n] = attr::CHANGE_REQUEST;
                n += 1;
            }
            let list = unknown;
            return self.nat_error(now, from, msg, reply, 420, &list[..n]);
        }
        let origin = origin.unwrap_or(from.local);
        let to = response_port.map_or(from.remote, |p| SocketAddr::new(from.remote.ip(), p));
        let padding = if from.transport == Transport::Udp {
            msg.padding().map_or(0, |p| p.len().min(MAX_PADDING))
        } else {
            0
        };
        let mapped = from.remote;
        let zeros = [0u8; MAX_PADDING];
        let out = self.respond(reply, msg, Class::Success, sign, |b| {
            b.add_xor_address(attr::XOR_MAPPED_ADDRESS, mapped)?;
            b.add_address(attr::MAPPED_ADDRESS, mapped)?;
            b.add_address(attr::RESPONSE_ORIGIN, origin)?;
            if let Some(o) = other {
                b.add_address(attr::OTHER_ADDRESS, o)?;
            }
            if padding > 0 {
                b.add(attr::PADDING, &zeros[..padding])?;
            }
            Ok(())
        });
        match out {
            ClientOutcome::Reply { len } if origin != from.local || to != from.remote => {
                ClientOutcome::ReplyFrom {
                    len,
                    from: origin,
                    to,
                }
            }
            other => other,
        }
    }

    fn nat_error(
        &mut self,
        now: Instant,
        from: ClientAddr,
        msg: &Message<'_>,
        reply: &mut [u8],
        code: u16,
        unknown: &[u16],
    ) -> ClientOutcome {
        if !self.unauth_reply_allowed(now, from) {
            return self.drop(DropReason::RateLimited);
        }
        let sign = self.base_sign(msg);
        self.error(reply, msg, code, sign, |b| {
            if unknown.is_empty() {
                Ok(())
            } else {
                b.add_unknown_attributes(unknown)
            }
        })
    }
}
