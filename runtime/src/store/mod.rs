//! What every store adapter shares: its error classification and the in-memory building
//! block the embedded stores are made of.
//!
//! Each function owns its data and declares its own store trait (delivery, package,
//! dronescheduler); adapters for Redis and MongoDB implement those traits, and the embedded
//! defaults below keep a local run free of servers.

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

use crate::cause::Cause;

#[cfg(feature = "mongodb")]
pub mod mongo;
#[cfg(feature = "redis")]
pub mod redis;

/// A store failure, classified for the callers (HTTP status or queue settlement), with the
/// store's own error, when there is one, as its source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or timed out; retry later.
    #[error("store unavailable: {detail}")]
    Unavailable {
        detail: String,
        #[source]
        cause: Option<Cause>,
    },
    /// The store asks the caller to slow down (Cosmos DB 16500 / HTTP 429).
    #[error("store throttled the request")]
    Throttled { retry_after: Duration },
    /// A write collided with another (duplicate key, lost race).
    #[error("conflict: {detail}")]
    Conflict {
        detail: String,
        #[source]
        cause: Option<Cause>,
    },
    /// Stored data could not be decoded.
    #[error("corrupt record: {detail}")]
    Corrupt {
        detail: String,
        #[source]
        cause: Option<Cause>,
    },
    /// The store refused the operation for a reason retrying cannot fix (a bug or a
    /// misconfiguration, such as an unknown command or a missing permission).
    #[error("the store rejected the operation: {detail}")]
    Rejected {
        detail: String,
        #[source]
        cause: Option<Cause>,
    },
}

impl StoreError {
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::Unavailable {
            detail: detail.into(),
            cause: None,
        }
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict {
            detail: detail.into(),
            cause: None,
        }
    }

    pub fn corrupt(detail: impl Into<String>) -> Self {
        Self::Corrupt {
            detail: detail.into(),
            cause: None,
        }
    }

    pub fn rejected(detail: impl Into<String>) -> Self {
        Self::Rejected {
            detail: detail.into(),
            cause: None,
        }
    }

    /// The same classification, with the store's own error kept as its source.
    pub fn caused_by(mut self, error: impl std::error::Error + Send + Sync + 'static) -> Self {
        if let Self::Unavailable { cause, .. }
        | Self::Conflict { cause, .. }
        | Self::Corrupt { cause, .. }
        | Self::Rejected { cause, .. } = &mut self
        {
            *cause = Some(Cause::new(error));
        }
        self
    }

    /// Whether trying again later can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Throttled { .. })
    }
}

/// Runs a change of several store writes to its end even when its caller goes away.
///
/// A handler future is dropped when its caller disconnects or times out; dropped between two
/// writes that belong together (a drone's claim and the assignment that owns it), it would
/// leave half a change behind. Spawned, the change finishes while the process lives; what a
/// killed process leaves must still be repairable by the next attempt. A panic in the change
/// goes on unwinding in the caller, where the host's panic layer answers it.
pub async fn to_completion<T, E>(
    change: impl Future<Output = Result<T, E>> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    match tokio::spawn(change).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(StoreError::unavailable("the process is shutting down").into()),
    }
}

/// Whether a write made a new record or replaced an existing one (201 vs 204).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    Created,
    Updated,
}

/// A map whose entries may carry a time to live, so embedded stores stay bounded the same
/// way their Redis counterparts do. Expired entries are invisible at once and purged as
/// writes go by, oldest first.
#[derive(Debug)]
pub struct ExpiringMap<K, V> {
    entries: HashMap<K, (V, Option<Instant>)>,
    deadlines: BTreeSet<(Instant, K)>,
}

impl<K, V> Default for ExpiringMap<K, V> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            deadlines: BTreeSet::new(),
        }
    }
}

impl<K: Hash + Eq + Ord + Clone, V> ExpiringMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    fn live(&self, deadline: Option<Instant>) -> bool {
        deadline.is_none_or(|d| d > Instant::now())
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.entries.get(key) {
            Some((v, d)) if self.live(*d) => Some(v),
            _ => None,
        }
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = Instant::now();
        match self.entries.get_mut(key) {
            Some((v, d)) if d.is_none_or(|d| d > now) => Some(v),
            _ => None,
        }
    }

    /// Inserts without a time to live (clearing any earlier one); returns whether the key
    /// was new.
    pub fn insert(&mut self, key: K, value: V) -> bool {
        self.purge_expired();
        let old = self.entries.insert(key.clone(), (value, None));
        match old {
            Some((_, Some(d))) => {
                let live = d > Instant::now();
                self.deadlines.remove(&(d, key));
                !live
            }
            Some((_, None)) => false,
            None => true,
        }
    }

    /// Sets the time to live of an existing key; returns false when there is none.
    pub fn expire<Q>(&mut self, key: &Q, ttl: Duration) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = Instant::now();
        let Some((k, (_, deadline))) = self.entries.get_key_value(key) else {
            return false;
        };
        if deadline.is_some_and(|d| d <= now) {
            return false;
        }
        let k = k.clone();
        if let Some(old) = *deadline {
            self.deadlines.remove(&(old, k.clone()));
        }
        let new = now + ttl;
        self.deadlines.insert((new, k.clone()));
        if let Some(entry) = self.entries.get_mut(k.borrow()) {
            entry.1 = Some(new);
        }
        true
    }

    /// The remaining time to live: `None` when the key is absent, `Some(None)` when it never
    /// expires.
    pub fn ttl<Q>(&self, key: &Q) -> Option<Option<Duration>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = Instant::now();
        match self.entries.get(key) {
            Some((_, None)) => Some(None),
            Some((_, Some(d))) if *d > now => Some(Some(*d - now)),
            _ => None,
        }
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (k, (v, d)) = self.entries.remove_entry(key)?;
        if let Some(d) = d {
            self.deadlines.remove(&(d, k));
            if d <= Instant::now() {
                return None;
            }
        }
        Some(v)
    }

    /// Drops every entry whose time is up.
    pub fn purge_expired(&mut self) {
        let now = Instant::now();
        while let Some((d, _)) = self.deadlines.first() {
            if *d > now {
                break;
            }
            if let Some((_, k)) = self.deadlines.pop_first() {
                self.entries.remove(&k);
            }
        }
    }

    /// Drops the entries closest to expiry until at most `max` are held (a size cap on top
    /// of the TTL).
    pub fn evict_to(&mut self, max: usize) {
        self.purge_expired();
        while self.entries.len() > max {
            match self.deadlines.pop_first() {
                Some((_, k)) => {
                    self.entries.remove(&k);
                }
                None => break,
            }
        }
    }

    /// Entries held, expired ones not yet purged included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Live entries.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        let now = Instant::now();
        self.entries
            .iter()
            .filter(move |(_, (_, d))| d.is_none_or(|d| d > now))
            .map(|(k, (v, _))| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_vanish_after_their_ttl_and_are_purged() {
        let mut m = ExpiringMap::new();
        assert!(m.insert("a".to_owned(), 1));
        assert!(m.insert("b".to_owned(), 2));
        assert!(m.expire("a", Duration::from_secs(10)));
        assert_eq!(m.ttl("a"), Some(Some(Duration::from_secs(10))));
        assert_eq!(m.ttl("b"), Some(None));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(m.get("a"), None);
        assert_eq!(m.get("b"), Some(&2));
        m.insert("c".to_owned(), 3);
        assert_eq!(m.len(), 2, "the expired entry is purged on the next write");
    }

    #[tokio::test(start_paused = true)]
    async fn reinsert_clears_the_ttl() {
        let mut m = ExpiringMap::new();
        m.insert(1, "x");
        m.expire(&1, Duration::from_secs(1));
        assert!(!m.insert(1, "y"));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(m.get(&1), Some(&"y"));
    }

    #[test]
    fn transient_errors_are_classified() {
        assert!(StoreError::unavailable("down").is_transient());
        assert!(!StoreError::conflict("dup").is_transient());
    }
}
