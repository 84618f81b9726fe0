//! Server configuration and the state shared between workers.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::alternate::AlternateServer;
use crate::auth::Auth;
use crate::nat_discovery::NatDiscovery;
use crate::policy::PeerPolicy;
use crate::ports::Reservations;

/// `external-ip=PUBLIC[/PRIVATE]`: what XOR-RELAYED-ADDRESS advertises for a relay bound to
/// `private` (or, without `private`, for any relay address of the same family).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalIp {
    pub public: IpAddr,
    pub private: Option<IpAddr>,
}

/// Maps the caller's monotonic clock to Unix time, which REST usernames and nonces need.
/// The core never reads a clock: Unix time at `now` is `unix_secs + (now - instant)`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ClockAnchor {
    pub instant: Instant,
    pub unix_secs: u64,
}

impl ClockAnchor {
    pub fn unix_at(&self, now: Instant) -> u64 {
        if now >= self.instant {
            self.unix_secs
                .saturating_add((now - self.instant).as_secs())
        } else {
            self.unix_secs
                .saturating_sub((self.instant - now).as_secs())
        }
    }
}

/// Allocation counters shared by every worker (`user-quota`, `total-quota`). Touched only
/// when an allocation is created or freed, never per packet, so a mutex is fine.
#[derive(Debug, Default)]
pub struct Quotas {
    total: AtomicU32,
    users: Mutex<FxHashMap<Box<str>, u32>>,
}

/// Which quota refused an allocation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum QuotaExceeded {
    User,
    Total,
}

impl Quotas {
    pub fn new() -> Self {
        Self::default()
    }

    /// Allocations alive in all workers.
    pub fn total(&self) -> u32 {
        self.total.load(Ordering::Relaxed)
    }

    /// Allocations alive for one quota user (the user part of a REST username).
    pub fn user(&self, name: &str) -> u32 {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users.get(name).copied().unwrap_or(0)
    }

    /// Count one allocation for `user` unless a quota (0 = unlimited) is reached.
    pub(crate) fn try_acquire(
        &self,
        user: &str,
        user_quota: u32,
        total_quota: u32,
    ) -> Result<(), QuotaExceeded> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if total_quota != 0 && self.total.load(Ordering::Relaxed) >= total_quota {
            return Err(QuotaExceeded::Total);
        }
        let count = users.get(user).copied().unwrap_or(0);
        if user_quota != 0 && count >= user_quota {
            return Err(QuotaExceeded::User);
        }
        users.insert(user.into(), count + 1);
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn release(&self, user: &str) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = users.get_mut(user) {
            *count -= 1;
            if *count == 0 {
                users.remove(user);
            }
            self.total.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Everything a worker's [`crate::Server`] needs. Field names follow coturn's options.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub realm: String,
    pub auth: Auth,
    pub policy: PeerPolicy,
    /// `relay-ip`; empty = the client's local (listener) IP of the requested family.
    pub relay_ips: Vec<IpAddr>,
    pub external_ips: Vec<ExternalIp>,
    /// This worker's share of `min-port..=max-port`.
    pub port_range: RangeInclusive<u16>,
    pub default_lifetime: Duration,
    /// `max-allocate-lifetime`.
    pub max_lifetime: Duration,
    pub permission_lifetime: Duration,
    pub channel_lifetime: Duration,
    /// `stale-nonce`; `None` = nonces never go stale.
    pub stale_nonce: Option<Duration>,
    /// 0 = unlimited.
    pub user_quota: u32,
    /// 0 = unlimited.
    pub total_quota: u32,
    pub quotas: Arc<Quotas>,
    /// `max-bps`: relayed payload bytes per second per allocation, each direction; 0 =
    /// unlimited. See [`crate::bandwidth`].
    pub max_bps: u64,
    /// `bps-capacity`: the server-wide budget, shared by every worker; `None` = unlimited.
    pub bps_capacity: Option<Arc<crate::bandwidth::Capacity>>,
    /// Add FINGERPRINT to every response (otherwise only when the request had one).
    pub fingerprint: bool,
    pub software: Option<String>,
    pub no_udp_relay: bool,
    pub no_tcp_relay: bool,
    /// Accept channel numbers 0x4000..=0x7FFE (RFC 5766) instead of 0x4000..=0x4FFF (RFC 8656).
    pub rfc5766_channel_numbers: bool,
    /// Shared by all workers (and nodes) so any of them can check a nonce another issued.
    pub nonce_key: [u8; 32],
    pub clock: ClockAnchor,
    /// `stun-only`: TURN requests are ignored.
    pub stun_only: bool,
    /// `no-stun`: Binding requests are ignored.
    pub no_stun: bool,
    /// `no-auth`: anonymous TURN (also implied by `Auth::None`).
    pub no_auth: bool,
    /// The addresses the server listens on. Without `relay-ip`, a client asking for the
    /// other address family than the one it came in on (REQUESTED-ADDRESS-FAMILY) is given a
    /// relay on one of these, as coturn does for dual-stack hosts.
    pub listen_ips: Vec<IpAddr>,
    /// coturn `unauthorized-ratelimit`, but on by default: replies to requests that did not
    /// pass authentication (401 and 438 challenges, errors sent before authentication, 420 to
    /// Binding) go to one source IP (an IPv6 source counted by its /64) at most this many
    /// times per second over UDP; the rest are dropped without reply
    /// ([`crate::DropReason::RateLimited`]). TCP and TLS are exempt (their source address
    /// is not spoofable). Binding success responses are not limited. 0 = off. Default 10,
    /// coturn's value when enabled.
    pub unauth_rate_limit: u32,
    /// coturn `include-reason-string`: error responses to unauthenticated requests carry
    /// their reason phrase ("Unauthorized", "Stale Nonce", …) and, with it, 401 its standard
    /// phrase. Default false: those replies carry the code only, to stay small. Errors to
    /// authenticated requests always carry a short phrase.
    pub include_reason_string: bool,
    /// `alternate-server`: UDP and TCP clients asking for a new allocation are sent there
    /// with 300 Try Alternate, round-robin (see [`crate::alternate`]).
    pub alternate_servers: Vec<AlternateServer>,
    /// `tls-alternate-server`: the same for TLS and DTLS clients.
    pub tls_alternate_servers: Vec<AlternateServer>,
    /// `mobility` (RFC 8016): hand out MOBILITY-TICKETs and let a Refresh with one move its
    /// allocation to a new client address. Off: a request with a ticket gets 405.
    pub mobility: bool,
    /// This worker's number, put in the top byte of RFC 6062 CONNECTION-IDs so the IO
    /// layer can hand a ConnectionBind that reached another worker to the owner
    /// ([`crate::tcp_relay::owner`]).
    pub worker_id: u8,
    /// EVEN-PORT reservations, shared by every worker of one server so a RESERVATION-TOKEN
    /// works whichever worker its Allocate reaches. Give each worker a clone of one `Arc`.
    pub reservations: Arc<Reservations>,
    /// `rfc5780` with two listening IPs of a family: NAT behaviour discovery on Binding
    /// (OTHER-ADDRESS, RESPONSE-ORIGIN, CHANGE-REQUEST, RESPONSE-PORT, PADDING). `None`:
    /// Binding answers carry XOR-MAPPED-ADDRESS only and CHANGE-REQUEST gets 420.
    pub rfc5780: Option<NatDiscovery>,
}

impl ServerConfig {
    /// coturn's defaults, no credentials, the whole dynamic port range.
    pub fn new(realm: impl Into<String>, clock: ClockAnchor) -> Self {
        ServerConfig {
            realm: realm.into(),
            auth: Auth::None,
            policy: PeerPolicy::default(),
            relay_ips: Vec::new(),
            external_ips: Vec::new(),
            port_range: 49152..=65535,
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            permission_lifetime: Duration::from_secs(300),
            channel_lifetime: Duration::from_secs(600),
            stale_nonce: Some(Duration::from_secs(600)),
            user_quota: 0,
            total_quota: 0,
            quotas: Arc::new(Quotas::new()),
            max_bps: 0,
            bps_capacity: None,
            fingerprint: false,
            software: None,
            no_udp_relay: false,
            no_tcp_relay: false,
            rfc5766_channel_numbers: false,
            nonce_key: [0; 32],
            clock,
            stun_only: false,
            no_stun: false,
            no_auth: false,
            listen_ips: Vec::new(),
            unauth_rate_limit: 10,
            include_reason_string: false,
            alternate_servers: Vec::new(),
            tls_alternate_servers: Vec::new(),
            mobility: false,
            worker_id: 0,
            reservations: Arc::new(Reservations::new()),
            rfc5780: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas() {
        let q = Quotas::new();
        assert!(q.try_acquire("a", 2, 3).is_ok());
        assert!(q.try_acquire("a", 2, 3).is_ok());
        assert_eq!(q.try_acquire("a", 2, 3), Err(QuotaExceeded::User));
        assert!(q.try_acquire("b", 2, 3).is_ok());
        assert_eq!(q.try_acquire("c", 2, 3), Err(QuotaExceeded::Total));
        assert_eq!((q.total(), q.user("a")), (3, 2));
        q.release("a");
        q.release("zzz");
        assert_eq!((q.total(), q.user("a")), (2, 1));
        assert!(q.try_acquire("c", 0, 0).is_ok());
    }

    #[test]
    fn clock_anchor() {
        let t = Instant::now();
        let a = ClockAnchor {
            instant: t,
            unix_secs: 1000,
        };
        assert_eq!(a.unix_at(t + Duration::from_millis(2500)), 1002);
        if let Some(earlier) = t.checked_sub(Duration::from_secs(5)) {
            assert_eq!(a.unix_at(earlier), 995);
        }
    }
}
