//! Locations: parsing the free text clients send, and distances.
//!
//! Clients send locations as text. `"lat,lon"` or `"alt,lat,lon"` (decimal degrees, altitude
//! in feet) are parsed as given. Anything else ("my pickup", an address) is mapped
//! deterministically into the service area: the FNV-1a hash of the trimmed text picks a
//! point inside the area's bounding box, so the same text always lands on the same point,
//! and the distances and drone hours computed from it are stable. An absent location maps
//! like the empty string: the same fixed point inside the area.

use serde::{Deserialize, Serialize};

/// A point: altitude (feet), latitude and longitude (decimal degrees).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"altitude": 0.0, "latitude": 47.64, "longitude": -122.13}))]
pub struct Location {
    /// Feet; 0 when a request leaves it out.
    #[serde(default)]
    pub altitude: f64,
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub latitude: f64,
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub longitude: f64,
}

/// The bounding box free-text locations are mapped into.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceArea {
    pub south: f64,
    pub north: f64,
    pub west: f64,
    pub east: f64,
}

impl Default for ServiceArea {
    /// Fabrikam's service area around Redmond, Washington.
    fn default() -> Self {
        Self {
            south: 47.50,
            north: 47.80,
            west: -122.40,
            east: -121.95,
        }
    }
}

impl ServiceArea {
    /// Parses `lat,lon` or `alt,lat,lon`; maps any other text into the area.
    pub fn locate(&self, text: &str) -> Location {
        parse_coordinates(text).unwrap_or_else(|| self.map_text(text))
    }

    fn map_text(&self, text: &str) -> Location {
        let h = fnv1a(text.trim().as_bytes());
        // Two independent 32-bit halves pick latitude and longitude.
        let fx = f64::from((h >> 32) as u32) / f64::from(u32::MAX);
        let fy = f64::from(h as u32) / f64::from(u32::MAX);
        Location {
            altitude: 0.0,
            latitude: round6(self.south + fx * (self.north - self.south)),
            longitude: round6(self.west + fy * (self.east - self.west)),
        }
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// `lat,lon` or `alt,lat,lon` with latitude in -90..=90 and longitude in -180..=180.
pub fn parse_coordinates(text: &str) -> Option<Location> {
    let numbers: Vec<f64> = text
        .split(',')
        .map(|p| p.trim().parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect::<Option<_>>()?;
    let (altitude, latitude, longitude) = match numbers[..] {
        [lat, lon] => (0.0, lat, lon),
        [alt, lat, lon] => (alt, lat, lon),
        _ => return None,
    };
    ((-90.0..=90.0).contains(&latitude) && (-180.0..=180.0).contains(&longitude)).then_some(
        Location {
            altitude,
            latitude,
            longitude,
        },
    )
}

/// 64-bit FNV-1a: a stable hash (std's `DefaultHasher` may change between releases, which
/// would move every mapped location).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Great-circle distance in statute miles (haversine).
pub fn distance_miles(a: &Location, b: &Location) -> f64 {
    const EARTH_RADIUS_MILES: f64 = 3958.8;
    let (la1, la2) = (a.latitude.to_radians(), b.latitude.to_radians());
    let dlat = la2 - la1;
    let dlon = (b.longitude - a.longitude).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_MILES * h.sqrt().min(1.0).asin()
}

/// Reads a `{altitude, latitude, longitude}` object from a request body, naming each bad
/// coordinate.
pub fn read_location(
    v: &mut runtime::json::Validator,
    obj: &runtime::json::Obj<'_>,
    key: &str,
    required: bool,
) -> Option<Location> {
    let loc = v.object(obj, &[key], required)?;
    let altitude = v.number(&loc, "altitude", f64::MIN, false).unwrap_or(0.0);
    let mut coordinate = |key: &str, limit: f64| {
        let x = v.number(&loc, key, -limit, true)?;
        if x > limit {
            v.error(
                Some(&loc),
                key,
                format!("must be between -{limit} and {limit}"),
            );
            return None;
        }
        Some(x)
    };
    let latitude = coordinate("latitude", 90.0);
    let longitude = coordinate("longitude", 180.0);
    Some(Location {
        altitude,
        latitude: latitude?,
        longitude: longitude?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_are_parsed_with_and_without_altitude() {
        let area = ServiceArea::default();
        assert_eq!(
            area.locate("0,37.43,-78.65"),
            Location {
                altitude: 0.0,
                latitude: 37.43,
                longitude: -78.65
            }
        );
        assert_eq!(
            area.locate(" 47.6 , -122.3 "),
            Location {
                altitude: 0.0,
                latitude: 47.6,
                longitude: -122.3
            }
        );
    }

    #[test]
    fn free_text_maps_deterministically_into_the_area() {
        let area = ServiceArea::default();
        let a = area.locate("my pickup");
        assert_eq!(a, area.locate("  my pickup "));
        assert_ne!(a, area.locate("my dropoff"));
        for text in ["my pickup", "", "1,2,3,4", "95,10", "abc,def"] {
            let l = area.locate(text);
            assert!((area.south..=area.north).contains(&l.latitude), "{text}");
            assert!((area.west..=area.east).contains(&l.longitude), "{text}");
        }
    }

    #[test]
    fn distances_are_in_miles() {
        let seattle = Location {
            altitude: 0.0,
            latitude: 47.6062,
            longitude: -122.3321,
        };
        let redmond = Location {
            altitude: 0.0,
            latitude: 47.6740,
            longitude: -122.1215,
        };
        let d = distance_miles(&seattle, &redmond);
        assert!((d - 10.9).abs() < 0.3, "{d}");
        assert_eq!(distance_miles(&seattle, &seattle), 0.0);
    }
}
