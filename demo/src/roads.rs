//! The road graph the trucks drive on: cities (GeoJSON `Point` features with a `name`) joined
//! by roads (`LineString` features with `from` and `to` city names), read from
//! `web/roads.geojson`, which the map UI draws too.

use crate::geo::LatLon;
use anyhow::{bail, Context};
use serde::Deserialize;

/// The road graph shipped with the crate.
pub const ROADS_GEOJSON: &str = include_str!("../web/roads.geojson");

/// A city: a place where trucks start, rest and turn.
#[derive(Clone, Debug)]
pub struct City {
    /// Its name, e.g. `Bologna`.
    pub name: String,
    /// Where it is.
    pub at: LatLon,
}

/// A road between two cities, drivable both ways.
#[derive(Clone, Debug)]
pub struct Road {
    /// Index of the city the geometry starts at.
    pub from: usize,
    /// Index of the city the geometry ends at.
    pub to: usize,
    /// The road's points from `from` to `to`, both included.
    pub points: Vec<LatLon>,
    /// Its length in kilometres along `points`.
    pub km: f64,
}

/// One leg of a route: a road driven from one city to the next.
#[derive(Clone, Debug)]
pub struct Leg {
    /// The city at the end of the leg.
    pub to: usize,
    /// The points driven, in driving order.
    pub points: Vec<LatLon>,
}

/// Cities and the roads between them.
#[derive(Clone, Debug)]
pub struct RoadGraph {
    /// Every city; roads refer to them by index.
    pub cities: Vec<City>,
    /// Every road.
    pub roads: Vec<Road>,
}

#[derive(Deserialize)]
struct Collection {
    features: Vec<Feature>,
}

#[derive(Deserialize)]
struct Feature {
    properties: Properties,
    geometry: Geometry,
}

#[derive(Deserialize)]
struct Properties {
    name: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type", content = "coordinates")]
enum Geometry {
    Point([f64; 2]),
    LineString(Vec<[f64; 2]>),
}

fn lat_lon([lon, lat]: [f64; 2]) -> LatLon {
    LatLon { lat, lon }
}

/// Length of a polyline in kilometres.
fn length_km(points: &[LatLon]) -> f64 {
    points.windows(2).map(|w| w[0].distance_km(w[1])).sum()
}

impl RoadGraph {
    /// The graph shipped with the crate.
    pub fn shipped() -> anyhow::Result<RoadGraph> {
        RoadGraph::parse(ROADS_GEOJSON).context("web/roads.geojson")
    }

    /// Reads a graph from GeoJSON; refuses roads naming unknown cities, roads whose ends are
    /// not at their cities (over 2 km away), and graphs where a city cannot be reached.
    pub fn parse(geojson: &str) -> anyhow::Result<RoadGraph> {
        let collection: Collection = serde_json::from_str(geojson)?;
        let mut cities = Vec::new();
        for f in &collection.features {
            if let Geometry::Point(p) = f.geometry {
                let name = f.properties.name.clone().context("a city without a name")?;
                cities.push(City { name, at: lat_lon(p) });
            }
        }
        let find = |name: &Option<String>| -> anyhow::Result<usize> {
            let name = name.as_deref().context("a road without from/to")?;
            cities.iter().position(|c| c.name == name).with_context(|| format!("unknown city {name:?}"))
        };
        let mut roads = Vec::new();
        for f in &collection.features {
            if let Geometry::LineString(coords) = &f.geometry {
                let (from, to) = (find(&f.properties.from)?, find(&f.properties.to)?);
                let points: Vec<LatLon> = coords.iter().copied().map(lat_lon).collect();
                let (Some(first), Some(last)) = (points.first(), points.last()) else { bail!("an empty road") };
                if first.distance_km(cities[from].at) > 2.0 || last.distance_km(cities[to].at) > 2.0 {
                    bail!("road {} → {} does not start and end at its cities", cities[from].name, cities[to].name);
                }
                let km = length_km(&points);
                roads.push(Road { from, to, points, km });
            }
        }
        let graph = RoadGraph { cities, roads };
        if graph.cities.len() < 2 {
            bail!("fewer than two cities");
        }
        for c in 1..graph.cities.len() {
            if graph.route(0, c).is_none() {
                bail!("{} cannot be reached from {}", graph.cities[c].name, graph.cities[0].name);
            }
        }
        Ok(graph)
    }

    /// The shortest route (Dijkstra over road lengths) from city `from` to city `to` as legs
    /// in driving order; `None` when `to` cannot be reached. Empty when `from == to`.
    pub fn route(&self, from: usize, to: usize) -> Option<Vec<Leg>> {
        let n = self.cities.len();
        let mut dist = vec![f64::INFINITY; n];
        let mut via: Vec<Option<usize>> = vec![None; n];
        let mut done = vec![false; n];
        dist[from] = 0.0;
        while let Some(u) =
            (0..n).filter(|&i| !done[i] && dist[i].is_finite()).min_by(|&a, &b| dist[a].total_cmp(&dist[b]))
        {
            done[u] = true;
            if u == to {
                break;
            }
            for (r, road) in self.roads.iter().enumerate() {
                let v = match (road.from == u, road.to == u) {
                    (true, _) => road.to,
                    (_, true) => road.from,
                    _ => continue,
                };
                if dist[u] + road.km < dist[v] {
                    dist[v] = dist[u] + road.km;
                    via[v] = Some(r);
                }
            }
        }
        if !dist[to].is_finite() {
            return None;
        }
        let mut legs = Vec::new();
        let mut at = to;
        while at != from {
            let road = &self.roads[via[at]?];
            let mut points = road.points.clone();
            let start = if road.to == at {
                road.from
            } else {
                points.reverse();
                road.to
            };
            legs.push(Leg { to: at, points });
            at = start;
        }
        legs.reverse();
        Some(legs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_graph_is_connected_and_sized_for_the_demo() {
        let g = RoadGraph::shipped().unwrap_or_else(|e| panic!("{e:#}"));
        assert!((15..=25).contains(&g.cities.len()), "{} cities", g.cities.len());
        assert!(g.roads.len() >= g.cities.len() - 1);
    }

    #[test]
    fn milan_to_naples_goes_through_bologna_florence_and_rome() {
        let g = RoadGraph::shipped().unwrap_or_else(|e| panic!("{e:#}"));
        let city = |n: &str| g.cities.iter().position(|c| c.name == n).unwrap_or_else(|| panic!("{n}"));
        let legs = g.route(city("Milano"), city("Napoli")).unwrap_or_else(|| panic!("no route"));
        let names: Vec<&str> = legs.iter().map(|l| g.cities[l.to].name.as_str()).collect();
        assert_eq!(names, ["Bologna", "Firenze", "Roma", "Napoli"]);
        // Each leg starts where the previous one ended.
        for w in legs.windows(2) {
            let (end, start) = (w[0].points.last().copied(), w[1].points.first().copied());
            assert_eq!(end, start);
        }
        assert!(g.route(city("Roma"), city("Roma")).is_some_and(|l| l.is_empty()));
    }
}
