//! The Engine.IO handshake gate. Every Engine.IO session costs memory (about 15 KB) from its
//! handshake until it closes or, when no namespace is joined, until the connect timeout: a
//! flood of handshakes without a session once took the aggregator from 127 to 423 MiB. So a
//! handshake (a `/socket.io/` request without `sid`, polling or WebSocket) is answered before
//! socketioxide sees it:
//!
//! - without a live session, and the dashboard not public: 401, nothing allocated;
//! - an anonymous visitor of a public dashboard: admitted while its address holds fewer than
//!   `public_max_sockets_per_address` sessions (else 429) and all anonymous visitors fewer than
//!   `public_max_sockets` (else 503);
//! - a logged-in user: admitted (the connection limits bound them).
//!
//! An admitted anonymous handshake carries a [`Lease`] in its request's extensions.
//! engineioxide keeps the handshake's request parts (extensions included) in its session for
//! the session's whole life and drops them with it, so the lease is given back exactly when
//! the session ends, however it ends (closed, timed out, never joined, refused later).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::Uri;

/// Anonymous Engine.IO sessions held now, per address and in all.
#[derive(Debug)]
pub struct Handshakes {
    /// `{base}/socket.io`: the path socketioxide serves.
    path: String,
    per_address: usize,
    total: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    per: HashMap<IpAddr, usize>,
}

/// Why a handshake was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    /// This address holds its share.
    #[error(
        "too many open dashboard connections from {ip} ({limit}, \
         server.auth.public_max_sockets_per_address): close a tab or try again later"
    )]
    Address {
        /// The client.
        ip: IpAddr,
        /// Its share.
        limit: usize,
    },
    /// Anonymous visitors hold every session allowed.
    #[error(
        "the public dashboard has as many anonymous visitors as it serves ({limit}, \
         server.auth.public_max_sockets): try again later, or log in"
    )]
    Total {
        /// The limit.
        limit: usize,
    },
}

/// One anonymous session's place; given back when the last clone is dropped.
#[derive(Debug)]
pub struct Lease {
    gate: Arc<Handshakes>,
    ip: IpAddr,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut h = self.gate.lock();
        h.total = h.total.saturating_sub(1);
        if let Some(n) = h.per.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                h.per.remove(&self.ip);
            }
        }
    }
}

impl Handshakes {
    /// A gate for the Socket.IO path under `base` (`""` or `/smon`), with these limits for
    /// anonymous visitors.
    pub fn new(base: &str, per_address: usize, total: usize) -> Arc<Self> {
        Arc::new(Self {
            path: format!("{base}/socket.io"),
            per_address,
            total,
            held: Mutex::new(Held::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        // A poisoned lock only means a panic elsewhere mid-update of a counter; keep serving.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `uri` opens an Engine.IO session: socketioxide's path (or below it, as
    /// socketioxide matches), without a `sid` in the query.
    pub fn is_handshake(&self, uri: &Uri) -> bool {
        let under = uri
            .path()
            .strip_prefix(&self.path)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        under
            && !uri
                .query()
                .unwrap_or("")
                .split('&')
                .any(|kv| kv.split('=').next() == Some("sid"))
    }

    /// Takes a place for an anonymous session from `ip`, or says why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Arc<Lease>, Full> {
        let mut h = self.lock();
        let mine = h.per.get(&ip).copied().unwrap_or(0);
        if mine >= self.per_address {
            return Err(Full::Address {
                ip,
                limit: self.per_address,
            });
        }
        if h.total >= self.total {
            return Err(Full::Total { limit: self.total });
        }
        h.total += 1;
        *h.per.entry(ip).or_insert(0) += 1;
        Ok(Arc::new(Lease {
            gate: self.clone(),
            ip,
        }))
    }

    /// Anonymous sessions held now, in all.
    pub fn held(&self) -> usize {
        self.lock().total
    }

    /// Anonymous sessions held now by `ip`.
    pub fn held_by(&self, ip: IpAddr) -> usize {
        self.lock().per.get(&ip).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().expect("uri")
    }

    #[test]
    fn handshakes_are_requests_without_a_session_id() {
        let g = Handshakes::new("/smon", 2, 3);
        assert!(g.is_handshake(&uri("/smon/socket.io/?EIO=4&transport=polling")));
        assert!(g.is_handshake(&uri("/smon/socket.io/?EIO=4&transport=websocket")));
        assert!(g.is_handshake(&uri("/smon/socket.io?EIO=4&transport=polling&t=x")));
        assert!(g.is_handshake(&uri("/smon/socket.io/")));
        assert!(!g.is_handshake(&uri("/smon/socket.io/?EIO=4&transport=polling&sid=abc")));
        assert!(!g.is_handshake(&uri("/smon/socket.io/?sid=abc&EIO=4&transport=websocket")));
        assert!(!g.is_handshake(&uri("/smon/socket.iox/?EIO=4")));
        assert!(!g.is_handshake(&uri("/socket.io/?EIO=4&transport=polling")));
        assert!(!g.is_handshake(&uri("/smon/api/v1/hosts")));
        // A parameter that merely contains "sid" is no session id.
        assert!(g.is_handshake(&uri("/smon/socket.io/?EIO=4&xsid=1&sidx=2")));
    }

    #[test]
    fn places_are_bounded_per_address_and_in_all_and_given_back() {
        let g = Handshakes::new("", 2, 3);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let c: IpAddr = "192.0.2.3".parse().expect("ip");
        let a1 = g.admit(a).expect("a1");
        let a2 = g.admit(a).expect("a2");
        assert_eq!(g.admit(a).err(), Some(Full::Address { ip: a, limit: 2 }));
        let b1 = g.admit(b).expect("b1");
        assert_eq!(g.admit(c).err(), Some(Full::Total { limit: 3 }));
        assert_eq!((g.held(), g.held_by(a)), (3, 2));
        // A clone (the parts engineioxide keeps) holds the place until the last one goes.
        let a1_clone = a1.clone();
        drop(a1);
        assert_eq!(g.held(), 3);
        drop(a1_clone);
        assert_eq!((g.held(), g.held_by(a)), (2, 1));
        let c1 = g.admit(c).expect("c1 after a place was given back");
        drop((a2, b1, c1));
        assert_eq!(g.held(), 0);
        assert_eq!(g.lock().per.len(), 0, "no entry is left behind");
    }
}
