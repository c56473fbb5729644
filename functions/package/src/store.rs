//! Where packages live. The embedded store is the default; the MongoDB adapter implements
//! the same trait.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use runtime::store::{StoreError, Upsert};

use crate::{PackagePatch, PackageRecord};

#[async_trait]
pub trait PackageStore: Send + Sync + std::fmt::Debug {
    async fn get(&self, id: &str) -> Result<Option<PackageRecord>, StoreError>;
    /// Creates or replaces; says which.
    async fn upsert(&self, record: PackageRecord) -> Result<Upsert, StoreError>;
    /// Applies a partial update; false when there is no such package.
    async fn patch(&self, id: &str, patch: PackagePatch) -> Result<bool, StoreError>;
    /// The summed weight of an owner's packages (0 when none).
    async fn total_weight(&self, owner_id: &str) -> Result<f64, StoreError>;
}

/// Packages in memory.
#[derive(Debug, Default)]
pub struct MemoryPackageStore {
    packages: Mutex<HashMap<String, PackageRecord>>,
}

impl MemoryPackageStore {
    fn packages(&self) -> std::sync::MutexGuard<'_, HashMap<String, PackageRecord>> {
        runtime::sync::lock(&self.packages)
    }
}

#[async_trait]
impl PackageStore for MemoryPackageStore {
    async fn get(&self, id: &str) -> Result<Option<PackageRecord>, StoreError> {
        Ok(self.packages().get(id).cloned())
    }

    async fn upsert(&self, record: PackageRecord) -> Result<Upsert, StoreError> {
        Ok(match self.packages().insert(record.id.clone(), record) {
            None => Upsert::Created,
            Some(_) => Upsert::Updated,
        })
    }

    async fn patch(&self, id: &str, patch: PackagePatch) -> Result<bool, StoreError> {
        Ok(match self.packages().get_mut(id) {
            Some(record) => {
                patch.apply(record);
                true
            }
            None => false,
        })
    }

    async fn total_weight(&self, owner_id: &str) -> Result<f64, StoreError> {
        Ok(self
            .packages()
            .values()
            .filter(|p| p.owner_id.as_deref() == Some(owner_id))
            .filter_map(|p| p.weight)
            .sum())
    }
}
