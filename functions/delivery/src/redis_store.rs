//! The Redis adapter of the delivery store, in the layout the README documents.
//!
//! Keys (after `REDIS_KEY_PREFIX`; the braces are literal Redis hash tags, so a delivery's
//! keys would share a slot on a clustered cache):
//! - `delivery:{id}`: the delivery JSON (a string): the document as the API answers it, and
//!   `createdAt`;
//! - `delivery:{id}:events`: its tracking events, oldest first (a list of JSON);
//! - `delivery:{id}:notify`: its notify-me requests (a list of JSON);
//! - `delivery:{id}:cancelled`: a delivery cancelled before it existed (a tombstone, kept
//!   the finished TTL), which refuses a later PUT;
//! - `owner:{ownerId}:deliveries:{YYYY-MM}`: ids scheduled in that month (a set).
//!
//! Every write that touches a delivery sets the TTL of all its keys in the same atomic
//! script, so no key of a delivery outlives the others and none is left without a TTL.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use runtime::secrets::SecretWatch;
use runtime::store::redis::{RedisSettings, failed};
use runtime::store::{StoreError, Upsert};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{NotifyMeRequest, StoredDelivery, TrackingEvent};
use crate::store::{DeliveryStore, OWNER_INDEX_TTL, Put};

/// Stores the document, says whether it existed, refreshes every key's TTL and records the
/// delivery in its owner's monthly index; refuses (-1) a delivery with a tombstone.
/// KEYS: document, events, notify, owner index, tombstone. ARGV: JSON, TTL ms, id, index
/// TTL ms.
static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('EXISTS', KEYS[5]) == 1 then return -1 end
        local existed = redis.call('EXISTS', KEYS[1])
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        redis.call('PEXPIRE', KEYS[2], ARGV[2])
        redis.call('PEXPIRE', KEYS[3], ARGV[2])
        redis.call('SADD', KEYS[4], ARGV[3])
        redis.call('PEXPIRE', KEYS[4], ARGV[4])
        return existed
        ",
    )
});

/// Marks a delivery that does not exist as cancelled; 0 when it exists after all.
/// KEYS: document, tombstone. ARGV: TTL ms.
static TOMBSTONE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
        redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
        return 1
        ",
    )
});

/// Appends an event to a delivery that exists and sets the TTL of all its keys.
/// KEYS: document, events, notify. ARGV: event JSON, TTL ms.
static APPEND_EVENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
        redis.call('RPUSH', KEYS[2], ARGV[1])
        for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
        return 1
        ",
    )
});

/// Appends a notify-me request to a delivery that exists, expiring with the document.
/// KEYS: document, notify. ARGV: request JSON.
static ADD_NOTIFICATION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local ttl = redis.call('PTTL', KEYS[1])
        if ttl == -2 then return 0 end
        redis.call('RPUSH', KEYS[2], ARGV[1])
        if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
        return 1
        ",
    )
});

/// Deliveries in Redis.
#[derive(Clone)]
pub struct RedisDeliveryStore {
    connection: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisDeliveryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDeliveryStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisDeliveryStore {
    /// Connects lazily: the first call connects, and later calls reconnect after an outage.
    /// With `access_key`, connections sign in with it and follow its rotations.
    pub fn new(
        settings: &RedisSettings,
        access_key: Option<SecretWatch>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            connection: settings.connect(access_key)?,
            prefix: settings.key_prefix.clone(),
        })
    }

    fn document_key(&self, id: &str) -> String {
        format!("{}delivery:{{{id}}}", self.prefix)
    }

    fn events_key(&self, id: &str) -> String {
        format!("{}delivery:{{{id}}}:events", self.prefix)
    }

    fn notify_key(&self, id: &str) -> String {
        format!("{}delivery:{{{id}}}:notify", self.prefix)
    }

    fn tombstone_key(&self, id: &str) -> String {
        format!("{}delivery:{{{id}}}:cancelled", self.prefix)
    }

    fn owner_index_key(&self, owner_id: &str, month: &str) -> String {
        format!("{}owner:{{{owner_id}}}:deliveries:{month}", self.prefix)
    }

    fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }
}

fn encode(value: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::rejected(e.to_string()))
}

fn decode<T: DeserializeOwned>(key: &str, raw: &str) -> Result<T, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::corrupt(format!("{key}: {e}")))
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl DeliveryStore for RedisDeliveryStore {
    async fn get(&self, id: &str) -> Result<Option<StoredDelivery>, StoreError> {
        let key = self.document_key(id);
        let raw: Option<String> = self.connection().get(&key).await.map_err(failed)?;
        raw.map(|raw| decode(&key, &raw)).transpose()
    }

    async fn load(
        &self,
        id: &str,
    ) -> Result<Option<(StoredDelivery, Vec<TrackingEvent>)>, StoreError> {
        // One round trip for the document and its events.
        let (document_key, events_key) = (self.document_key(id), self.events_key(id));
        let (raw, events): (Option<String>, Vec<String>) = redis::pipe()
            .get(&document_key)
            .lrange(&events_key, 0, -1)
            .query_async(&mut self.connection())
            .await
            .map_err(failed)?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        let events = events
            .iter()
            .map(|raw| decode(&events_key, raw))
            .collect::<Result<_, _>>()?;
        Ok(Some((decode(&document_key, &raw)?, events)))
    }

    async fn put(&self, delivery: StoredDelivery, ttl: Duration) -> Result<Put, StoreError> {
        let id = &delivery.document.id;
        let month = contracts::OwnerMonth::key_of(&delivery.scheduled_for());
        let outcome: i64 = PUT
            .key(self.document_key(id))
            .key(self.events_key(id))
            .key(self.notify_key(id))
            .key(self.owner_index_key(&delivery.document.owner.user_id, &month))
            .key(self.tombstone_key(id))
            .arg(encode(&delivery)?)
            .arg(millis(ttl))
            .arg(id)
            .arg(millis(OWNER_INDEX_TTL))
            .invoke_async(&mut self.connection())
            .await
            .map_err(failed)?;
        Ok(match outcome {
            -1 => Put::Cancelled,
            0 => Put::Stored(Upsert::Created),
            _ => Put::Stored(Upsert::Updated),
        })
    }

    async fn tombstone(&self, id: &str, ttl: Duration) -> Result<bool, StoreError> {
        TOMBSTONE
            .key(self.document_key(id))
            .key(self.tombstone_key(id))
            .arg(millis(ttl))
            .invoke_async(&mut self.connection())
            .await
            .map_err(failed)
    }

    async fn events(&self, id: &str) -> Result<Vec<TrackingEvent>, StoreError> {
        let key = self.events_key(id);
        let raw: Vec<String> = self
            .connection()
            .lrange(&key, 0, -1)
            .await
            .map_err(failed)?;
        raw.iter().map(|raw| decode(&key, raw)).collect()
    }

    async fn append_event(
        &self,
        id: &str,
        event: TrackingEvent,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let _appended: bool = APPEND_EVENT
            .key(self.document_key(id))
            .key(self.events_key(id))
            .key(self.notify_key(id))
            .arg(encode(&event)?)
            .arg(millis(ttl))
            .invoke_async(&mut self.connection())
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn add_notification(&self, id: &str, request: NotifyMeRequest) -> Result<(), StoreError> {
        let _added: bool = ADD_NOTIFICATION
            .key(self.document_key(id))
            .key(self.notify_key(id))
            .arg(encode(&request)?)
            .invoke_async(&mut self.connection())
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn count_for_owner_month(&self, owner_id: &str, month: &str) -> Result<u64, StoreError> {
        self.connection()
            .scard(self.owner_index_key(owner_id, month))
            .await
            .map_err(failed)
    }

    async fn ttl(&self, id: &str) -> Result<Option<Duration>, StoreError> {
        let ms: i64 = self
            .connection()
            .pttl(self.document_key(id))
            .await
            .map_err(failed)?;
        // -2: no such key; -1: a key without expiry (which this layout never writes).
        Ok(u64::try_from(ms).ok().map(Duration::from_millis))
    }
}
