//! `Idempotency-Key`: the same key gives the same answer and enqueues once.
//!
//! Three layers make that hold: the delivery id is derived from the key (UUIDv5), so every
//! replica and every restart agrees on it; the message id is the key, so the broker's
//! duplicate detection drops a second enqueue; and this cache makes concurrent retries on
//! one replica wait for the first and replay its answer without sending again. A key reused
//! with a different body is refused (422), as the IETF Idempotency-Key draft asks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use runtime::store::ExpiringMap;
use tokio::sync::OnceCell;
use uuid::Uuid;

/// Namespace for delivery ids derived from idempotency keys.
const DELIVERY_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_6a3e_92c4_4f0e_9d4a_0c1e_5f7b_2a10);

/// The delivery id an idempotency key stands for.
pub fn delivery_id_for_key(key: &str) -> String {
    Uuid::new_v5(&DELIVERY_ID_NAMESPACE, key.as_bytes()).to_string()
}

/// A finished answer, replayed for retries.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The request it answered (operation, path and canonical body).
    pub fingerprint: String,
    pub status: u16,
    pub body: serde_json::Value,
    pub location: Option<String>,
}

type Slot = Arc<OnceCell<Recorded>>;

/// Answers by key, for a while.
#[derive(Debug)]
pub struct IdempotencyCache {
    slots: Mutex<ExpiringMap<String, Slot>>,
    ttl: Duration,
    max_keys: usize,
}

impl IdempotencyCache {
    pub fn new(ttl: Duration, max_keys: usize) -> Self {
        Self {
            slots: Mutex::new(ExpiringMap::new()),
            ttl,
            max_keys,
        }
    }

    /// The slot for `key`; the first caller fills it, later ones wait and read.
    pub fn slot(&self, key: &str) -> Slot {
        let mut slots = runtime::sync::lock(&self.slots);
        if let Some(slot) = slots.get(key) {
            return slot.clone();
        }
        let slot = Slot::default();
        slots.insert(key.to_owned(), slot.clone());
        slots.expire(key, self.ttl);
        slots.evict_to(self.max_keys);
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_gives_the_same_delivery_id() {
        assert_eq!(delivery_id_for_key("k1"), delivery_id_for_key("k1"));
        assert_ne!(delivery_id_for_key("k1"), delivery_id_for_key("k2"));
    }

    #[test]
    fn the_cache_is_bounded() {
        let c = IdempotencyCache::new(Duration::from_secs(60), 2);
        let a = c.slot("a");
        c.slot("b");
        c.slot("c");
        assert!(!Arc::ptr_eq(&a, &c.slot("a")), "the oldest key was evicted");
    }
}
