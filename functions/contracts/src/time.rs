//! Date-times as JSON strings, handed to the serializer in one piece.
//!
//! chrono's own `Serialize` gives serde_json its `Display`, which arrives in a dozen
//! fragments, each escaped on its own: about 2,000 instructions per value in callgrind,
//! a twentieth of a whole `GET /api/deliveries/{id}` (docs/BENCHMARKS.md). RFC 3339 with
//! the fraction chrono writes (none, or 3, 6 or 9 digits) and the offset as `Z` or
//! `+hh:mm` is the same text; a test holds the two equal.

use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde::Serializer;

/// For `#[serde(serialize_with = "crate::time::serialize")]`.
pub fn serialize<S: Serializer>(t: &DateTime<FixedOffset>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// The same for an optional date-time (with `skip_serializing_if = "Option::is_none"`).
pub fn serialize_option<S: Serializer>(
    t: &Option<DateTime<FixedOffset>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serialize(t, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::{NaiveDate, TimeZone as _};

    use super::*;

    #[derive(serde::Serialize)]
    struct Ours(#[serde(serialize_with = "serialize")] DateTime<FixedOffset>);

    #[test]
    fn writes_what_chrono_writes() {
        let offsets = [0, 3600, -5 * 3600 - 1800, 14 * 3600, -12 * 3600];
        let nanos = [
            0,
            1_000_000,
            120_000_000,
            123_456_000,
            123_456_789,
            999_999_999,
            5,
        ];
        for offset in offsets {
            let zone = FixedOffset::east_opt(offset).unwrap();
            for nano in nanos {
                for (y, m, d) in [
                    (2026, 11, 21),
                    (1970, 1, 1),
                    (2024, 2, 29),
                    (9999, 12, 31),
                    (1, 1, 1),
                ] {
                    let naive = NaiveDate::from_ymd_opt(y, m, d)
                        .unwrap()
                        .and_hms_nano_opt(23, 59, 7, nano)
                        .unwrap();
                    let t = zone.from_local_datetime(&naive).unwrap();
                    assert_eq!(
                        serde_json::to_string(&Ours(t)).unwrap(),
                        serde_json::to_string(&t).unwrap(),
                        "{t:?}"
                    );
                }
            }
        }
    }
}
