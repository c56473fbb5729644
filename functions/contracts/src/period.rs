//! `?ownerId=&year=&month=`: the owner and calendar month the summary endpoints report on.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, FixedOffset, Utc};
use runtime::ApiError;
use runtime::problem::FieldError;

/// The query the summary endpoints document (read by [`OwnerMonth::from_query`], which names
/// every bad parameter at once).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)] // Documentation only.
pub struct OwnerMonthQuery {
    /// The owner.
    #[param(min_length = 1)]
    owner_id: String,
    /// The calendar year.
    #[param(minimum = 1, maximum = 9999)]
    year: i32,
    /// The month, 1 to 12.
    #[param(minimum = 1, maximum = 12)]
    month: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerMonth {
    pub owner_id: String,
    pub year: i32,
    pub month: u32,
}

impl OwnerMonth {
    /// Reads and checks the query, naming every bad parameter.
    pub fn from_query(q: &HashMap<String, String>) -> Result<Self, ApiError> {
        let get = |k: &str| {
            q.iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.trim())
                .filter(|v| !v.is_empty())
        };
        let mut errors = Vec::new();
        let owner_id = get("ownerId").map(str::to_owned);
        if owner_id.is_none() {
            errors.push(FieldError::new("ownerId", "is required"));
        }
        let year = get("year")
            .and_then(|y| y.parse::<i32>().ok())
            .filter(|y| (1..=9999).contains(y));
        if year.is_none() {
            errors.push(FieldError::new(
                "year",
                "is required, a year from 1 to 9999",
            ));
        }
        let month = get("month")
            .and_then(|m| m.parse::<u32>().ok())
            .filter(|m| (1..=12).contains(m));
        if month.is_none() {
            errors.push(FieldError::new(
                "month",
                "is required, a month from 1 to 12",
            ));
        }
        match (owner_id, year, month) {
            (Some(owner_id), Some(year), Some(month)) => Ok(Self {
                owner_id,
                year,
                month,
            }),
            _ => Err(ApiError::Validation(errors)),
        }
    }

    /// Whether `t` (read in UTC) falls in this month.
    pub fn contains(&self, t: &DateTime<FixedOffset>) -> bool {
        let t = t.with_timezone(&Utc);
        t.year() == self.year && t.month() == self.month
    }

    /// `YYYY-MM`, as used in store keys.
    pub fn key(&self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    /// The month a timestamp falls in (UTC), as `YYYY-MM`.
    pub fn key_of(t: &DateTime<FixedOffset>) -> String {
        let t = t.with_timezone(&Utc);
        format!("{:04}-{:02}", t.year(), t.month())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_matches_months() {
        let p = OwnerMonth::from_query(&q(&[("ownerId", "o"), ("year", "2026"), ("month", "11")]))
            .unwrap();
        let inside = DateTime::parse_from_rfc3339("2026-11-30T23:30:00-00:00").unwrap();
        let outside = DateTime::parse_from_rfc3339("2026-12-01T01:00:00+02:00").unwrap();
        assert!(p.contains(&inside));
        assert!(
            p.contains(&outside),
            "01:00+02:00 on Dec 1 is still November in UTC"
        );
        assert_eq!(p.key(), "2026-11");
    }

    #[test]
    fn names_every_bad_parameter() {
        let Err(ApiError::Validation(errors)) =
            OwnerMonth::from_query(&q(&[("year", "x"), ("month", "13")]))
        else {
            panic!()
        };
        let names: Vec<_> = errors.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["ownerId", "year", "month"]);
    }
}
