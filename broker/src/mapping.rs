//! Mapping between MQTT topics and Kafka topics (`topics.mappings` in the configuration).
//!
//! A publish goes to the Kafka topic of the first rule with a pattern matching its
//! MQTT topic, or to the default Kafka topic. A subscriber's filter therefore has
//! to be served from every Kafka topic that *could* hold a matching message, and
//! [`TopicMapping::kafka_topics_for_filter`] computes exactly that set: reading an
//! unneeded Kafka topic costs a consumer and bandwidth for nothing, and missing a
//! needed one loses messages.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use thiserror::Error;

use crate::topic::{hidden_from_wildcards, matches, validate_filter, TopicError};

/// Why a set of mapping rules was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MappingError {
    /// A rule's MQTT pattern is not a valid topic filter.
    #[error("rule {rule} (kafka topic {kafka_topic:?}), pattern {pattern}: {reason}")]
    InvalidPattern {
        /// Index of the rule in the list, from 0.
        rule: usize,
        /// Index of the pattern within the rule, from 0.
        pattern: usize,
        /// Kafka topic of the rule, to help find it in a long list.
        kafka_topic: String,
        /// What is wrong with the pattern (the message quotes the pattern).
        reason: TopicError,
    },
}

/// Ordered MQTT-to-Kafka topic mapping rules plus the default Kafka topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMapping {
    /// `(kafka topic, MQTT filters)`, in priority order; all filters are valid.
    rules: Vec<(String, Vec<String>)>,
    /// Kafka topic for MQTT topics no rule matches.
    default: String,
    /// Results of [`kafka_topics_for_filter`](Self::kafka_topics_for_filter) for recent filters.
    /// Part of the mapping so that a new mapping (a config reload) starts with an empty cache.
    filter_cache: FilterCache,
}

/// Most filters a [`FilterCache`] remembers before it starts over.
const FILTER_CACHE_ENTRIES: usize = 4096;

/// Most filter bytes a [`FilterCache`] holds: filters may be 64 KiB long, and a client
/// should not be able to pin `FILTER_CACHE_ENTRIES` of those.
const FILTER_CACHE_BYTES: usize = 1 << 20;

/// A bounded memo of filter → Kafka topics. The search behind it is exact and usually quick,
/// but exponential for contrived rule sets, and thousands of clients subscribe to the same
/// few filters. When full it is simply cleared: simpler than LRU and good enough for a
/// working set that is small compared to the bound.
#[derive(Default)]
struct FilterCache {
    inner: Mutex<FilterCacheInner>,
}

#[derive(Default)]
struct FilterCacheInner {
    topics: HashMap<String, Arc<[String]>>,
    /// Sum of the key lengths.
    bytes: usize,
}

impl FilterCache {
    fn get(&self, filter: &str) -> Option<Arc<[String]>> {
        // The cache holds no invariant a panic could break, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).topics.get(filter).cloned()
    }

    fn insert(&self, filter: &str, topics: Arc<[String]>) {
        if filter.len() > FILTER_CACHE_BYTES {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.topics.len() >= FILTER_CACHE_ENTRIES || inner.bytes + filter.len() > FILTER_CACHE_BYTES {
            inner.topics.clear();
            inner.bytes = 0;
        }
        if inner.topics.insert(filter.to_owned(), topics).is_none() {
            inner.bytes += filter.len();
        }
    }
}

impl Clone for FilterCache {
    /// A clone starts empty: the cache is an optimisation, not part of the value.
    fn clone(&self) -> Self {
        FilterCache::default()
    }
}

impl PartialEq for FilterCache {
    /// Caches never make two mappings different.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for FilterCache {}

impl fmt::Debug for FilterCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.inner.lock().unwrap_or_else(PoisonError::into_inner).topics.len();
        f.debug_struct("FilterCache").field("entries", &len).finish()
    }
}

/// One level of a topic during the abstract search in
/// [`TopicMapping::kafka_topics_for_filter`].
///
/// Filters only ever compare a level against literal strings, so at any point of
/// the search every concrete level behaves like one of these: one of the
/// literals the live automata compare next, or a non-empty string equal to none
/// of them ("fresh"). A fresh first level starting with `$` is distinct because
/// `+`/`#` in the first level do not match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Symbol<'a> {
    Literal(&'a str),
    Fresh,
    FreshDollar,
}

impl Symbol<'_> {
    /// Whether a first level with this shape is hidden from leading wildcards (MQTT-4.7.2-1).
    fn starts_with_dollar(self) -> bool {
        match self {
            Symbol::Literal(s) => hidden_from_wildcards(s),
            Symbol::Fresh => false,
            Symbol::FreshDollar => true,
        }
    }
}

/// State of a filter automaton that can no longer match, whatever follows.
const DEAD: u32 = u32::MAX;

/// A topic filter as a deterministic automaton over levels.
///
/// State `i` means "the first `i` filter levels have matched the topic so far".
/// `#` keeps the state where it is (it absorbs any number of levels), so a
/// filter is deterministic and its state is a single integer.
struct FilterAutomaton<'a> {
    levels: Vec<&'a str>,
}

impl<'a> FilterAutomaton<'a> {
    fn new(filter: &'a str) -> Self {
        FilterAutomaton { levels: filter.split('/').collect() }
    }

    /// The literal the next topic level must equal, if the next filter level is
    /// not a wildcard and the automaton is alive.
    fn current_literal(&self, state: u32) -> Option<&'a str> {
        if state == DEAD {
            return None;
        }
        self.levels.get(state as usize).copied().filter(|l| *l != "+" && *l != "#")
    }

    /// Whether the automaton sits on a trailing `#`, accepting now and (from the
    /// second level on) after any further levels.
    fn parked_on_hash(&self, state: u32) -> bool {
        state != DEAD && self.levels.get(state as usize) == Some(&"#")
    }

    /// Next state after reading one topic level; `first` is true for the topic's first level.
    fn step(&self, state: u32, symbol: Symbol<'_>, first: bool) -> u32 {
        if state == DEAD {
            return DEAD;
        }
        // Filters are at most 65535 bytes, hence fewer than u32::MAX levels.
        let Some(&level) = self.levels.get(state as usize) else {
            // The filter is used up but the topic goes on.
            return DEAD;
        };
        let wildcard = level == "+" || level == "#";
        if first && wildcard && symbol.starts_with_dollar() {
            return DEAD;
        }
        match (level, symbol) {
            ("#", _) => state,
            ("+", _) => state + 1,
            (literal, Symbol::Literal(s)) if literal == s => state + 1,
            _ => DEAD,
        }
    }

    /// Whether a topic that drove the automaton into `state` matches the filter.
    fn accepts(&self, state: u32) -> bool {
        if state == DEAD {
            return false;
        }
        match self.levels.get(state as usize) {
            None => true,
            // A trailing `#` also matches zero further levels (`a/#` matches `a`).
            Some(&level) => level == "#",
        }
    }
}

impl TopicMapping {
    /// Builds a mapping from `(kafka topic, MQTT patterns)` rules in priority order
    /// and the default Kafka topic.
    ///
    /// Every pattern must be a valid topic filter; the error names the rule index,
    /// the pattern index and the pattern. Kafka topic names are not checked here
    /// (the configuration validates them with their key paths).
    pub fn new(rules: Vec<(String, Vec<String>)>, default: String) -> Result<Self, MappingError> {
        for (rule, (kafka_topic, patterns)) in rules.iter().enumerate() {
            for (pattern, filter) in patterns.iter().enumerate() {
                validate_filter(filter).map_err(|reason| MappingError::InvalidPattern {
                    rule,
                    pattern,
                    kafka_topic: kafka_topic.clone(),
                    reason,
                })?;
            }
        }
        Ok(TopicMapping { rules, default, filter_cache: FilterCache::default() })
    }

    /// The rules, `(kafka topic, MQTT patterns)`, in priority order.
    pub fn rules(&self) -> &[(String, Vec<String>)] {
        &self.rules
    }

    /// The Kafka topic for MQTT topics that no rule matches.
    pub fn default_topic(&self) -> &str {
        &self.default
    }

    /// The Kafka topic a message published to MQTT topic name `mqtt_topic` goes to:
    /// that of the first rule with a matching pattern, else the default.
    pub fn kafka_topic_for(&self, mqtt_topic: &str) -> &str {
        self.rules
            .iter()
            .find(|(_, patterns)| patterns.iter().any(|p| matches(p, mqtt_topic)))
            .map_or(self.default.as_str(), |(kafka_topic, _)| kafka_topic.as_str())
    }

    /// Every Kafka topic the mapping can write to: rule topics in rule order, then
    /// the default, without duplicates (a topic named twice keeps its first place).
    pub fn all_kafka_topics(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.rules
            .iter()
            .map(|(kafka_topic, _)| kafka_topic.as_str())
            .chain(std::iter::once(self.default.as_str()))
            .filter(|t| seen.insert(*t))
            .map(str::to_owned)
            .collect()
    }

    /// [`kafka_topics_for_filter`](Self::kafka_topics_for_filter), remembered per filter for
    /// the lifetime of this mapping (bounded; see `FilterCache`). What SUBSCRIBE uses.
    pub fn kafka_topics_for_filter_cached(&self, filter: &str) -> Arc<[String]> {
        if let Some(topics) = self.filter_cache.get(filter) {
            return topics;
        }
        // Computed outside the lock: a slow search must not hold up other subscribers. Two
        // concurrent misses on one filter both compute it, harmlessly.
        let topics: Arc<[String]> = self.kafka_topics_for_filter(filter).into();
        self.filter_cache.insert(filter, topics.clone());
        topics
    }

    /// Exactly the Kafka topics that can hold a message whose MQTT topic matches
    /// the (valid, non-shared) topic filter `filter`, ordered like
    /// [`all_kafka_topics`](Self::all_kafka_topics).
    ///
    /// Kafka topic `k` is included iff some topic name `T` matches `filter` and is
    /// mapped to `k` by [`kafka_topic_for`](Self::kafka_topic_for). `$share/...`
    /// must be stripped by the caller ([`crate::topic::parse_shared`]).
    ///
    /// Topic names are unbounded, so this searches a finite abstraction instead of
    /// enumerating them: a level matters only through which literal it equals (see
    /// `Symbol`), and the filter and every pattern are deterministic automata over
    /// such levels. A breadth-first search over the product of their states visits
    /// every combination of "filter matches so far / pattern `i` matches so far"
    /// that some topic can produce; each reachable state where the filter accepts
    /// contributes the Kafka topic of its first accepting pattern. The search ends
    /// because each automaton's state only grows until it is dead or parked on
    /// `#`. Its size is the number of distinct such combinations, small for
    /// realistic rules, but exponential in the worst case (many patterns that
    /// differ in independent positions).
    ///
    /// The empty string is a sequence of one empty level but not a valid topic
    /// name, so the search tracks whether the topic so far is exactly that and
    /// never counts it (it would otherwise match e.g. filter `+` and pattern
    /// `/#`). The search ignores the 65535-byte limit on topic names; witnesses
    /// are about as long as the longest filter involved, so this only matters
    /// for filters and patterns close to the limit themselves.
    pub fn kafka_topics_for_filter(&self, filter: &str) -> Vec<String> {
        let search = Search {
            filter: FilterAutomaton::new(filter),
            patterns: self
                .rules
                .iter()
                .flat_map(|(kafka_topic, patterns)| {
                    patterns.iter().map(move |p| (kafka_topic.as_str(), FilterAutomaton::new(p.as_str())))
                })
                .collect(),
        };
        let all_topics = self.all_kafka_topics();
        let mut needed: HashSet<&str> = HashSet::new();

        // The start state (zero levels read) is the empty string, not a topic name,
        // so it is neither evaluated nor recorded as visited: e.g. filter `#` with
        // pattern `#` comes back to the same automata states after one level, and
        // that state must still be evaluated.
        let start =
            SearchState { filter: 0, live: (0..search.patterns.len()).map(|i| (i, 0)).collect(), empty_topic: false };
        let mut visited: HashSet<SearchState> = HashSet::new();
        let mut queue: VecDeque<SearchState> = VecDeque::new();
        let mut enqueue = |state: SearchState, queue: &mut VecDeque<SearchState>| {
            if visited.insert(state.clone()) {
                queue.push_back(state);
            }
        };
        for next in search.successors(&start, true) {
            enqueue(next, &mut queue);
        }

        while let Some(state) = queue.pop_front() {
            if !state.empty_topic && search.filter.accepts(state.filter) {
                // `live` is in priority order, so the first accepting entry decides.
                let kafka_topic = state
                    .live
                    .iter()
                    .find(|&&(i, s)| search.patterns[i].1.accepts(s))
                    .map_or(self.default.as_str(), |&(i, _)| search.patterns[i].0);
                needed.insert(kafka_topic);
                if needed.len() == all_topics.len() {
                    // Nothing more can be added; skip the rest of the search.
                    break;
                }
            }
            for next in search.successors(&state, false) {
                enqueue(next, &mut queue);
            }
        }

        all_topics.into_iter().filter(|t| needed.contains(t.as_str())).collect()
    }
}

/// The automata of one [`TopicMapping::kafka_topics_for_filter`] call.
struct Search<'a> {
    /// The subscriber's filter.
    filter: FilterAutomaton<'a>,
    /// Every rule pattern in priority order, with the Kafka topic of its rule.
    /// `SearchState::live` refers to patterns by index into this list.
    patterns: Vec<(&'a str, FilterAutomaton<'a>)>,
}

/// A node of the search: the automata states after reading some topic levels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SearchState {
    /// State of the subscriber's filter; never [`DEAD`] in a queued state.
    filter: u32,
    /// `(pattern index, state)` of the patterns that can still decide the
    /// mapping, in priority order. Dead patterns are dropped, and so is every
    /// pattern after one parked on `#` (which accepts every extension), so that
    /// states differing only in irrelevant patterns are the same node.
    live: Vec<(usize, u32)>,
    /// True only for the topic of exactly one empty level: the empty string,
    /// which is not a topic name, so it is extended but never counted (it would
    /// otherwise match, e.g., filter `+` and pattern `/#`).
    empty_topic: bool,
}

impl Search<'_> {
    /// States reachable from `state` by reading one more level; `first` when that
    /// is the topic's first level.
    ///
    /// Only levels equal to a literal the live automata are about to compare can
    /// behave differently from a fresh level, so those plus one fresh level (and,
    /// first, a fresh `$` level) cover every possible next level.
    fn successors(&self, state: &SearchState, first: bool) -> Vec<SearchState> {
        let symbols: Vec<Symbol<'_>> = match self.filter.current_literal(state.filter) {
            // Any other level kills the filter, and nothing after that can match it.
            Some(literal) => vec![Symbol::Literal(literal)],
            None => {
                let mut literals: Vec<&str> =
                    state.live.iter().filter_map(|&(i, s)| self.patterns[i].1.current_literal(s)).collect();
                literals.sort_unstable();
                literals.dedup();
                let mut symbols: Vec<Symbol<'_>> = literals.into_iter().map(Symbol::Literal).collect();
                symbols.push(Symbol::Fresh);
                if first {
                    symbols.push(Symbol::FreshDollar);
                }
                symbols
            }
        };

        let mut next_states = Vec::with_capacity(symbols.len());
        for symbol in symbols {
            let filter = self.filter.step(state.filter, symbol, first);
            if filter == DEAD {
                continue;
            }
            let mut live = Vec::with_capacity(state.live.len());
            for &(i, s) in &state.live {
                let automaton = &self.patterns[i].1;
                let s = automaton.step(s, symbol, first);
                if s == DEAD {
                    continue;
                }
                live.push((i, s));
                // From the second level on, `#` accepts every extension, so this
                // pattern wins whatever follows and later ones cannot matter.
                if automaton.parked_on_hash(s) {
                    break;
                }
            }
            next_states.push(SearchState { filter, live, empty_topic: first && symbol == Symbol::Literal("") });
        }
        next_states
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(rules: &[(&str, &[&str])], default: &str) -> TopicMapping {
        let rules = rules.iter().map(|(k, ps)| (k.to_string(), ps.iter().map(|p| p.to_string()).collect())).collect();
        TopicMapping::new(rules, default.to_string()).expect("valid test mapping")
    }

    /// The example from the brief: `k1: cars/speed/+`, `k2: cars/#`, default `d`.
    fn cars() -> TopicMapping {
        mapping(&[("k1", &["cars/speed/+"]), ("k2", &["cars/#"])], "d")
    }

    #[test]
    fn cached_filter_topics_agree_and_stay_bounded() {
        let m = cars();
        for filter in ["cars/#", "+/speed/+", "trains/#", "cars/#"] {
            assert_eq!(&m.kafka_topics_for_filter_cached(filter)[..], &m.kafka_topics_for_filter(filter)[..]);
        }
        assert_eq!(m.filter_cache.inner.lock().expect("lock").topics.len(), 3);
        // A clone is equal but starts with an empty cache.
        let copy = m.clone();
        assert_eq!(copy, m);
        assert!(copy.filter_cache.get("cars/#").is_none());

        for i in 0..FILTER_CACHE_ENTRIES + 10 {
            m.kafka_topics_for_filter_cached(&format!("x/{i}"));
        }
        assert!(m.filter_cache.inner.lock().expect("lock").topics.len() <= FILTER_CACHE_ENTRIES);
        let long = "y/".repeat(FILTER_CACHE_BYTES / 2) + "z";
        assert_eq!(&m.kafka_topics_for_filter_cached(&long)[..], ["d"]);
        let inner = m.filter_cache.inner.lock().expect("lock");
        assert!(inner.bytes <= FILTER_CACHE_BYTES && !inner.topics.contains_key(&long));
    }

    #[test]
    fn brief_example_publish() {
        let m = cars();
        assert_eq!(m.kafka_topic_for("cars/speed/1"), "k1");
        assert_eq!(m.kafka_topic_for("cars/location/1"), "k2");
        assert_eq!(m.kafka_topic_for("cars/speed/1/2"), "k2");
        assert_eq!(m.kafka_topic_for("trains/speed/1"), "d");
        assert_eq!(m.kafka_topic_for("cars"), "k2");
        assert_eq!(m.kafka_topic_for("cars/speed"), "k2");
        assert_eq!(m.kafka_topic_for("$SYS/cars"), "d");
    }

    #[test]
    fn brief_example_subscribe() {
        let m = cars();
        assert_eq!(m.kafka_topics_for_filter("cars/speed/+"), ["k1"]);
        assert_eq!(m.kafka_topics_for_filter("cars/#"), ["k1", "k2"]);
        assert_eq!(m.kafka_topics_for_filter("trains/#"), ["d"]);
        assert_eq!(m.kafka_topics_for_filter("#"), ["k1", "k2", "d"]);
        assert_eq!(m.kafka_topics_for_filter("cars/speed/1"), ["k1"]);
        // `cars/speed` itself and `cars/speed/1/2` go to k2.
        assert_eq!(m.kafka_topics_for_filter("cars/speed/#"), ["k1", "k2"]);
        assert_eq!(m.kafka_topics_for_filter("+/speed/+"), ["k1", "d"]);
        assert_eq!(m.kafka_topics_for_filter("cars/location/+"), ["k2"]);
        assert_eq!(m.kafka_topics_for_filter("cars"), ["k2"]);
        assert_eq!(m.kafka_topics_for_filter("+"), ["k2", "d"]);
        assert_eq!(m.kafka_topics_for_filter("+/+/+/+"), ["k2", "d"]);
        assert_eq!(m.kafka_topics_for_filter("/#"), ["d"]);
    }

    #[test]
    fn shadowed_rule_never_needed() {
        let m = mapping(&[("k1", &["a/#"]), ("k2", &["a/+"])], "d");
        assert_eq!(m.kafka_topics_for_filter("a/+"), ["k1"]);
        assert_eq!(m.kafka_topics_for_filter("#"), ["k1", "d"]);
        assert_eq!(m.kafka_topics_for_filter("+/+"), ["k1", "d"]);
        assert_eq!(m.kafka_topic_for("a/x"), "k1");
    }

    #[test]
    fn dollar_topics_go_to_default_unless_a_rule_names_them() {
        let m = cars();
        assert_eq!(m.kafka_topics_for_filter("$SYS/#"), ["d"]);
        assert_eq!(m.kafka_topics_for_filter("$SYS/+/x"), ["d"]);

        // A leading wildcard in a rule does not capture `$` topics either.
        let m = mapping(&[("k1", &["#"])], "d");
        assert_eq!(m.kafka_topics_for_filter("$SYS/#"), ["d"]);
        assert_eq!(m.kafka_topics_for_filter("#"), ["k1"]);
        assert_eq!(m.kafka_topic_for("$SYS/x"), "d");

        let m = mapping(&[("sys", &["$SYS/#"]), ("k1", &["#"])], "d");
        assert_eq!(m.kafka_topics_for_filter("$SYS/#"), ["sys"]);
        assert_eq!(m.kafka_topics_for_filter("$SYS"), ["sys"]);
        assert_eq!(m.kafka_topics_for_filter("#"), ["k1"]);
        assert_eq!(m.kafka_topics_for_filter("$OTHER/#"), ["d"]);
    }

    #[test]
    fn empty_levels() {
        let m = mapping(&[("k1", &["/+"]), ("k2", &["a//b"])], "d");
        assert_eq!(m.kafka_topic_for("/x"), "k1");
        assert_eq!(m.kafka_topic_for("/"), "k1");
        assert_eq!(m.kafka_topic_for("a//b"), "k2");
        assert_eq!(m.kafka_topic_for("a/b"), "d");
        assert_eq!(m.kafka_topics_for_filter("+/+"), ["k1", "d"]);
        assert_eq!(m.kafka_topics_for_filter("a/+/b"), ["k2", "d"]);
        assert_eq!(m.kafka_topics_for_filter("/"), ["k1"]);

        // `/#` matches the sequence of one empty level, but that is the empty
        // string, not a topic name; every real topic `+` matches is a fresh level.
        let m = mapping(&[("k1", &["/#"])], "d");
        assert_eq!(m.kafka_topics_for_filter("+"), ["d"]);
        assert_eq!(m.kafka_topics_for_filter("#"), ["k1", "d"]);
    }

    #[test]
    fn hash_parent_level_and_multiple_patterns() {
        let m = mapping(&[("k1", &["x/y", "a/#"]), ("k2", &["+"])], "d");
        // `a/#` matches `a`, so rule 0 wins over `+` for the one-level topic "a".
        assert_eq!(m.kafka_topics_for_filter("a"), ["k1"]);
        assert_eq!(m.kafka_topics_for_filter("+"), ["k1", "k2"]);
        assert_eq!(m.kafka_topics_for_filter("x/+"), ["k1", "d"]);
        assert_eq!(m.kafka_topics_for_filter("x/y/#"), ["k1", "d"]);
    }

    #[test]
    fn repeated_kafka_topics_are_deduplicated_in_first_position() {
        let m = mapping(&[("k1", &["a"]), ("k2", &["b"]), ("k1", &["c"])], "k2");
        assert_eq!(m.all_kafka_topics(), ["k1", "k2"]);
        assert_eq!(m.kafka_topics_for_filter("c"), ["k1"]);
        assert_eq!(m.kafka_topics_for_filter("#"), ["k1", "k2"]);
        assert_eq!(m.kafka_topics_for_filter("z"), ["k2"]);
    }

    #[test]
    fn many_rules() {
        // 300 patterns: the search must stay small because most patterns die on
        // the first level and a pattern parked on `#` hides everything after it.
        let rules = (0..100)
            .map(|i| {
                (format!("k{i}"), vec![format!("site{i}/+/temp"), format!("site{i}/dev/+/x/#"), format!("+/area{i}/#")])
            })
            .collect();
        let m = TopicMapping::new(rules, "d".into()).expect("valid mapping");
        // site_i/area7/... goes to rule min(i, 7): `site{i}/+/temp` or `+/area7/#`.
        let k0_to_k7: Vec<String> = (0..8).map(|i| format!("k{i}")).collect();
        assert_eq!(m.kafka_topics_for_filter("+/area7/+"), k0_to_k7);
        assert_eq!(m.kafka_topics_for_filter("site42/area99/temp"), ["k42"]);
        assert_eq!(m.kafka_topics_for_filter("site42/dev/1/x"), ["k42"]);
        assert_eq!(m.kafka_topics_for_filter("site42/dev/1/y"), ["d"]);
        assert_eq!(m.kafka_topics_for_filter("+/+/temp").len(), 101);
        assert_eq!(m.kafka_topics_for_filter("#").len(), 101);
        assert_eq!(m.kafka_topics_for_filter("$SYS/#"), ["d"]);
    }

    #[test]
    fn no_rules() {
        let m = mapping(&[], "d");
        assert_eq!(m.all_kafka_topics(), ["d"]);
        assert_eq!(m.kafka_topic_for("a"), "d");
        assert_eq!(m.kafka_topics_for_filter("#"), ["d"]);
        assert_eq!(m.kafka_topics_for_filter("$SYS/#"), ["d"]);
    }

    #[test]
    fn all_kafka_topics_in_rule_order_then_default() {
        assert_eq!(cars().all_kafka_topics(), ["k1", "k2", "d"]);
        assert_eq!(cars().default_topic(), "d");
        assert_eq!(cars().rules().len(), 2);
    }

    #[test]
    fn invalid_pattern_names_rule_and_pattern() {
        let err = TopicMapping::new(
            vec![("k1".into(), vec!["a".into()]), ("k2".into(), vec!["b".into(), "a/#/b".into()])],
            "d".into(),
        )
        .expect_err("invalid pattern");
        assert_eq!(
            err,
            MappingError::InvalidPattern {
                rule: 1,
                pattern: 1,
                kafka_topic: "k2".into(),
                reason: TopicError::HashNotLast { input: "a/#/b".into() },
            }
        );
        assert_eq!(err.to_string(), "rule 1 (kafka topic \"k2\"), pattern 1: '#' must be the last level in \"a/#/b\"");
        assert!(TopicMapping::new(vec![("k".into(), vec!["".into()])], "d".into()).is_err());
    }

    /// SplitMix64: tiny deterministic PRNG so the cross-check is reproducible without crates.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// A random valid filter of 1..=3 levels over {a, b, $x, "", +} with an optional trailing `#`.
    fn random_filter(rng: &mut Rng) -> String {
        const LEVELS: [&str; 5] = ["a", "b", "$x", "", "+"];
        loop {
            let len = 1 + rng.below(3);
            let mut levels: Vec<&str> = (0..len).map(|_| LEVELS[rng.below(LEVELS.len())]).collect();
            if rng.below(4) == 0 {
                levels[len - 1] = "#";
            }
            let filter = levels.join("/");
            // A single empty level is the empty string, which is not a filter.
            if validate_filter(&filter).is_ok() {
                return filter;
            }
        }
    }

    /// All topic names of 1..=4 levels over {a, b, c, $x, $y, ""}; `c` and `$y` never
    /// occur in the random filters, so they play the fresh levels. Four levels
    /// suffice: filters have at most 3 levels, so every automaton is dead or parked
    /// on `#` after 3 levels and longer topics add no new behaviour.
    fn all_small_topics() -> Vec<String> {
        const LEVELS: [&str; 6] = ["a", "b", "c", "$x", "$y", ""];
        let mut topics: Vec<Vec<&str>> = LEVELS.iter().map(|l| vec![*l]).collect();
        let mut last = topics.clone();
        for _ in 1..4 {
            last = last
                .iter()
                .flat_map(|t| {
                    LEVELS.iter().map(move |l| {
                        let mut t = t.clone();
                        t.push(l);
                        t
                    })
                })
                .collect();
            topics.extend(last.iter().cloned());
        }
        topics
            .into_iter()
            .map(|t| t.join("/"))
            // Drops the one-level empty topic, which is not a valid topic name.
            .filter(|t| crate::topic::validate_topic_name(t).is_ok())
            .collect()
    }

    fn brute_force(m: &TopicMapping, filter: &str, topics: &[String]) -> Vec<String> {
        let needed: HashSet<&str> =
            topics.iter().filter(|t| matches(filter, t)).map(|t| m.kafka_topic_for(t)).collect();
        m.all_kafka_topics().into_iter().filter(|k| needed.contains(k.as_str())).collect()
    }

    #[test]
    fn randomized_cross_check_against_brute_force() {
        let topics = all_small_topics();
        assert_eq!(topics.len(), 6 + 36 + 216 + 1296 - 1);
        let mut rng = Rng(0x7472_6962_7574_6172);
        let kafka = ["k1", "k2", "k3", "d"];
        for case in 0..1500 {
            let rules: Vec<(String, Vec<String>)> = (0..rng.below(4))
                .map(|_| {
                    let k = kafka[rng.below(3)].to_string();
                    let patterns = (0..1 + rng.below(2)).map(|_| random_filter(&mut rng)).collect();
                    (k, patterns)
                })
                .collect();
            // Usually a separate default, sometimes one shared with a rule.
            let default = kafka[if rng.below(5) == 0 { 0 } else { 3 }].to_string();
            let m = TopicMapping::new(rules, default).expect("generated patterns are valid");
            for _ in 0..4 {
                let filter = random_filter(&mut rng);
                assert_eq!(
                    m.kafka_topics_for_filter(&filter),
                    brute_force(&m, &filter, &topics),
                    "case {case}: filter {filter:?}, mapping {m:?}"
                );
            }
        }
    }
}
