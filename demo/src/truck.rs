//! One simulated truck: drives the shortest route to a random city at its own speed, rests
//! there a random time, then picks a new destination.

use crate::geo::LatLon;
use crate::report::{TruckReport, Waypoint};
use crate::rng::Rng;
use crate::roads::{Leg, RoadGraph};

/// Cruising speeds, km/h, drawn per route.
const SPEED_KMH: (f64, f64) = (65.0, 95.0);
/// Rest at a destination, simulated seconds (20 to 90 minutes).
const REST_S: (f64, f64) = (1200.0, 5400.0);

#[derive(Clone, Debug)]
enum State {
    /// On `legs[leg]`, `km` kilometres into segment `seg` (points `seg` → `seg + 1`).
    Driving { legs: Vec<Leg>, leg: usize, seg: usize, km: f64 },
    /// At city `at` for `left_s` more simulated seconds.
    Resting { at: usize, left_s: f64 },
}

/// A truck and its driving state.
#[derive(Clone, Debug)]
pub struct Truck {
    /// Its licence plate.
    pub plate: String,
    rng: Rng,
    speed_kmh: f64,
    state: State,
}

impl Truck {
    /// A truck at a random city of `graph`, already some way along its first route (so a fleet
    /// starts spread over the roads, not bunched in the cities).
    pub fn new(plate: String, graph: &RoadGraph, seed: u64) -> Truck {
        let mut rng = Rng::new(seed);
        let at = rng.below(graph.cities.len());
        let mut t = Truck { plate, rng, speed_kmh: 0.0, state: State::Resting { at, left_s: 0.0 } };
        t.depart(graph, at);
        let head_start_s = t.rng.range(0.0, 5.0 * 3600.0);
        t.advance(graph, head_start_s);
        t
    }

    /// Picks a destination other than `at` and starts driving there.
    fn depart(&mut self, graph: &RoadGraph, at: usize) {
        let n = graph.cities.len();
        let dest = (at + 1 + self.rng.below(n.saturating_sub(1).max(1))) % n;
        self.speed_kmh = self.rng.range(SPEED_KMH.0, SPEED_KMH.1);
        self.state = match graph.route(at, dest) {
            Some(legs) if !legs.is_empty() => State::Driving { legs, leg: 0, seg: 0, km: 0.0 },
            _ => State::Resting { at, left_s: self.rng.range(REST_S.0, REST_S.1) },
        };
    }

    /// Moves the truck on by `seconds` of simulated time.
    pub fn advance(&mut self, graph: &RoadGraph, mut seconds: f64) {
        // Bounded: every pass either uses up the time or finishes a segment, a rest or a route.
        for _ in 0..100_000 {
            if seconds <= 0.0 {
                return;
            }
            match &mut self.state {
                State::Resting { at, left_s } => {
                    if *left_s > seconds {
                        *left_s -= seconds;
                        return;
                    }
                    seconds -= *left_s;
                    let at = *at;
                    self.depart(graph, at);
                }
                State::Driving { legs, leg, seg, km } => {
                    let points = &legs[*leg].points;
                    let seg_km = points[*seg].distance_km(points[*seg + 1]);
                    let left_km = seg_km - *km;
                    let can_km = self.speed_kmh * seconds / 3600.0;
                    if can_km < left_km {
                        *km += can_km;
                        return;
                    }
                    seconds -= left_km / self.speed_kmh * 3600.0;
                    *km = 0.0;
                    *seg += 1;
                    if *seg + 1 >= points.len() {
                        *seg = 0;
                        *leg += 1;
                        if *leg >= legs.len() {
                            let at = legs[legs.len() - 1].to;
                            self.state = State::Resting { at, left_s: self.rng.range(REST_S.0, REST_S.1) };
                        }
                    }
                }
            }
        }
    }

    /// Where the truck is.
    pub fn position(&self, graph: &RoadGraph) -> LatLon {
        match &self.state {
            State::Resting { at, .. } => graph.cities[*at].at,
            State::Driving { legs, leg, seg, km } => {
                let (a, b) = (legs[*leg].points[*seg], legs[*leg].points[*seg + 1]);
                let len = a.distance_km(b);
                a.lerp(b, if len > 0.0 { (*km / len).min(1.0) } else { 1.0 })
            }
        }
    }

    /// Whether the truck is on the road.
    pub fn driving(&self) -> bool {
        matches!(self.state, State::Driving { .. })
    }

    /// The report it publishes now (`timestamp`: Unix milliseconds).
    pub fn report(&self, graph: &RoadGraph, timestamp: u64) -> TruckReport {
        let (next_waypoint, speed) = match &self.state {
            State::Driving { legs, leg, .. } => {
                let city = &graph.cities[legs[*leg].to];
                let wp = Waypoint { city: city.name.clone(), lat: city.at.lat, lon: city.at.lon };
                (Some(wp), (self.speed_kmh * 10.0).round() / 10.0)
            }
            State::Resting { .. } => (None, 0.0),
        };
        TruckReport { plate: self.plate.clone(), position: self.position(graph), next_waypoint, speed, timestamp }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truck_moves_along_the_roads_and_rests_at_destinations() {
        let g = RoadGraph::shipped().unwrap_or_else(|e| panic!("{e:#}"));
        let mut t = Truck::new("AB123CD".into(), &g, 7);
        let (mut moved, mut rested, mut last) = (0, 0, t.position(&g));
        for _ in 0..2000 {
            t.advance(&g, 60.0);
            let p = t.position(&g);
            assert!((35.0..48.0).contains(&p.lat) && (6.0..19.0).contains(&p.lon), "{p:?} is not in Italy");
            if t.driving() {
                // At most 95 km/h: a minute covers under 1.6 km.
                assert!(p.distance_km(last) < 1.7, "jumped from {last:?} to {p:?}");
                moved += 1;
            } else {
                rested += 1;
                assert_eq!(t.report(&g, 0).speed, 0.0);
            }
            last = p;
        }
        assert!(moved > 100 && rested > 10, "moved {moved}, rested {rested}");
    }
}
