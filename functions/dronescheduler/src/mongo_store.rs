//! The MongoDB adapter of the drone store (Azure Cosmos DB for MongoDB in production).
//!
//! Two collections in the function's own database:
//! - `drones`: `_id` = drone id, `load` = deliveries it holds, `active` = in the configured
//!   fleet. Seeded at start-up; drones dropped from the fleet keep their deliveries but get
//!   no new ones.
//! - `assignments`: `_id` = delivery id, the assignment, and `month` (`YYYY-MM`, UTC) for
//!   the utilization query, indexed with `ownerId`.
//!
//! Choosing a drone is a compare-and-set on a least-loaded drone's `load`, so concurrent
//! schedulers spread work as evenly as one would. If the assignment insert then loses a
//! race for the same delivery, the claim is given back and the winner's drone used.

use async_trait::async_trait;
use mongodb::Collection;
use mongodb::bson::doc;
use rand::seq::SliceRandom;
use runtime::store::StoreError;
use runtime::store::mongo::{MongoDatabase, ensure_index, failed};
use serde::{Deserialize, Serialize};

use crate::store::{AssignError, DroneStore, plan_assignment};
use crate::{Assignment, Plan};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DroneDoc {
    #[serde(rename = "_id")]
    id: String,
    load: i64,
    active: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AssignmentDoc {
    #[serde(rename = "_id")]
    id: String,
    month: String,
    #[serde(flatten)]
    assignment: Assignment,
}

impl From<Assignment> for AssignmentDoc {
    fn from(assignment: Assignment) -> Self {
        Self {
            id: assignment.delivery_id.clone(),
            month: contracts::OwnerMonth::key_of(&assignment.scheduled_for),
            assignment,
        }
    }
}

/// Assignments and the fleet's load in MongoDB.
#[derive(Debug, Clone)]
pub struct MongoDroneStore {
    database: MongoDatabase,
}

impl MongoDroneStore {
    /// Opens the collections, creates the indexes and seeds the fleet; every step is a
    /// no-op when already done, so any number of replicas may start at once.
    pub async fn open(database: MongoDatabase, fleet: &[String]) -> Result<Self, StoreError> {
        let store = Self { database };
        ensure_index(
            &store.assignments(),
            doc! {"ownerId": 1, "month": 1},
            "ownerId_month",
        )
        .await?;
        ensure_index(
            &store.drones(),
            doc! {"active": 1, "load": 1, "_id": 1},
            "least_loaded",
        )
        .await?;
        store.seed(fleet).await?;
        Ok(store)
    }

    /// The collections, on the client the current connection string made.
    fn drones(&self) -> Collection<DroneDoc> {
        self.database.collection("drones")
    }

    fn assignments(&self) -> Collection<AssignmentDoc> {
        self.database.collection("assignments")
    }

    async fn seed(&self, fleet: &[String]) -> Result<(), StoreError> {
        let new_drones = fleet.iter().map(|id| DroneDoc {
            id: id.clone(),
            load: 0,
            active: true,
        });
        // Unordered, so drones that exist already (duplicate keys) do not stop the rest.
        if let Err(e) = self.drones().insert_many(new_drones).ordered(false).await {
            match failed(e) {
                StoreError::Conflict { .. } => {}
                other => return Err(other),
            }
        }
        self.drones()
            .update_many(
                doc! {"_id": {"$in": fleet.to_vec()}},
                doc! {"$set": {"active": true}},
            )
            .await
            .map_err(failed)?;
        self.drones()
            .update_many(
                doc! {"_id": {"$nin": fleet.to_vec()}},
                doc! {"$set": {"active": false}},
            )
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn find(&self, delivery_id: &str) -> Result<Option<Assignment>, StoreError> {
        let found = self
            .assignments()
            .find_one(doc! {"_id": delivery_id})
            .await
            .map_err(failed)?;
        Ok(found.map(|d| d.assignment))
    }

    async fn replan(
        &self,
        plan: Plan,
        existing: &Assignment,
        speed_mph: f64,
    ) -> Result<Assignment, AssignError> {
        let updated = plan_assignment(plan, Some(existing), &existing.drone_id, speed_mph)?;
        self.assignments()
            .replace_one(
                doc! {"_id": &updated.delivery_id},
                AssignmentDoc::from(updated.clone()),
            )
            .await
            .map_err(failed)?;
        Ok(updated)
    }

    /// Takes one delivery's worth of load on a least-loaded active drone.
    ///
    /// A compare-and-set on the load seen, tried on the least-loaded drones in random
    /// order. `findAndModify` with a sort is not enough: after a racing update the chosen
    /// drone still matches the filter and MongoDB retries the write on it without
    /// re-sorting, piling work onto one drone. Shuffling the ties keeps racing replicas
    /// from all chasing the same drone. After a few lost rounds a drone is taken anyway: a
    /// drone may hold several deliveries, only less evenly.
    async fn claim_drone(&self) -> Result<String, StoreError> {
        const ROUNDS: usize = 4;
        const CANDIDATES: i64 = 32;
        for round in 1..=ROUNDS {
            let mut cursor = self
                .drones()
                .find(doc! {"active": true})
                .sort(doc! {"load": 1, "_id": 1})
                .limit(CANDIDATES)
                .await
                .map_err(failed)?;
            let mut candidates = Vec::new();
            while cursor.advance().await.map_err(failed)? {
                candidates.push(cursor.deserialize_current().map_err(failed)?);
            }
            let Some(least) = candidates.first().map(|d| d.load) else {
                return Err(StoreError::unavailable("the fleet has no drones"));
            };
            candidates.retain(|d| d.load == least);
            candidates.shuffle(&mut rand::rng());
            for drone in &candidates {
                let mut filter = doc! {"_id": &drone.id};
                if round < ROUNDS {
                    filter.insert("load", drone.load);
                }
                let claimed = self
                    .drones()
                    .update_one(filter, doc! {"$inc": {"load": 1}})
                    .await
                    .map_err(failed)?;
                if claimed.modified_count == 1 {
                    return Ok(drone.id.clone());
                }
            }
        }
        Err(StoreError::unavailable(
            "no drone could be claimed; try again",
        ))
    }

    async fn unclaim_drone(&self, drone_id: &str) -> Result<(), StoreError> {
        self.drones()
            .update_one(
                doc! {"_id": drone_id, "load": {"$gt": 0}},
                doc! {"$inc": {"load": -1}},
            )
            .await
            .map_err(failed)?;
        Ok(())
    }
}

#[async_trait]
impl DroneStore for MongoDroneStore {
    async fn assign(&self, plan: Plan, speed_mph: f64) -> Result<Assignment, AssignError> {
        if let Some(existing) = self.find(&plan.delivery_id).await? {
            return self.replan(plan, &existing, speed_mph).await;
        }
        // Check the plan before taking a drone, so a bad plan holds no load.
        plan_assignment(plan.clone(), None, "", speed_mph)?;
        let drone_id = self.claim_drone().await?;
        let assignment = plan_assignment(plan.clone(), None, &drone_id, speed_mph)?;
        match self
            .assignments()
            .insert_one(AssignmentDoc::from(assignment.clone()))
            .await
            .map_err(failed)
        {
            Ok(_) => Ok(assignment),
            Err(e) => {
                self.unclaim_drone(&drone_id).await?;
                let StoreError::Conflict { .. } = e else {
                    return Err(e.into());
                };
                // Another replica assigned this delivery first: use its drone.
                match self.find(&plan.delivery_id).await? {
                    Some(winner) => self.replan(plan, &winner, speed_mph).await,
                    None => Err(StoreError::conflict(
                        "the assignment changed while it was being made; try again",
                    )
                    .into()),
                }
            }
        }
    }

    async fn release(&self, delivery_id: &str) -> Result<Option<String>, StoreError> {
        let Some(removed) = self
            .assignments()
            .find_one_and_delete(doc! {"_id": delivery_id})
            .await
            .map_err(failed)?
        else {
            return Ok(None);
        };
        let drone_id = removed.assignment.drone_id;
        self.unclaim_drone(&drone_id).await?;
        Ok(Some(drone_id))
    }

    async fn owner_month_assignments(
        &self,
        owner_id: &str,
        month: &str,
    ) -> Result<Vec<Assignment>, StoreError> {
        let mut cursor = self
            .assignments()
            .find(doc! {"ownerId": owner_id, "month": month})
            .await
            .map_err(failed)?;
        let mut out = Vec::new();
        while cursor.advance().await.map_err(failed)? {
            out.push(cursor.deserialize_current().map_err(failed)?.assignment);
        }
        Ok(out)
    }
}
