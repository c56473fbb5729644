//! What the delivery function stores and answers.

use chrono::{DateTime, FixedOffset};
use contracts::Location;
use contracts::requests::DeliveryDocument;
use runtime::named_enum;
use serde::{Deserialize, Serialize};

named_enum! {
    /// Where a delivery stands.
    pub enum DeliveryStage { Created, Rescheduled, HeadedToPickup, HeadedToDropoff, Completed, Cancelled }
}

impl DeliveryStage {
    /// Finished deliveries are kept for the finished TTL, then expire.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
    }
}

/// A delivery as stored: the document plus when it was first stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredDelivery {
    #[serde(flatten)]
    pub document: DeliveryDocument,
    pub created_at: DateTime<FixedOffset>,
}

impl StoredDelivery {
    /// The month the delivery counts in for summaries: its pickup time, else its creation.
    pub fn scheduled_for(&self) -> DateTime<FixedOffset> {
        self.document.pickup_time.unwrap_or(self.created_at)
    }
}

/// One step in a delivery's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackingEvent {
    pub stage: DeliveryStage,
    pub at: DateTime<FixedOffset>,
    pub location: Option<Location>,
}

/// `POST /api/deliveries/{id}/notifymerequests`: an email address, an SMS number, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(min_properties = 1, example = json!({"emailAddress": "me@example.com"}))]
pub struct NotifyMeRequest {
    /// Must contain `@`.
    #[schema(pattern = "@")]
    pub email_address: Option<String>,
    pub sms: Option<String>,
}

/// `GET /api/deliveries/{id}/status`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStatus {
    pub stage: DeliveryStage,
    pub last_known_location: Option<Location>,
    /// Absent once the delivery is finished.
    #[serde(rename = "pickupETA")]
    pub pickup_eta: Option<DateTime<FixedOffset>>,
    #[serde(rename = "deliveryETA")]
    pub delivery_eta: Option<DateTime<FixedOffset>>,
}

impl DeliveryStatus {
    /// The status from the delivery and its history: the stage and location of the latest
    /// event; while the delivery is under way, the pickup ETA is its pickup time (or its
    /// creation) and the delivery ETA adds the flight from pickup to dropoff at
    /// `speed_mph`. Finished deliveries report when they finished instead.
    pub fn compute(delivery: &StoredDelivery, events: &[TrackingEvent], speed_mph: f64) -> Self {
        let last = events.last();
        let stage = last.map_or(DeliveryStage::Created, |e| e.stage);
        let last_known_location = events
            .iter()
            .rev()
            .find_map(|e| e.location)
            .or(Some(delivery.document.pickup));
        let doc = &delivery.document;
        let (pickup_eta, delivery_eta) = match stage {
            DeliveryStage::Cancelled => (None, None),
            DeliveryStage::Completed => (None, last.map(|e| e.at)),
            _ => {
                let pickup = doc.pickup_time.unwrap_or(delivery.created_at);
                let miles = contracts::distance_miles(&doc.pickup, &doc.dropoff);
                let flight_ms = (miles / speed_mph * 3_600_000.0).round() as i64;
                (
                    Some(pickup),
                    Some(pickup + chrono::Duration::milliseconds(flight_ms)),
                )
            }
        };
        Self {
            stage,
            last_known_location,
            pickup_eta,
            delivery_eta,
        }
    }
}
