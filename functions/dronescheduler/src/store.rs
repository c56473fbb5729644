//! Where assignments live. The embedded store is the default; the MongoDB adapter
//! (`mongo_store`) implements the same trait.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use contracts::distance_miles;
use runtime::ApiError;
use runtime::store::StoreError;

use crate::{Assignment, Plan};

/// Why an assignment could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    /// A new delivery needs these fields.
    #[error("a new delivery needs {}", .0.join(", "))]
    Missing(Vec<&'static str>),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AssignError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<AssignError> for ApiError {
    fn from(e: AssignError) -> Self {
        match e {
            AssignError::Missing(fields) => ApiError::Validation(
                fields
                    .into_iter()
                    .map(|f| runtime::problem::FieldError::new(f, "is required for a new delivery"))
                    .collect(),
            ),
            AssignError::Store(e) => e.into(),
        }
    }
}

#[async_trait]
pub trait DroneStore: Send + Sync + std::fmt::Debug {
    /// Assigns a drone, or re-plans a known delivery keeping its drone. Idempotent: the
    /// same plan twice gives the same assignment.
    async fn assign(&self, plan: Plan, speed_mph: f64) -> Result<Assignment, AssignError>;
    /// Frees the delivery's drone; the drone id, or `None` when nothing was assigned.
    async fn release(&self, delivery_id: &str) -> Result<Option<String>, StoreError>;
    /// The assignments of an owner scheduled in a month (`YYYY-MM`, UTC).
    async fn owner_month_assignments(
        &self,
        owner_id: &str,
        month: &str,
    ) -> Result<Vec<Assignment>, StoreError>;
}

/// Builds the assignment for `plan` from the stored one (if any) and the chosen drone.
pub fn plan_assignment(
    plan: Plan,
    existing: Option<&Assignment>,
    drone_id: &str,
    speed_mph: f64,
) -> Result<Assignment, AssignError> {
    let pickup = plan.pickup.or(existing.map(|a| a.pickup));
    let dropoff = plan.dropoff.or(existing.map(|a| a.dropoff));
    let (Some(pickup), Some(dropoff)) = (pickup, dropoff) else {
        let mut missing = Vec::new();
        if pickup.is_none() {
            missing.push("pickup");
        }
        if dropoff.is_none() {
            missing.push("dropoff");
        }
        return Err(AssignError::Missing(missing));
    };
    let miles = distance_miles(&pickup, &dropoff);
    Ok(Assignment {
        delivery_id: plan.delivery_id,
        drone_id: drone_id.to_owned(),
        owner_id: plan
            .owner_id
            .or_else(|| existing.and_then(|a| a.owner_id.clone())),
        pickup,
        dropoff,
        package_details: plan
            .package_details
            .or_else(|| existing.map(|a| a.package_details.clone()))
            .unwrap_or_default(),
        expedited: plan
            .expedited
            .or(existing.map(|a| a.expedited))
            .unwrap_or(false),
        scheduled_for: plan
            .pickup_time
            .or(existing.map(|a| a.scheduled_for))
            .unwrap_or_else(contracts::now),
        miles,
        hours: miles / speed_mph,
    })
}

#[derive(Debug, Default)]
struct Fleet {
    /// Deliveries held per drone; a BTreeMap so ties go to the lowest drone id.
    load: BTreeMap<String, u32>,
    assignments: HashMap<String, Assignment>,
}

/// Assignments in memory, with the fleet's load.
#[derive(Debug)]
pub struct MemoryDroneStore {
    fleet: Mutex<Fleet>,
}

impl MemoryDroneStore {
    pub fn new(drone_ids: Vec<String>) -> Self {
        Self {
            fleet: Mutex::new(Fleet {
                load: drone_ids.into_iter().map(|id| (id, 0)).collect(),
                assignments: HashMap::new(),
            }),
        }
    }

    fn fleet(&self) -> std::sync::MutexGuard<'_, Fleet> {
        runtime::sync::lock(&self.fleet)
    }
}

#[async_trait]
impl DroneStore for MemoryDroneStore {
    async fn assign(&self, plan: Plan, speed_mph: f64) -> Result<Assignment, AssignError> {
        let mut fleet = self.fleet();
        if let Some(existing) = fleet.assignments.get(&plan.delivery_id) {
            let updated =
                plan_assignment(plan, Some(existing), &existing.drone_id.clone(), speed_mph)?;
            fleet
                .assignments
                .insert(updated.delivery_id.clone(), updated.clone());
            return Ok(updated);
        }
        let drone_id = fleet
            .load
            .iter()
            .min_by_key(|(_, load)| **load)
            .map(|(id, _)| id.clone())
            .ok_or_else(|| StoreError::unavailable("the fleet has no drones"))?;
        let assignment = plan_assignment(plan, None, &drone_id, speed_mph)?;
        *fleet.load.entry(drone_id).or_default() += 1;
        fleet
            .assignments
            .insert(assignment.delivery_id.clone(), assignment.clone());
        Ok(assignment)
    }

    async fn release(&self, delivery_id: &str) -> Result<Option<String>, StoreError> {
        let mut fleet = self.fleet();
        let Some(a) = fleet.assignments.remove(delivery_id) else {
            return Ok(None);
        };
        if let Some(load) = fleet.load.get_mut(&a.drone_id) {
            *load = load.saturating_sub(1);
        }
        Ok(Some(a.drone_id))
    }

    async fn owner_month_assignments(
        &self,
        owner_id: &str,
        month: &str,
    ) -> Result<Vec<Assignment>, StoreError> {
        Ok(self
            .fleet()
            .assignments
            .values()
            .filter(|a| a.owner_id.as_deref() == Some(owner_id))
            .filter(|a| contracts::OwnerMonth::key_of(&a.scheduled_for) == month)
            .cloned()
            .collect())
    }
}
