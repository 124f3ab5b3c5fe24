//! The stream job's sliding window: the latest report of each truck seen in the last
//! `window` milliseconds, counted by heading.

use crate::geo::Heading;
use crate::report::{Directions, TruckReport};
use std::collections::HashMap;

/// Counts over the window at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Moving trucks by heading.
    pub directions: Directions,
    /// Resting trucks.
    pub parked: u64,
    /// Distinct trucks.
    pub trucks: u64,
}

/// The latest heading of each truck seen recently, bounded to `capacity` trucks.
#[derive(Debug)]
pub struct DirectionWindow {
    window_ms: u64,
    capacity: usize,
    latest: HashMap<String, (u64, Option<Heading>)>,
    /// Reports not kept because the window was full of other trucks.
    pub overflowed: u64,
}

impl DirectionWindow {
    /// A window of `window_ms` milliseconds holding at most `capacity` trucks.
    pub fn new(window_ms: u64, capacity: usize) -> DirectionWindow {
        DirectionWindow { window_ms, capacity, latest: HashMap::new(), overflowed: 0 }
    }

    /// Takes a report received at `now_ms` into account.
    pub fn observe(&mut self, report: &TruckReport, now_ms: u64) {
        let heading = report.heading();
        if let Some(entry) = self.latest.get_mut(&report.plate) {
            *entry = (now_ms, heading);
        } else if self.latest.len() < self.capacity {
            self.latest.insert(report.plate.clone(), (now_ms, heading));
        } else {
            self.overflowed += 1;
        }
    }

    /// Forgets trucks not heard of in the window before `now_ms` and counts the others.
    pub fn counts(&mut self, now_ms: u64) -> Counts {
        let since = now_ms.saturating_sub(self.window_ms);
        self.latest.retain(|_, (seen, _)| *seen >= since);
        let mut c = Counts { trucks: self.latest.len() as u64, ..Counts::default() };
        for (_, heading) in self.latest.values() {
            match heading {
                Some(h) => c.directions.add(*h),
                None => c.parked += 1,
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::LatLon;
    use crate::report::Waypoint;

    fn report(plate: &str, to_lat: f64, speed: f64) -> TruckReport {
        TruckReport {
            plate: plate.into(),
            position: LatLon { lat: 44.0, lon: 11.0 },
            next_waypoint: Some(Waypoint { city: "x".into(), lat: to_lat, lon: 11.0 }),
            speed,
            timestamp: 0,
        }
    }

    #[test]
    fn counts_the_latest_report_per_truck_within_the_window() {
        let mut w = DirectionWindow::new(10_000, 3);
        w.observe(&report("A", 45.0, 80.0), 0);
        w.observe(&report("A", 43.0, 80.0), 1_000); // A turned south
        w.observe(&report("B", 45.0, 80.0), 2_000);
        w.observe(&report("C", 45.0, 0.0), 3_000);
        w.observe(&report("D", 45.0, 80.0), 3_000); // over capacity
        let c = w.counts(5_000);
        assert_eq!((c.directions.n, c.directions.s, c.parked, c.trucks), (1, 1, 1, 3));
        assert_eq!(w.overflowed, 1);
        // A and B fall out of the window first.
        let c = w.counts(12_500);
        assert_eq!((c.trucks, c.parked), (1, 1));
    }
}
