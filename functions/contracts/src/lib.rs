//! The contracts between the functions: what ingestion puts on the queue, what the workflow
//! sends to package, dronescheduler and delivery, and the enums and locations they share.
//! One definition each, so producer and consumer cannot disagree.

pub mod geo;
pub mod message;
pub mod period;
pub mod requests;

use runtime::named_enum;

named_enum! {
    /// A package's size. Integers follow the reference: Small=0, Medium=1, Large=2.
    pub enum PackageSize { Small, Medium, Large }
}

named_enum! {
    /// How a delivery must be confirmed. Integers follow the order of the product spec
    /// (the reference's ingestion API): None=0, FingerPrint=1, Picture=2, Voice=3.
    pub enum ConfirmationType { None, FingerPrint, Picture, Voice }
}

/// The current time, as the fixed-offset timestamps the contracts carry (UTC).
pub fn now() -> chrono::DateTime<chrono::FixedOffset> {
    chrono::Utc::now().fixed_offset()
}

/// The queue ingestion sends to and workflow is triggered by (its default name; the
/// `QUEUE_NAME` setting can change it).
pub const DELIVERY_QUEUE: &str = "deliveries";

/// Application property naming what a queue message asks for (`delivery|cancel|reschedule`).
pub const OPERATION: &str = "operation";

pub use geo::{Location, ServiceArea, distance_miles, read_location};
pub use message::{CancelMessage, DeliveryMessage, Operation, PackageInfo, RescheduleMessage};
pub use period::{OwnerMonth, OwnerMonthQuery};
