//! The broker's modules form layers: each module uses only modules of lower layers, so there is
//! no import cycle and data flows one way (socket → codec → client → publisher → Kafka;
//! Kafka → reader → delivery → client → socket). This test reads the sources and fails when an
//! import climbs a layer, naming the file and the import. docs/design.md draws the same map.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Top-level modules of `broker/src` by layer, lowest first. A module may use modules of
/// lower layers only (not of its own layer: those are independent of each other).
const LAYERS: &[&[&str]] = &[
    // Vocabulary: the wire format, topic algebra, counters, the local connection table.
    &["codec", "topic", "metrics", "registry", "shutdown"],
    // Framing of one connection; the topic mapping the configuration compiles into.
    &["mapping", "connection"],
    &["config"],
    &["acl", "auth", "tls", "ws"],
    // Kafka records, nothing of MQTT.
    &["kafka"],
    // MQTT messages as Kafka records (the one record <-> message conversion).
    &["message"],
    // Services over Kafka.
    &["retained"],
    &["publisher", "delivery"],
    &["session"],
    // The process: shared state, connections, reload, HTTP, listeners.
    &["broker"],
    &["client", "reload", "admin"],
    &["server"],
    // One process from configuration to exit.
    &["process"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every `.rs` file below `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file's code (not its comments or unit tests) names as `crate::x`.
fn imports(source: &str) -> Vec<String> {
    let code: String = source
        .lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c}`: the first segment of each item (groups do not nest here).
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            found.push(name);
        }
    }
    found
}

#[test]
fn modules_use_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut violations: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut unknown = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap_or(file);
        let first = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            unknown.push(module);
            continue;
        };
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for used in imports(&text) {
            if used == module {
                continue;
            }
            match layer_of(&used) {
                Some(layer) if layer < own => {}
                _ => violations.entry(rel.display().to_string()).or_default().push(used),
            }
        }
    }
    unknown.sort();
    unknown.dedup();
    assert!(unknown.is_empty(), "modules missing from LAYERS (add them where they belong): {unknown:?}");
    assert!(violations.is_empty(), "imports from the same or a higher layer: {violations:#?}");
}

#[test]
fn the_import_scanner_sees_paths_and_groups_but_not_comments_or_tests() {
    let source = "use crate::codec::Packet;\nuse crate::{topic::matches, metrics};\n// crate::broker\n\
                  fn f() { crate::kafka::x(); }\n#[cfg(test)]\nmod tests { use crate::client; }\n";
    assert_eq!(imports(source), ["codec", "topic", "metrics", "kafka"]);
}
