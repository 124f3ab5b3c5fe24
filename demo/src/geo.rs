//! Positions on the Earth: distances, bearings and compass headings.

use serde::{Deserialize, Serialize};

/// Mean Earth radius in kilometres.
const EARTH_KM: f64 = 6371.0;

/// A WGS84 position in degrees.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatLon {
    /// Latitude, degrees north.
    pub lat: f64,
    /// Longitude, degrees east.
    pub lon: f64,
}

impl LatLon {
    /// Great-circle distance to `other` in kilometres (haversine).
    pub fn distance_km(self, other: LatLon) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_KM * a.sqrt().asin()
    }

    /// Initial bearing towards `other`, degrees clockwise from north in `[0, 360)`.
    pub fn bearing_deg(self, other: LatLon) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dl = (other.lon - self.lon).to_radians();
        let y = dl.sin() * p2.cos();
        let x = p1.cos() * p2.sin() - p1.sin() * p2.cos() * dl.cos();
        y.atan2(x).to_degrees().rem_euclid(360.0)
    }

    /// The point a fraction `t` (0..=1) of the way to `other` (linear in degrees: the road
    /// segments are a few tens of kilometres, where the difference does not show).
    pub fn lerp(self, other: LatLon, t: f64) -> LatLon {
        LatLon { lat: self.lat + (other.lat - self.lat) * t, lon: self.lon + (other.lon - self.lon) * t }
    }
}

/// One of the four compass quadrants a truck can be heading in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Heading {
    /// Bearing in [315°, 45°).
    N,
    /// Bearing in [45°, 135°).
    E,
    /// Bearing in [135°, 225°).
    S,
    /// Bearing in [225°, 315°).
    W,
}

impl Heading {
    /// The quadrant of a bearing in degrees (any value; taken modulo 360).
    pub fn of_bearing(deg: f64) -> Heading {
        match deg.rem_euclid(360.0) {
            d if (45.0..135.0).contains(&d) => Heading::E,
            d if (135.0..225.0).contains(&d) => Heading::S,
            d if (225.0..315.0).contains(&d) => Heading::W,
            _ => Heading::N,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milan_to_rome_is_about_480_km_south_east() {
        let milano = LatLon { lat: 45.4642, lon: 9.19 };
        let roma = LatLon { lat: 41.9028, lon: 12.4964 };
        let d = milano.distance_km(roma);
        assert!((470.0..490.0).contains(&d), "{d}");
        assert_eq!(Heading::of_bearing(milano.bearing_deg(roma)), Heading::S);
        assert_eq!(Heading::of_bearing(roma.bearing_deg(milano)), Heading::N);
    }

    #[test]
    fn quadrants() {
        assert_eq!(Heading::of_bearing(0.0), Heading::N);
        assert_eq!(Heading::of_bearing(44.9), Heading::N);
        assert_eq!(Heading::of_bearing(45.0), Heading::E);
        assert_eq!(Heading::of_bearing(180.0), Heading::S);
        assert_eq!(Heading::of_bearing(270.0), Heading::W);
        assert_eq!(Heading::of_bearing(-10.0), Heading::N);
        assert_eq!(Heading::of_bearing(359.0), Heading::N);
    }
}
