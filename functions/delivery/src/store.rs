//! Where deliveries live.
//!
//! The layout mirrors the Redis adapter's keys (documented in the function's README):
//! the delivery document, its tracking events and its notify-me requests expire together;
//! active deliveries after the active TTL (refreshed on every write), finished ones after
//! the finished TTL (7 days). The per-owner monthly index behind the summary expires after
//! the index TTL. Nothing grows without bound.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use runtime::store::{ExpiringMap, StoreError, Upsert};

use crate::model::{NotifyMeRequest, StoredDelivery, TrackingEvent};

#[async_trait]
pub trait DeliveryStore: Send + Sync + std::fmt::Debug {
    async fn get(&self, id: &str) -> Result<Option<StoredDelivery>, StoreError>;
    /// The delivery with its history, in one read where the store allows (every route
    /// needs both).
    async fn load(
        &self,
        id: &str,
    ) -> Result<Option<(StoredDelivery, Vec<TrackingEvent>)>, StoreError> {
        let Some(delivery) = self.get(id).await? else {
            return Ok(None);
        };
        Ok(Some((delivery, self.events(id).await?)))
    }
    /// Creates or replaces the document (history is kept) and records it in the owner's
    /// monthly index; `ttl` applies to every key of the delivery. Refused, in the same
    /// atomic step, when the delivery was cancelled before it existed ([`Self::tombstone`]).
    async fn put(&self, delivery: StoredDelivery, ttl: Duration) -> Result<Put, StoreError>;
    /// Records that a delivery that does not exist (yet) is cancelled, for `ttl`: a cancel
    /// can overtake its own delivery message (which failed once and is redelivered later),
    /// and that late message must not schedule a cancelled delivery. `false`, and nothing
    /// recorded, when the delivery exists after all.
    async fn tombstone(&self, id: &str, ttl: Duration) -> Result<bool, StoreError>;
    async fn events(&self, id: &str) -> Result<Vec<TrackingEvent>, StoreError>;
    /// Appends to the history and sets the TTL of every key of the delivery.
    async fn append_event(
        &self,
        id: &str,
        event: TrackingEvent,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    async fn add_notification(&self, id: &str, request: NotifyMeRequest) -> Result<(), StoreError>;
    /// Deliveries of an owner scheduled in a month (`YYYY-MM`).
    async fn count_for_owner_month(&self, owner_id: &str, month: &str) -> Result<u64, StoreError>;
    /// The remaining TTL of a delivery's document, `None` when absent.
    async fn ttl(&self, id: &str) -> Result<Option<Duration>, StoreError>;
}

/// What a [`DeliveryStore::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Stored(Upsert),
    /// Nothing: the delivery was cancelled before it was ever stored.
    Cancelled,
}

#[derive(Debug, Clone)]
struct Entry {
    delivery: StoredDelivery,
    events: Vec<TrackingEvent>,
    notifications: Vec<NotifyMeRequest>,
}

/// How long the owner index keeps a month: 13 months, so a year of summaries is answerable.
pub const OWNER_INDEX_TTL: Duration = Duration::from_secs(13 * 31 * 24 * 3600);

#[derive(Debug, Default)]
struct Maps {
    deliveries: ExpiringMap<String, Entry>,
    /// Deliveries cancelled before they existed.
    tombstones: ExpiringMap<String, ()>,
    owner_months: ExpiringMap<(String, String), HashSet<String>>,
}

/// Deliveries in memory, with the same expiry rules as the Redis layout.
#[derive(Debug, Default)]
pub struct MemoryDeliveryStore {
    maps: Mutex<Maps>,
}

impl MemoryDeliveryStore {
    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        runtime::sync::lock(&self.maps)
    }

    /// Entries held, including expired ones not yet purged (for memory-bound tests).
    pub fn held(&self) -> usize {
        let mut maps = self.maps();
        maps.deliveries.purge_expired();
        maps.deliveries.len()
    }
}

#[async_trait]
impl DeliveryStore for MemoryDeliveryStore {
    async fn get(&self, id: &str) -> Result<Option<StoredDelivery>, StoreError> {
        Ok(self.maps().deliveries.get(id).map(|e| e.delivery.clone()))
    }

    async fn put(&self, delivery: StoredDelivery, ttl: Duration) -> Result<Put, StoreError> {
        let mut maps = self.maps();
        let id = delivery.document.id.clone();
        if maps.tombstones.get(&id).is_some() {
            return Ok(Put::Cancelled);
        }
        let owner = delivery.document.owner.user_id.clone();
        let month = contracts::OwnerMonth::key_of(&delivery.scheduled_for());
        let outcome = match maps.deliveries.get_mut(&id) {
            Some(entry) => {
                entry.delivery = delivery;
                Upsert::Updated
            }
            None => {
                maps.deliveries.insert(
                    id.clone(),
                    Entry {
                        delivery,
                        events: Vec::new(),
                        notifications: Vec::new(),
                    },
                );
                Upsert::Created
            }
        };
        maps.deliveries.expire(&id, ttl);
        let key = (owner, month);
        match maps.owner_months.get_mut(&key) {
            Some(ids) => {
                ids.insert(id);
            }
            None => {
                maps.owner_months.insert(key.clone(), HashSet::from([id]));
            }
        }
        maps.owner_months.expire(&key, OWNER_INDEX_TTL);
        Ok(Put::Stored(outcome))
    }

    async fn tombstone(&self, id: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut maps = self.maps();
        if maps.deliveries.get(id).is_some() {
            return Ok(false);
        }
        maps.tombstones.insert(id.to_owned(), ());
        maps.tombstones.expire(id, ttl);
        Ok(true)
    }

    async fn events(&self, id: &str) -> Result<Vec<TrackingEvent>, StoreError> {
        Ok(self
            .maps()
            .deliveries
            .get(id)
            .map(|e| e.events.clone())
            .unwrap_or_default())
    }

    async fn append_event(
        &self,
        id: &str,
        event: TrackingEvent,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut maps = self.maps();
        if let Some(entry) = maps.deliveries.get_mut(id) {
            entry.events.push(event);
            maps.deliveries.expire(id, ttl);
        }
        Ok(())
    }

    async fn add_notification(&self, id: &str, request: NotifyMeRequest) -> Result<(), StoreError> {
        if let Some(entry) = self.maps().deliveries.get_mut(id) {
            entry.notifications.push(request);
        }
        Ok(())
    }

    async fn count_for_owner_month(&self, owner_id: &str, month: &str) -> Result<u64, StoreError> {
        let key = (owner_id.to_owned(), month.to_owned());
        Ok(self
            .maps()
            .owner_months
            .get(&key)
            .map_or(0, |ids| ids.len() as u64))
    }

    async fn ttl(&self, id: &str) -> Result<Option<Duration>, StoreError> {
        Ok(self.maps().deliveries.ttl(id).flatten())
    }
}
