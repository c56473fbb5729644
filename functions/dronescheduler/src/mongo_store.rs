//! The MongoDB adapter of the drone store (Azure Cosmos DB for MongoDB in production).
//!
//! Two collections in the function's own database:
//! - `drones`: `_id` = drone id, `load` = deliveries assigned to it, `holding` = the ids of
//!   claims not yet written as assignments, `active` = in the configured fleet. Seeded at start-up; drones dropped from the fleet keep their deliveries but get
//!   no new ones.
//! - `assignments`: `_id` = delivery id, the assignment, and `month` (`YYYY-MM`, UTC) for
//!   the utilization query, indexed with `ownerId`.
//!
//! Choosing a drone is a compare-and-set on a least-loaded drone's `load`, so concurrent
//! schedulers spread work as evenly as one would. The claim records its delivery in the
//! drone's `holding`, in the same write as the load: a claim whose assignment was never
//! written (the process died between the two writes) is taken up again by the next attempt
//! for that delivery, or given back by its release, so no load ever belongs to nobody. Once
//! the assignment is written the hold has done its job and is dropped (the load stays, and
//! a release gives it back through the assignment): `holding` lists only claims in flight,
//! so a drone's document does not grow with every delivery it ever had (Cosmos DB caps a
//! document at 2 MB, and each claim's `$ne` filter scans the list). If the assignment
//! insert loses a race for the same delivery, the claim is given back and the winner's
//! drone used.

use async_trait::async_trait;
use mongodb::Collection;
use mongodb::bson::{Document, doc};
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
    /// The claims on the drone whose assignments are not written yet: the claim and its
    /// hold are one atomic write, so a claim whose assignment was never written (a process
    /// killed between the two) is found again by its delivery.
    #[serde(default)]
    holding: Vec<String>,
}

/// Reads of drones leave out `holding`: a claim needs only the id and the load. (Before holds
/// were dropped once written, each claim read 32 drones with every delivery they ever held,
/// and dronescheduler was the costliest function per delivery: docs/BENCHMARKS.md.)
fn without_holding() -> Document {
    doc! {"holding": 0}
}

/// A drone as a claim reads it: its id and load, nothing else (decoding each candidate's
/// whole document was a tenth of the function's instructions per assignment, callgrind).
#[derive(Debug, Deserialize)]
struct Candidate {
    #[serde(rename = "_id")]
    id: String,
    load: i64,
}

/// A drone claimed for a delivery: `fresh` when this call took the load, not when it took up
/// a hold an earlier attempt (or a racing replica) had left.
struct Claim {
    drone_id: String,
    fresh: bool,
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
        ensure_index(&store.drones(), doc! {"holding": 1}, "holding").await?;
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
            holding: Vec::new(),
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
        // A hold the first attempt left (it died between its insert and dropping the hold).
        self.drop_hold(&existing.drone_id, &updated.delivery_id)
            .await;
        Ok(updated)
    }

    /// Drops the hold of a claim whose assignment is written; its load stays. A failure
    /// only leaves the hold for the next attempt or the release, so it is logged, not
    /// returned: the assignment stands.
    async fn drop_hold(&self, drone_id: &str, delivery_id: &str) {
        if let Err(e) = self
            .drones()
            .update_one(
                doc! {"_id": drone_id, "holding": delivery_id},
                doc! {"$pull": {"holding": delivery_id}},
            )
            .await
        {
            tracing::warn!(drone_id, delivery_id, error = %failed(e), "a written claim's hold was not dropped");
        }
    }

    /// Takes one delivery's worth of load on a least-loaded active drone.
    ///
    /// A compare-and-set on the load seen, tried on the least-loaded drones in random
    /// order. `findAndModify` with a sort is not enough: after a racing update the chosen
    /// drone still matches the filter and MongoDB retries the write on it without
    /// re-sorting, piling work onto one drone. Shuffling the ties keeps racing replicas
    /// from all chasing the same drone. After a few lost rounds a drone is taken anyway: a
    /// drone may hold several deliveries, only less evenly.
    async fn claim_drone(&self, delivery_id: &str) -> Result<Claim, StoreError> {
        const ROUNDS: usize = 4;
        // Enough ties to spread racing replicas; each one read costs the driver a decode.
        const CANDIDATES: i64 = 8;
        for round in 1..=ROUNDS {
            // A claim of this delivery already made (one whose assignment was never
            // written, or a racing request's for the same delivery, which is why every
            // round looks again): take it up rather than claim a second drone.
            if let Some(held) = self.held_claim(delivery_id).await? {
                return Ok(held);
            }
            let mut cursor = self
                .drones()
                .clone_with_type::<Candidate>()
                .find(doc! {"active": true})
                .sort(doc! {"load": 1, "_id": 1})
                .limit(CANDIDATES)
                .projection(doc! {"_id": 1, "load": 1})
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
                let mut filter = doc! {"_id": &drone.id, "holding": {"$ne": delivery_id}};
                if round < ROUNDS {
                    filter.insert("load", drone.load);
                }
                let claimed = self
                    .drones()
                    .update_one(
                        filter,
                        doc! {"$inc": {"load": 1}, "$push": {"holding": delivery_id}},
                    )
                    .await
                    .map_err(failed)?;
                if claimed.modified_count == 1 {
                    return Ok(Claim {
                        drone_id: drone.id.clone(),
                        fresh: true,
                    });
                }
            }
        }
        // The last round's writes fail only on a drone that holds this delivery already:
        // a racing request claimed it meanwhile.
        if let Some(held) = self.held_claim(delivery_id).await? {
            return Ok(held);
        }
        Err(StoreError::unavailable(
            "no drone could be claimed; try again",
        ))
    }

    /// The drone that holds a claim of `delivery_id`, if one does.
    async fn held_claim(&self, delivery_id: &str) -> Result<Option<Claim>, StoreError> {
        let held = self
            .drones()
            .find_one(doc! {"holding": delivery_id})
            .projection(without_holding())
            .await
            .map_err(failed)?;
        Ok(held.map(|drone| Claim {
            drone_id: drone.id,
            fresh: false,
        }))
    }

    /// Gives back the claim `delivery_id` holds on `drone_id`.
    async fn unclaim_on(&self, drone_id: &str, delivery_id: &str) -> Result<(), StoreError> {
        self.drones()
            .update_one(
                doc! {"_id": drone_id, "holding": delivery_id},
                doc! {"$inc": {"load": -1}, "$pull": {"holding": delivery_id}},
            )
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// Gives back every claim `delivery_id` holds (two racing replicas may each have taken
    /// one before either wrote the assignment); the first drone freed, if any.
    async fn unclaim_all(&self, delivery_id: &str) -> Result<Option<String>, StoreError> {
        let mut first = None;
        while let Some(drone) = self
            .drones()
            .find_one_and_update(
                doc! {"holding": delivery_id},
                doc! {"$inc": {"load": -1}, "$pull": {"holding": delivery_id}},
            )
            .await
            .map_err(failed)?
        {
            first.get_or_insert(drone.id);
        }
        Ok(first)
    }
}

#[async_trait]
impl DroneStore for MongoDroneStore {
    /// A plan that names both ends is tried as a new assignment straight away: the
    /// assignment's insert finds an existing one by its duplicate key, and re-plans it, so a
    /// new delivery (the common case) costs one read fewer than looking first. A plan that
    /// leaves an end out needs the stored assignment's, so it looks first.
    async fn assign(&self, plan: Plan, speed_mph: f64) -> Result<Assignment, AssignError> {
        if (plan.pickup.is_none() || plan.dropoff.is_none())
            && let Some(existing) = self.find(&plan.delivery_id).await?
        {
            return self.replan(plan, &existing, speed_mph).await;
        }
        // Check the plan before taking a drone, so a bad plan holds no load.
        plan_assignment(plan.clone(), None, "", speed_mph)?;
        let Claim { drone_id, fresh } = self.claim_drone(&plan.delivery_id).await?;
        let assignment = plan_assignment(plan.clone(), None, &drone_id, speed_mph)?;
        match self
            .assignments()
            .insert_one(AssignmentDoc::from(assignment.clone()))
            .await
            .map_err(failed)
        {
            Ok(_) => {
                self.drop_hold(&drone_id, &plan.delivery_id).await;
                Ok(assignment)
            }
            // Another replica assigned this delivery first: use its drone, and give back
            // this claim unless it is the very claim the winner took up. A fresh claim is
            // always ours to give back, even on the winner's drone: once the winner dropped
            // its hold, nothing kept this one from claiming that drone a second time.
            Err(StoreError::Conflict { .. }) => match self.find(&plan.delivery_id).await? {
                Some(winner) => {
                    if fresh || winner.drone_id != drone_id {
                        self.unclaim_on(&drone_id, &plan.delivery_id).await?;
                    }
                    self.replan(plan, &winner, speed_mph).await
                }
                None => Err(StoreError::conflict(
                    "the assignment changed while it was being made; try again",
                )
                .into()),
            },
            // The insert may or may not have landed: keep the claim. A retry takes it up
            // again (claim_drone finds it by the delivery), and a release gives it back.
            Err(e) => Err(e.into()),
        }
    }

    /// Holds the assignment's drone again, deletes the assignment, then gives back every
    /// claim the delivery holds: its drone's and any left without an assignment (a process
    /// killed between claim and insert, or replicas racing). The hold comes first so that a
    /// release that dies part-way is finished by the next one: it is what gives the load
    /// back, once, however many times the release is tried.
    async fn release(&self, delivery_id: &str) -> Result<Option<String>, StoreError> {
        if let Some(existing) = self.find(delivery_id).await? {
            self.drones()
                .update_one(
                    doc! {"_id": &existing.drone_id, "holding": {"$ne": delivery_id}},
                    doc! {"$push": {"holding": delivery_id}},
                )
                .await
                .map_err(failed)?;
        }
        let removed = self
            .assignments()
            .find_one_and_delete(doc! {"_id": delivery_id})
            .await
            .map_err(failed)?;
        let unclaimed = self.unclaim_all(delivery_id).await?;
        Ok(removed.map(|r| r.assignment.drone_id).or(unclaimed))
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
