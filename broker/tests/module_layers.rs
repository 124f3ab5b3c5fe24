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
    &["codec", "topic", "metrics", "registry", "shutdown", "read_budget"],
    // Framing of one connection; the topic mapping the configuration compiles into.
    &["mapping", "connection"],
    &["config"],
    &["acl", "admission", "auth", "tls", "ws"],
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
    &["client", "reload", "admin", "rebalance"],
    &["server"],
    // One process from configuration to exit; the log and trace subscriber it reports to.
    &["process", "telemetry"],
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

/// The file's code without comments and without its `#[cfg(test)] mod … { … }` blocks.
fn code(source: &str) -> String {
    let mut out = Vec::new();
    let mut lines = source.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed == "#[cfg(test)]" && lines.peek().is_some_and(|l| l.trim_start().starts_with("mod ")) {
            // Skip the test module by its braces.
            let mut depth = 0i32;
            for l in lines.by_ref() {
                depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                if depth <= 0 && l.contains('}') {
                    break;
                }
            }
            continue;
        }
        if !trimmed.starts_with("//") {
            out.push(line);
        }
    }
    out.join("\n")
}

/// The identifier at the start of `s`.
fn ident(s: &str) -> String {
    s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

/// The top-level modules a file's code names, as `crate::x` or as `super::…::x` climbing to the
/// crate root; `depth` is how deep the file's module sits (`src/a.rs` 1, `src/a/b.rs` 2).
fn imports(source: &str, depth: usize) -> Vec<String> {
    let code = code(source);
    let mut found = Vec::new();
    let push_all = |rest: &str, found: &mut Vec<String>| {
        if let Some(group) = rest.strip_prefix('{') {
            // `{a, b::c}`: the first segment of each item (groups do not nest here).
            let end = group.find('}').unwrap_or(group.len());
            found.extend(group[..end].split(',').map(|item| ident(item.trim())).filter(|n| !n.is_empty()));
        } else {
            found.push(ident(rest));
        }
    };
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        push_all(rest, &mut found);
    }
    let mut rest = code.as_str();
    while let Some(i) = rest.find("super::") {
        // Count the `super::`s of this path.
        let mut ups = 0;
        while let Some(r) = rest[i..].strip_prefix(&"super::".repeat(ups + 1)) {
            ups += 1;
            if !r.starts_with("super::") {
                break;
            }
        }
        let after = &rest[i + "super::".len() * ups..];
        if ups >= depth {
            push_all(after, &mut found);
        }
        rest = after;
    }
    found.retain(|n| n != "super" && n != "self");
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
        let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        let module = parts.first().map(|f| f.trim_end_matches(".rs").to_string()).unwrap_or_default();
        // `src/a.rs` and `src/a/mod.rs` are module `a` (depth 1); `src/a/b.rs` is `a::b` (2).
        let depth = parts.len() - usize::from(parts.last().is_some_and(|l| l == "mod.rs"));
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            unknown.push(module);
            continue;
        };
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for used in imports(&text, depth) {
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
                  #[cfg(test)]\nmod tests {\n    use crate::client;\n}\nfn f() { crate::kafka::x(); }\n";
    assert_eq!(imports(source, 1), ["codec", "topic", "metrics", "kafka"]);
}

#[test]
fn super_paths_count_when_they_climb_to_the_crate_root() {
    let source = "use super::sibling::X;\nuse super::super::broker::Broker;\n";
    assert_eq!(imports(source, 2), ["broker"], "in src/a/b.rs, super:: stays inside a");
    assert_eq!(imports("use super::broker::Broker;\n", 1), ["broker"], "in src/a.rs, super:: is the crate");
}
