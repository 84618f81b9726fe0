//! Live reconfiguration (`SIGHUP`): new credentials, peer policy, quotas, bandwidth limits
//! and lifetimes for a running server, without touching its allocations.

use super::{Server, UnauthLimiter};
use crate::ServerConfig;
use crate::auth::Authenticator;

impl Server {
    /// Applies `new` to a running server. Allocations, permissions and channels stay: an
    /// allocation keeps the key it authenticated with, so rotating a shared secret or
    /// removing a user ends no call; the next Allocate is checked against the new
    /// credentials. Limits (quotas, `max-bps`, `bps-capacity`, lifetimes, peer policy) apply
    /// from the next packet or request.
    ///
    /// What is bound to the running process is kept from the old configuration, whatever
    /// `new` says: this worker's relay port range, the shared allocation counters
    /// ([`ServerConfig::quotas`]), the shared reservations, the nonce key (nonces already issued stay valid) and the
    /// clock anchor.
    pub fn reconfigure(&mut self, mut new: ServerConfig) {
        new.port_range = self.cfg.port_range.clone();
        new.quotas = self.cfg.quotas.clone();
        new.reservations = self.cfg.reservations.clone();
        new.nonce_key = self.cfg.nonce_key;
        new.clock = self.cfg.clock;

        let mut policy = new.policy.clone();
        if policy.relay_ports().is_none() {
            policy.set_relay_ports(new.port_range.clone());
        }
        self.policy = policy;
        self.auth = Authenticator::new(&new.auth, &new.realm);
        self.auth_enabled = !new.no_auth && !matches!(new.auth, crate::Auth::None);
        self.channel_max = if new.rfc5766_channel_numbers {
            0x7FFE
        } else {
            0x4FFF
        };
        if new.unauth_rate_limit != self.cfg.unauth_rate_limit {
            let key = self.rng.next_u64();
            self.limiter = UnauthLimiter::new(new.unauth_rate_limit, key);
        }
        if new.max_bps != self.cfg.max_bps || !same_capacity(&self.cfg, &new) {
            self.bandwidth.set(new.max_bps, new.bps_capacity.clone());
        }
        self.cfg = new;
    }
}

fn same_capacity(a: &ServerConfig, b: &ServerConfig) -> bool {
    match (&a.bps_capacity, &b.bps_capacity) {
        (Some(x), Some(y)) => std::sync::Arc::ptr_eq(x, y),
        (None, None) => true,
        _ => false,
    }
}
