//! Connection limits: the `[ingest]` and `[http]` config sections, the limits in force (the
//! configured ones capped by the process's file-descriptor limit), the slots a tag connection
//! holds (unauthenticated until its hello is accepted) and the per-tag connection registry.
//!
//! Why: every connection costs a file descriptor. Without bounds, idle or never-authenticating
//! connections exhaust the descriptors and then nothing — not the log, not the HTTP API, not an
//! honest tag — can open one. The limits leave [`IngestConfig::reserved_fds`] descriptors for the
//! log, databases and files, give HTTP what it is configured for but at most a quarter of the
//! rest, tag connections everything else, and let unauthenticated connections use at most half of
//! the tag connections. (A fixed three-quarter share capped a 20,000-descriptor process at 14,904
//! tags while HTTP's 1,024 left 4,000 descriptors unused.)

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `[ingest]`: tag connections under load or attack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// A connection that has not sent an accepted hello within this time is closed.
    pub hello_timeout_ms: u64,
    /// An authenticated connection that receives nothing (and has nothing waiting for the log)
    /// for this long is closed; 0 = never. Generous: tags hang up between uploads themselves.
    pub idle_timeout_ms: u64,
    /// Most connections at once that have not yet been authenticated; more are refused with
    /// `server_busy` (also capped at half of the tag connections in force).
    pub max_unauthenticated: usize,
    /// Most tag connections at once, authenticated or not (also capped by the fd limit).
    pub max_connections: usize,
    /// Most authenticated connections of one tag. A new one beyond it closes the tag's oldest
    /// (with `superseded`): a tag that reconnects after losing its link must not be locked out by
    /// its own half-open connection, which the server may not yet know is dead.
    pub max_connections_per_tag: usize,
    /// File descriptors kept free for the log, databases, files and transient use; the
    /// connection limits are capped to fit in the rest of `RLIMIT_NOFILE`.
    pub reserved_fds: usize,
    /// TLS on the tag port (`[ingest.tls]`); absent: plain TCP.
    pub tls: Option<crate::tls::IngestTlsConfig>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            hello_timeout_ms: 10_000,
            idle_timeout_ms: 30 * 60 * 1000,
            max_unauthenticated: 1024,
            max_connections: 50_000,
            max_connections_per_tag: 2,
            reserved_fds: 128,
            tls: None,
        }
    }
}

/// `[http]`: the HTTP listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Most HTTP connections at once (also capped by the fd limit); further connections wait
    /// in the listen queue until one closes.
    pub max_connections: usize,
    /// An HTTP connection with no bytes read or written for this long is closed; 0 = never.
    /// (Server-sent event streams send keep-alive comments, so they stay open.)
    pub idle_timeout_ms: u64,
    /// HTTPS on the API (`[http.tls]`); absent: plain HTTP.
    pub tls: Option<crate::tls::HttpTlsConfig>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            idle_timeout_ms: 5 * 60 * 1000,
            tls: None,
        }
    }
}

/// The limits in force: the configured ones, capped to the file-descriptor limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EffectiveLimits {
    /// The soft `RLIMIT_NOFILE` the caps were derived from (`None`: unlimited or unknown).
    pub fd_limit: Option<u64>,
    pub max_connections: usize,
    pub max_unauthenticated: usize,
    pub max_connections_per_tag: usize,
    pub http_max_connections: usize,
}

impl EffectiveLimits {
    /// Caps the configured limits to `fd_limit` (see the module doc).
    pub fn compute(ingest: &IngestConfig, http: &HttpConfig, fd_limit: Option<u64>) -> Self {
        let (mut max_connections, mut http_max) = (ingest.max_connections, http.max_connections);
        if let Some(limit) = fd_limit {
            let available = usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .saturating_sub(ingest.reserved_fds);
            http_max = http_max.min(available / 4);
            max_connections = max_connections.min(available - http_max);
        }
        let max_connections = max_connections.max(2);
        Self {
            fd_limit,
            max_connections,
            max_unauthenticated: ingest.max_unauthenticated.min(max_connections / 2).max(1),
            max_connections_per_tag: ingest.max_connections_per_tag.max(1),
            http_max_connections: http_max.max(1),
        }
    }

    /// [`compute`](Self::compute) with this process's soft `RLIMIT_NOFILE`.
    pub fn for_this_process(ingest: &IngestConfig, http: &HttpConfig) -> Self {
        Self::compute(ingest, http, soft_fd_limit())
    }
}

/// The soft `RLIMIT_NOFILE` of this process; `None` if unlimited or unreadable.
pub fn soft_fd_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through a valid pointer.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Converts a config value in milliseconds (0 = never) to a duration.
pub fn optional_ms(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts of open tag connections, and the per-tag registry.
pub struct ConnectionSlots {
    limits: EffectiveLimits,
    unauthenticated: AtomicUsize,
    authenticated: AtomicUsize,
    next_id: AtomicU64,
    /// Per tag: its authenticated connections, oldest first, with the token that closes each.
    by_tag: Mutex<HashMap<String, VecDeque<(u64, CancellationToken)>>>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many connections are waiting for their hello.
    Unauthenticated,
    /// Too many tag connections altogether.
    Total,
}

impl ConnectionSlots {
    pub fn new(limits: EffectiveLimits) -> Self {
        Self {
            limits,
            unauthenticated: AtomicUsize::new(0),
            authenticated: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            by_tag: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> EffectiveLimits {
        self.limits
    }

    /// Connections open now that have not been authenticated.
    pub fn unauthenticated(&self) -> usize {
        self.unauthenticated.load(Ordering::Relaxed)
    }

    /// Authenticated connections open now.
    pub fn authenticated(&self) -> usize {
        self.authenticated.load(Ordering::Relaxed)
    }

    /// Takes an unauthenticated slot for a new connection, if the limits allow.
    pub fn try_admit(self: &Arc<Self>) -> Result<ConnectionSlot, Refusal> {
        let total = self.unauthenticated() + self.authenticated();
        if total >= self.limits.max_connections {
            return Err(Refusal::Total);
        }
        let admitted =
            self.unauthenticated
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < self.limits.max_unauthenticated).then_some(n + 1)
                });
        match admitted {
            Ok(_) => Ok(ConnectionSlot {
                slots: Arc::clone(self),
                state: SlotState::Unauthenticated,
            }),
            Err(_) => Err(Refusal::Unauthenticated),
        }
    }
}

enum SlotState {
    Unauthenticated,
    Authenticated { tag: String, id: u64 },
}

/// The slot one tag connection holds; given back when dropped.
pub struct ConnectionSlot {
    slots: Arc<ConnectionSlots>,
    state: SlotState,
}

impl ConnectionSlot {
    /// Moves the slot to the authenticated connections of `tag` and returns the token that is
    /// cancelled when a newer connection of the tag supersedes this one. If the tag now has
    /// more than its limit of connections, its oldest is cancelled; returns how many were.
    pub fn authenticate(&mut self, tag: &str) -> (CancellationToken, usize) {
        let token = CancellationToken::new();
        let id = self.slots.next_id.fetch_add(1, Ordering::Relaxed);
        let mut superseded = 0;
        {
            let mut by_tag = lock(&self.slots.by_tag);
            let list = by_tag.entry(tag.to_owned()).or_default();
            list.push_back((id, token.clone()));
            while list.len() > self.slots.limits.max_connections_per_tag {
                if let Some((_, oldest)) = list.pop_front() {
                    oldest.cancel();
                    superseded += 1;
                }
            }
        }
        if matches!(self.state, SlotState::Unauthenticated) {
            self.slots.unauthenticated.fetch_sub(1, Ordering::AcqRel);
            self.slots.authenticated.fetch_add(1, Ordering::AcqRel);
        }
        self.state = SlotState::Authenticated {
            tag: tag.to_owned(),
            id,
        };
        (token, superseded)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        match &self.state {
            SlotState::Unauthenticated => {
                self.slots.unauthenticated.fetch_sub(1, Ordering::AcqRel);
            }
            SlotState::Authenticated { tag, id } => {
                self.slots.authenticated.fetch_sub(1, Ordering::AcqRel);
                let mut by_tag = lock(&self.slots.by_tag);
                if let Some(list) = by_tag.get_mut(tag) {
                    list.retain(|(other, _)| other != id);
                    if list.is_empty() {
                        by_tag.remove(tag);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_capped_by_the_fd_limit() {
        let ingest = IngestConfig::default();
        let http = HttpConfig::default();
        let l = EffectiveLimits::compute(&ingest, &http, Some(256));
        // 256 - 128 reserved = 128: 96 tag connections (48 unauthenticated), 32 HTTP.
        assert_eq!(
            (
                l.max_connections,
                l.max_unauthenticated,
                l.http_max_connections
            ),
            (96, 48, 32)
        );
        let unlimited = EffectiveLimits::compute(&ingest, &http, None);
        assert_eq!(unlimited.max_connections, ingest.max_connections);
        assert_eq!(unlimited.max_unauthenticated, ingest.max_unauthenticated);
        // This machine's 20,000: HTTP keeps its 1,024, tags get the other 18,848 (15,000 fit).
        let here = EffectiveLimits::compute(&ingest, &http, Some(20_000));
        assert_eq!(
            (here.max_connections, here.http_max_connections),
            (18_848, 1_024)
        );
        let tiny = EffectiveLimits::compute(&ingest, &http, Some(10));
        assert!(tiny.max_connections >= 2 && tiny.max_unauthenticated >= 1);
    }

    #[test]
    fn slots_bound_unauthenticated_and_per_tag_connections() {
        let limits = EffectiveLimits {
            fd_limit: None,
            max_connections: 4,
            max_unauthenticated: 2,
            max_connections_per_tag: 1,
            http_max_connections: 1,
        };
        let slots = Arc::new(ConnectionSlots::new(limits));
        let mut a = slots.try_admit().unwrap();
        let mut b = slots.try_admit().unwrap();
        assert_eq!(slots.try_admit().err(), Some(Refusal::Unauthenticated));
        let (token_a, superseded) = a.authenticate("T1");
        assert_eq!(superseded, 0);
        assert_eq!((slots.unauthenticated(), slots.authenticated()), (1, 1));
        let (token_b, superseded) = b.authenticate("T1");
        assert_eq!(superseded, 1);
        assert!(token_a.is_cancelled() && !token_b.is_cancelled());
        let c = slots.try_admit().unwrap();
        let d = slots.try_admit().unwrap();
        assert_eq!(slots.try_admit().err(), Some(Refusal::Total));
        drop((a, c, d));
        assert_eq!((slots.unauthenticated(), slots.authenticated()), (0, 1));
        drop(b);
        assert_eq!(slots.authenticated(), 0);
        assert!(lock(&slots.by_tag).is_empty());
    }
}
