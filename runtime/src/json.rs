//! Reading JSON request bodies field by field, so one response can name every bad field.
//!
//! serde's derive stops at the first error and cannot say "ownerId is required and
//! packageInfo.size must be one of ...", so bodies are parsed to a [`Value`] and read with a
//! [`Validator`]. Keys match exactly first, then ignoring ASCII case, because the reference
//! clients talk to ASP.NET services that bind names case-insensitively.
//!
//! Scalars are read as the reference's binders read them (Jackson's defaults in its Java
//! ingestion, Json.NET's in its ASP.NET services), so its clients keep working: a number or
//! boolean may come as a JSON string (`"2.5"`, `"true"`), a string field takes a number or
//! boolean as its text, a boolean takes 0 or 1, and a timestamp may be epoch milliseconds
//! (what Jackson writes for a `Date` by default) or ISO 8601 without an offset (UTC) or as a
//! date alone. What the reference bound but failed on later (a negative weight, an unknown
//! enum name) is still an error here.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone as _, Utc};
use serde_json::{Map, Value};

use crate::problem::{ApiError, FieldError};

/// An enum written as its name and accepted as a name (any case) or the reference's integer.
pub trait NamedEnum: Sized + Copy + 'static {
    /// The variants in the reference implementation's integer order.
    const VARIANTS: &'static [(&'static str, Self)];

    /// The canonical name, as written in JSON.
    fn name(self) -> &'static str;

    /// Parses a JSON name (case-insensitive) or integer index.
    fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::String(s) => Self::from_name(s),
            Value::Number(n) => n
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| Self::VARIANTS.get(i))
                .map(|(_, v)| *v),
            _ => None,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        let name = name.trim();
        Self::VARIANTS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// "one of A, B, C", for error messages.
    fn expected() -> String {
        let names: Vec<_> = Self::VARIANTS.iter().map(|(n, _)| *n).collect();
        format!("must be one of {}", names.join(", "))
    }
}

/// Declares an enum that serializes as its name and deserializes leniently.
#[macro_export]
macro_rules! named_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $($variant),+ }

        impl $crate::json::NamedEnum for $name {
            const VARIANTS: &'static [(&'static str, Self)] = &[$((stringify!($variant), Self::$variant)),+];
            fn name(self) -> &'static str {
                match self { $(Self::$variant => stringify!($variant)),+ }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($crate::json::NamedEnum::name(*self))
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = <::serde_json::Value as ::serde::Deserialize>::deserialize(d)?;
                <Self as $crate::json::NamedEnum>::from_json(&v).ok_or_else(|| {
                    ::serde::de::Error::custom(format!(
                        "{}: {}", stringify!($name), <Self as $crate::json::NamedEnum>::expected()
                    ))
                })
            }
        }

        impl $crate::openapi::utoipa::PartialSchema for $name {
            fn schema() -> $crate::openapi::utoipa::openapi::RefOr<$crate::openapi::utoipa::openapi::schema::Schema> {
                $crate::openapi::named_enum_schema::<Self>()
            }
        }

        impl $crate::openapi::utoipa::ToSchema for $name {
            fn name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str($crate::json::NamedEnum::name(*self))
            }
        }
    };
}

/// A JSON object being read, with its path for error messages.
#[derive(Debug, Clone)]
pub struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

/// Collects field errors while a body is read.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// The body as an object; anything else is an error about the whole body.
    pub fn root<'a>(&mut self, value: &'a Value) -> Option<Obj<'a>> {
        match value {
            Value::Object(map) => Some(Obj {
                map,
                path: String::new(),
            }),
            _ => {
                self.errors
                    .push(FieldError::new("$", "the body must be a JSON object"));
                None
            }
        }
    }

    /// Records an error found by the caller.
    pub fn error(&mut self, obj: Option<&Obj<'_>>, key: &str, reason: impl Into<String>) {
        let name = match obj {
            Some(o) => Self::name(o, key),
            None => key.to_owned(),
        };
        self.errors.push(FieldError::new(name, reason));
    }

    fn name(obj: &Obj<'_>, key: &str) -> String {
        if obj.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", obj.path)
        }
    }

    /// The value under the first of `keys` present and not null.
    fn lookup<'a>(obj: &Obj<'a>, keys: &[&str]) -> Option<&'a Value> {
        let exact = keys.iter().find_map(|k| obj.map.get(*k));
        exact
            .or_else(|| {
                obj.map
                    .iter()
                    .find(|(k, _)| keys.iter().any(|want| want.eq_ignore_ascii_case(k)))
                    .map(|(_, v)| v)
            })
            .filter(|v| !v.is_null())
    }

    fn missing(&mut self, obj: &Obj<'_>, key: &str, required: bool) {
        if required {
            self.errors
                .push(FieldError::new(Self::name(obj, key), "is required"));
        }
    }

    /// A string; with `required`, also non-blank. `keys[0]` names it in errors, the rest are
    /// accepted aliases.
    pub fn string(&mut self, obj: &Obj<'_>, keys: &[&str], required: bool) -> Option<String> {
        let key = keys[0];
        match Self::lookup(obj, keys) {
            None => {
                self.missing(obj, key, required);
                None
            }
            Some(Value::String(s)) if required && s.trim().is_empty() => {
                self.error(Some(obj), key, "must not be blank");
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            // Jackson and Json.NET bind a scalar to a string field as its text.
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            Some(_) => {
                self.error(Some(obj), key, "must be a string");
                None
            }
        }
    }

    /// `true` or `false`, also as a string (any case) or as the integer 0 or 1.
    pub fn boolean(&mut self, obj: &Obj<'_>, key: &str) -> Option<bool> {
        let parsed = match Self::lookup(obj, &[key]) {
            None => return None,
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) => match s.trim() {
                t if t.eq_ignore_ascii_case("true") => Some(true),
                t if t.eq_ignore_ascii_case("false") => Some(false),
                _ => None,
            },
            Some(Value::Number(n)) => match n.as_u64() {
                Some(0) => Some(false),
                Some(1) => Some(true),
                _ => None,
            },
            Some(_) => None,
        };
        if parsed.is_none() {
            self.error(Some(obj), key, "must be true or false");
        }
        parsed
    }

    /// A finite number no smaller than `min`.
    pub fn number(&mut self, obj: &Obj<'_>, key: &str, min: f64, required: bool) -> Option<f64> {
        match Self::lookup(obj, &[key]) {
            None => {
                self.missing(obj, key, required);
                None
            }
            Some(value) => {
                let number = match value {
                    Value::Number(n) => n.as_f64(),
                    // A number sent as a string, as Jackson and Json.NET read it.
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                };
                match number {
                    Some(x) if x.is_finite() && x >= min => Some(x),
                    Some(_) => {
                        self.error(Some(obj), key, format!("must be a number >= {min}"));
                        None
                    }
                    None => {
                        self.error(Some(obj), key, "must be a number");
                        None
                    }
                }
            }
        }
    }

    pub fn named<E: NamedEnum>(&mut self, obj: &Obj<'_>, key: &str, required: bool) -> Option<E> {
        match Self::lookup(obj, &[key]) {
            None => {
                self.missing(obj, key, required);
                None
            }
            Some(v) => match E::from_json(v) {
                Some(e) => Some(e),
                None => {
                    self.error(Some(obj), key, E::expected());
                    None
                }
            },
        }
    }

    /// A timestamp: RFC 3339, or as Jackson reads a `Date` (see the module's doc).
    pub fn timestamp(
        &mut self,
        obj: &Obj<'_>,
        key: &str,
        required: bool,
    ) -> Option<DateTime<FixedOffset>> {
        match Self::lookup(obj, &[key]) {
            None => {
                self.missing(obj, key, required);
                None
            }
            Some(value) => match parse_timestamp(value) {
                Some(t) => Some(t),
                None => {
                    self.error(
                        Some(obj),
                        key,
                        "must be an RFC 3339 timestamp, e.g. 2026-11-21T10:00:00Z",
                    );
                    None
                }
            },
        }
    }

    /// A nested object.
    pub fn object<'a>(&mut self, obj: &Obj<'a>, keys: &[&str], required: bool) -> Option<Obj<'a>> {
        let key = keys[0];
        match Self::lookup(obj, keys) {
            None => {
                self.missing(obj, key, required);
                None
            }
            Some(Value::Object(map)) => Some(Obj {
                map,
                path: Self::name(obj, key),
            }),
            Some(_) => {
                self.error(Some(obj), key, "must be an object");
                None
            }
        }
    }

    /// Every object of an array.
    pub fn objects<'a>(&mut self, obj: &Obj<'a>, key: &str, required: bool) -> Vec<Obj<'a>> {
        match Self::lookup(obj, &[key]) {
            None => {
                self.missing(obj, key, required);
                Vec::new()
            }
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::Object(map) => out.push(Obj {
                            map,
                            path: format!("{}[{i}]", Self::name(obj, key)),
                        }),
                        _ => self.error(Some(obj), &format!("{key}[{i}]"), "must be an object"),
                    }
                }
                out
            }
            Some(_) => {
                self.error(Some(obj), key, "must be an array");
                Vec::new()
            }
        }
    }

    /// Whether `key` is present (and not null).
    pub fn has(&self, obj: &Obj<'_>, key: &str) -> bool {
        Self::lookup(obj, &[key]).is_some()
    }

    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Ok` when nothing was wrong, else a 400 naming every bad field.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// RFC 3339; ISO 8601 with an offset without its colon (`+0000`), or without an offset
/// (UTC), or a date alone (midnight UTC); or epoch milliseconds, as a number or a string.
fn parse_timestamp(value: &Value) -> Option<DateTime<FixedOffset>> {
    let utc = |t: DateTime<Utc>| t.fixed_offset();
    let from_millis = |ms: i64| Utc.timestamp_millis_opt(ms).single().map(utc);
    match value {
        Value::Number(n) => from_millis(n.as_i64()?),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Some(t);
            }
            if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
                return Some(t);
            }
            if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
                return Some(utc(t.and_utc()));
            }
            if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                return Some(utc(d.and_hms_opt(0, 0, 0)?.and_utc()));
            }
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                return from_millis(s.parse().ok()?);
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    crate::named_enum! {
        enum Size { Small, Medium, Large }
    }

    #[test]
    fn named_enums_accept_names_in_any_case_and_integers() {
        assert_eq!(Size::from_json(&json!("medium")), Some(Size::Medium));
        assert_eq!(Size::from_json(&json!(2)), Some(Size::Large));
        assert_eq!(Size::from_json(&json!(3)), None);
        assert_eq!(Size::from_json(&json!(-1)), None);
        assert_eq!(serde_json::to_value(Size::Small).unwrap(), json!("Small"));
        let parsed: Size = serde_json::from_value(json!("LARGE")).unwrap();
        assert_eq!(parsed, Size::Large);
    }

    #[test]
    fn every_bad_field_is_named_with_its_path() {
        let body = json!({"ownerid": "", "packageInfo": {"size": "huge", "weight": -1}, "expedited": "yes"});
        let mut v = Validator::new();
        let root = v.root(&body).unwrap();
        v.string(&root, &["ownerId"], true);
        v.boolean(&root, "expedited");
        let info = v.object(&root, &["packageInfo"], true).unwrap();
        v.string(&info, &["packageId"], true);
        v.named::<Size>(&info, "size", true);
        v.number(&info, "weight", 0.0, false);
        v.timestamp(&root, "pickupTime", false);
        let Err(ApiError::Validation(errors)) = v.finish() else {
            panic!()
        };
        let names: Vec<_> = errors.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ownerId",
                "expedited",
                "packageInfo.packageId",
                "packageInfo.size",
                "packageInfo.weight"
            ]
        );
    }

    #[test]
    fn aliases_and_case_insensitive_keys_are_accepted() {
        let body = json!({"dropoffLocation": "a", "PickupLocation": "b"});
        let mut v = Validator::new();
        let root = v.root(&body).unwrap();
        assert_eq!(
            v.string(&root, &["dropOffLocation", "dropoffLocation"], true)
                .as_deref(),
            Some("a")
        );
        assert_eq!(
            v.string(&root, &["pickupLocation"], true).as_deref(),
            Some("b")
        );
        assert!(v.finish().is_ok());
    }

    #[test]
    fn scalars_are_read_as_the_reference_binders_read_them() {
        let body = json!({
            "expedited": "TRUE", "flag": 0, "weight": " 2.5 ", "ownerId": 42, "tag": false,
            "millis": 1_764_237_600_000_i64, "millisText": "1764237600000",
            "noOffset": "2025-11-27T10:00:00.000", "jacksonOffset": "2025-11-27T10:00:00.000+0000",
            "dateOnly": "2026-11-27"
        });
        let mut v = Validator::new();
        let root = v.root(&body).unwrap();
        assert_eq!(v.boolean(&root, "expedited"), Some(true));
        assert_eq!(v.boolean(&root, "flag"), Some(false));
        assert_eq!(v.number(&root, "weight", 0.0, true), Some(2.5));
        assert_eq!(v.string(&root, &["ownerId"], true).as_deref(), Some("42"));
        assert_eq!(v.string(&root, &["tag"], false).as_deref(), Some("false"));
        let ten = DateTime::parse_from_rfc3339("2025-11-27T10:00:00Z").unwrap();
        for key in ["millis", "millisText", "noOffset", "jacksonOffset"] {
            assert_eq!(v.timestamp(&root, key, true), Some(ten), "{key}");
        }
        let midnight = DateTime::parse_from_rfc3339("2026-11-27T00:00:00Z").unwrap();
        assert_eq!(v.timestamp(&root, "dateOnly", true), Some(midnight));
        assert!(v.finish().is_ok());
    }

    #[test]
    fn what_no_binder_reads_is_still_named() {
        let body = json!({
            "expedited": "yes", "flag": 2, "weight": "heavy", "negative": "-1", "nan": "NaN",
            "ownerId": {"id": 1}, "when": "tomorrow", "fraction": 1.5
        });
        let mut v = Validator::new();
        let root = v.root(&body).unwrap();
        assert_eq!(v.boolean(&root, "expedited"), None);
        assert_eq!(v.boolean(&root, "flag"), None);
        assert_eq!(v.number(&root, "weight", 0.0, true), None);
        assert_eq!(v.number(&root, "negative", 0.0, true), None);
        assert_eq!(v.number(&root, "nan", 0.0, true), None);
        assert_eq!(v.string(&root, &["ownerId"], true), None);
        assert_eq!(v.timestamp(&root, "when", true), None);
        assert_eq!(v.timestamp(&root, "fraction", true), None);
        let Err(ApiError::Validation(errors)) = v.finish() else {
            panic!()
        };
        let names: Vec<_> = errors.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "expedited",
                "flag",
                "weight",
                "negative",
                "nan",
                "ownerId",
                "when",
                "fraction"
            ]
        );
    }

    #[test]
    fn non_object_bodies_are_rejected() {
        let mut v = Validator::new();
        assert!(v.root(&json!([1, 2])).is_none());
        assert!(v.finish().is_err());
    }
}
