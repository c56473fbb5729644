//! Bodies the workflow sends to the backend functions, and what they answer.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::{ConfirmationType, Location, PackageSize};

/// `PUT /api/packages/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageUpsert {
    pub size: PackageSize,
    /// Kilograms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0)]
    pub weight: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageDetail {
    #[schema(pattern = "\\S")]
    pub id: String,
    pub size: PackageSize,
}

/// `PUT /api/dronedeliveries/{deliveryId}`: plan (or re-plan) a delivery's drone. On a
/// re-plan, absent fields keep their stored values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DroneDeliveryRequest {
    pub delivery_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropoff: Option<Location>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub package_details: Vec<PackageDetail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expedited: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_time: Option<DateTime<FixedOffset>>,
}

/// The dronescheduler's answer: the drone assigned to a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DroneAssignment {
    pub drone_id: String,
    pub delivery_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserAccount {
    #[schema(pattern = "\\S")]
    pub user_id: String,
    #[schema(pattern = "\\S")]
    pub account_id: String,
}

/// `PUT /api/deliveries/{id}`: the delivery document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "id": "d-1", "owner": {"userId": "user-1", "accountId": "account-1"},
    "pickup": {"altitude": 0.0, "latitude": 47.64, "longitude": -122.13},
    "dropoff": {"altitude": 0.0, "latitude": 47.67, "longitude": -122.12},
    "deadline": "LinkedIn", "expedited": false, "confirmationRequired": "None", "droneId": "drone-7"
}))]
pub struct DeliveryDocument {
    pub id: String,
    pub owner: UserAccount,
    pub pickup: Location,
    pub dropoff: Location,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    #[serde(default)]
    pub expedited: bool,
    pub confirmation_required: ConfirmationType,
    /// The drone the dronescheduler assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drone_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_time: Option<DateTime<FixedOffset>>,
}

/// `PATCH /api/deliveries/{id}`: only the fields present change.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(min_properties = 1)]
pub struct DeliveryPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropoff: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_time: Option<DateTime<FixedOffset>>,
}
