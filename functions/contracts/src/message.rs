//! The queue message from ingestion to workflow.
//!
//! The body is JSON; the `operation` application property says which shape it has.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::{ConfirmationType, PackageSize};

/// What a message asks the workflow to do; the value of the `operation` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Delivery,
    Cancel,
    Reschedule,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivery => "delivery",
            Self::Cancel => "cancel",
            Self::Reschedule => "reschedule",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "delivery" => Some(Self::Delivery),
            "cancel" => Some(Self::Cancel),
            "reschedule" => Some(Self::Reschedule),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageInfo {
    #[schema(pattern = "\\S")]
    pub package_id: String,
    pub size: PackageSize,
    /// Kilograms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0)]
    pub weight: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// `operation = delivery`: schedule a new delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryMessage {
    pub delivery_id: String,
    pub owner_id: String,
    #[serde(default)]
    pub pickup_location: String,
    #[serde(default)]
    pub dropoff_location: String,
    pub pickup_time: DateTime<FixedOffset>,
    #[serde(default)]
    pub expedited: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    pub confirmation_required: ConfirmationType,
    pub package_info: PackageInfo,
}

/// `operation = cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelMessage {
    pub delivery_id: String,
}

/// `operation = reschedule`: only the fields present change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RescheduleMessage {
    pub delivery_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropoff_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_time: Option<DateTime<FixedOffset>>,
}
