//! The MongoDB adapter of the package store (Azure Cosmos DB for MongoDB in production).
//!
//! Collection `packages` in the function's own database; `_id` is the package id, and an
//! index on `ownerId` serves the weight summary.

use async_trait::async_trait;
use mongodb::Collection;
use mongodb::bson::{Document, doc};
use runtime::store::mongo::{MongoDatabase, ensure_index, failed};
use runtime::store::{StoreError, Upsert};
use serde::{Deserialize, Serialize};

use crate::store::PackageStore;
use crate::{PackagePatch, PackageRecord};

/// A package as stored: the record, keyed by its id.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PackageDoc {
    #[serde(rename = "_id")]
    id: String,
    #[serde(flatten)]
    record: PackageRecord,
}

impl From<PackageRecord> for PackageDoc {
    fn from(record: PackageRecord) -> Self {
        Self {
            id: record.id.clone(),
            record,
        }
    }
}

/// Packages in MongoDB.
#[derive(Debug, Clone)]
pub struct MongoPackageStore {
    database: MongoDatabase,
}

impl MongoPackageStore {
    /// Opens the collection and creates its index (a no-op when it exists).
    pub async fn open(database: MongoDatabase) -> Result<Self, StoreError> {
        let store = Self { database };
        ensure_index(&store.packages(), doc! {"ownerId": 1}, "ownerId").await?;
        Ok(store)
    }

    /// The collection, on the client the current connection string made.
    fn packages(&self) -> Collection<PackageDoc> {
        self.database.collection("packages")
    }

    async fn replace(&self, record: &PackageDoc) -> Result<Upsert, StoreError> {
        let result = self
            .packages()
            .replace_one(doc! {"_id": &record.id}, record)
            .upsert(true)
            .await
            .map_err(failed)?;
        Ok(if result.upserted_id.is_some() {
            Upsert::Created
        } else {
            Upsert::Updated
        })
    }
}

#[async_trait]
impl PackageStore for MongoPackageStore {
    async fn get(&self, id: &str) -> Result<Option<PackageRecord>, StoreError> {
        let found = self
            .packages()
            .find_one(doc! {"_id": id})
            .await
            .map_err(failed)?;
        Ok(found.map(|d| d.record))
    }

    async fn upsert(&self, record: PackageRecord) -> Result<Upsert, StoreError> {
        let record = PackageDoc::from(record);
        match self.replace(&record).await {
            // Two first writes of one id raced and the other inserted; ours now replaces.
            Err(StoreError::Conflict { .. }) => self.replace(&record).await,
            other => other,
        }
    }

    async fn patch(&self, id: &str, patch: PackagePatch) -> Result<bool, StoreError> {
        let mut set = Document::new();
        if let Some(size) = patch.size {
            set.insert("size", size.to_string());
        }
        if let Some(weight) = patch.weight {
            set.insert("weight", weight);
        }
        if let Some(tag) = patch.tag {
            set.insert("tag", tag);
        }
        if let Some(owner_id) = patch.owner_id {
            set.insert("ownerId", owner_id);
        }
        if set.is_empty() {
            return Ok(self.get(id).await?.is_some());
        }
        let result = self
            .packages()
            .update_one(doc! {"_id": id}, doc! {"$set": set})
            .await
            .map_err(failed)?;
        Ok(result.matched_count > 0)
    }

    async fn total_weight(&self, owner_id: &str) -> Result<f64, StoreError> {
        let mut cursor = self
            .packages()
            .aggregate([
                doc! {"$match": {"ownerId": owner_id}},
                doc! {"$group": {"_id": null, "total": {"$sum": "$weight"}}},
            ])
            .await
            .map_err(failed)?;
        let first = cursor.advance().await.map_err(failed)?;
        if !first {
            return Ok(0.0);
        }
        let row = cursor.deserialize_current().map_err(failed)?;
        // `$sum` gives an int when every weight happens to be whole.
        Ok(match row.get("total") {
            Some(mongodb::bson::Bson::Double(v)) => *v,
            Some(mongodb::bson::Bson::Int32(v)) => f64::from(*v),
            Some(mongodb::bson::Bson::Int64(v)) => *v as f64,
            _ => 0.0,
        })
    }
}
