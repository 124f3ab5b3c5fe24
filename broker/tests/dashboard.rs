//! The Grafana dashboard in the chart and the docs name only metrics the broker exports: a
//! renamed metric fails here, not as an empty panel in production.

use std::collections::BTreeSet;
use std::path::Path;
use tributary_broker::Metrics;

/// Every `tributary_…` word in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("tributary_") {
        let word: String =
            rest[i..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
        // `tributary_broker`, `tributary_e2e` and friends are crates, not metrics.
        let preceded_by_word = rest[..i].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '-');
        let a_path = rest[i + word.len()..].starts_with("::");
        // `tributary_…` in prose names no metric.
        if !preceded_by_word && !a_path && !word.ends_with('_') {
            names.insert(word.clone());
        }
        rest = &rest[i + word.len()..];
    }
    names
}

/// The series names the broker exposes: sample names of a registry with one label set used in
/// each labelled family (those show nothing before), histogram buckets, sums and counts included.
fn exported() -> BTreeSet<String> {
    let metrics = Metrics::new();
    metrics.listener("mqtt").inc();
    metrics.connack(0);
    metrics.set_lags([("mqtt-messages".to_owned(), 0)]);
    let text = metrics.render();
    let mut names: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    // A histogram's TYPE line names the family; its samples carry suffixes.
    for l in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let mut parts = l.split(' ');
        if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
            names.insert(name.to_owned());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    names
}

fn file(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_dashboard_references_only_exported_metrics() {
    let dashboard = file("charts/tributary/dashboards/tributary.json");
    let used = metric_names(&dashboard);
    assert!(used.len() >= 10, "the dashboard should chart the broker's metrics: {used:?}");
    let exported = exported();
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(unknown.is_empty(), "the dashboard uses metrics the broker does not export: {unknown:?}");
}

#[test]
fn the_readme_and_autoscaling_docs_name_only_exported_metrics() {
    let exported = exported();
    for doc in ["README.md", "docs/operator.md", "deploy/keda-scaledobject.yaml"] {
        let unknown: Vec<_> = metric_names(&file(doc)).into_iter().filter(|n| !exported.contains(n)).collect();
        assert!(unknown.is_empty(), "{doc} names metrics the broker does not export: {unknown:?}");
    }
}

#[test]
fn the_check_catches_an_unknown_name() {
    let names = metric_names(r#"{"expr": "rate(tributary_messages_sent_total[5m]) + tributary_nope"}"#);
    let exported = exported();
    assert!(exported.contains("tributary_messages_sent_total"));
    assert_eq!(names.difference(&exported).collect::<Vec<_>>(), ["tributary_nope"]);
}
