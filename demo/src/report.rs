//! The JSON messages of the demo: what a truck publishes on `fleet/trucks/<plate>` and what the
//! stream job publishes on `fleet/stats/directions`.

use crate::geo::{Heading, LatLon};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock in Unix milliseconds, the unit of every `timestamp` in these messages.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A truck's position report, published every few seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TruckReport {
    /// The truck's licence plate, also the last level of its topic.
    pub plate: String,
    /// Where it is.
    pub position: LatLon,
    /// The city it is driving to next; `None` while resting at a destination.
    pub next_waypoint: Option<Waypoint>,
    /// Speed in km/h (0 while resting).
    pub speed: f64,
    /// When the position was taken, Unix milliseconds.
    pub timestamp: u64,
}

/// A city on a truck's route.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Waypoint {
    /// The city's name.
    pub city: String,
    /// Latitude, degrees north.
    pub lat: f64,
    /// Longitude, degrees east.
    pub lon: f64,
}

impl TruckReport {
    /// The quadrant the truck is heading in (towards its next waypoint); `None` when it is
    /// not moving.
    pub fn heading(&self) -> Option<Heading> {
        let wp = self.next_waypoint.as_ref().filter(|_| self.speed > 0.0)?;
        Some(Heading::of_bearing(self.position.bearing_deg(LatLon { lat: wp.lat, lon: wp.lon })))
    }
}

/// Trucks counted by heading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directions {
    /// Heading north.
    #[serde(rename = "N")]
    pub n: u64,
    /// Heading east.
    #[serde(rename = "E")]
    pub e: u64,
    /// Heading south.
    #[serde(rename = "S")]
    pub s: u64,
    /// Heading west.
    #[serde(rename = "W")]
    pub w: u64,
}

impl Directions {
    /// Counts one more truck heading `h`.
    pub fn add(&mut self, h: Heading) {
        match h {
            Heading::N => self.n += 1,
            Heading::E => self.e += 1,
            Heading::S => self.s += 1,
            Heading::W => self.w += 1,
        }
    }
}

/// The stream job's record, produced to Kafka with key `fleet/stats/directions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectionStats {
    /// The window the counts cover, seconds back from `timestamp`.
    pub window_seconds: u64,
    /// Moving trucks by the heading of their latest report in the window.
    pub directions: Directions,
    /// Trucks whose latest report in the window says they are resting.
    pub parked: u64,
    /// Distinct trucks seen in the window.
    pub trucks: u64,
    /// Position reports per second read from Kafka since the previous record.
    pub messages_per_second: f64,
    /// Open MQTT connections over the brokers whose metrics the job reads; `None` when it
    /// reads none or none answered.
    pub connections: Option<u64>,
    /// When the record was made, Unix milliseconds.
    pub timestamp: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_has_the_documented_field_names() {
        let r = TruckReport {
            plate: "AB123CD".into(),
            position: LatLon { lat: 44.5, lon: 11.3 },
            next_waypoint: Some(Waypoint { city: "Firenze".into(), lat: 43.77, lon: 11.26 }),
            speed: 80.0,
            timestamp: 1,
        };
        let v = serde_json::to_value(&r).unwrap_or_else(|e| panic!("{e}"));
        for key in ["plate", "position", "nextWaypoint", "speed", "timestamp"] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert_eq!(r.heading(), Some(Heading::S));
        assert_eq!(TruckReport { speed: 0.0, ..r }.heading(), None);
    }
}
