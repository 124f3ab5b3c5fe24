//! MQTT topic names and topic filters (MQTT 3.1.1 §4.7, MQTT 5 §4.7 and §4.8.2).
//!
//! Topic *names* are what publishers send; topic *filters* are what subscribers
//! (and the configuration's mapping and authorization rules) use, and may contain
//! the wildcards `+` (exactly one level) and `#` (any number of trailing levels).
//! Everything here works on `&str` and never allocates on the success path,
//! because it runs for every PUBLISH and SUBSCRIBE.

use thiserror::Error;

/// Longest topic name or filter MQTT can encode: a UTF-8 string is length-prefixed
/// with a 16-bit byte count (MQTT-1.5.3 / MQTT-4.7.3-3).
pub const MAX_TOPIC_LEN: usize = 65535;

/// Prefix of an MQTT 5 shared subscription, `$share/{group}/{filter}`.
pub const SHARE_PREFIX: &str = "$share";

/// Why a topic name, topic filter or shared subscription was rejected.
///
/// Every message says what is wrong and where (byte offset or level number,
/// counting levels from 0), and quotes the input unless it may be huge.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopicError {
    /// The string is empty; MQTT-4.7.3-1 requires at least one character.
    #[error("must not be empty")]
    Empty,
    /// The string is longer than [`MAX_TOPIC_LEN`] bytes. The input is not quoted
    /// because it is, by definition, more than 64 KiB long.
    #[error("is {len} bytes long, the maximum is 65535")]
    TooLong {
        /// Length of the rejected string in bytes.
        len: usize,
    },
    /// The string contains U+0000, which MQTT-1.5.3-2 forbids.
    #[error("contains the null character U+0000 at byte {pos} in {input:?}")]
    NullChar {
        /// Byte offset of the first U+0000.
        pos: usize,
        /// The rejected string.
        input: String,
    },
    /// A topic name contains a wildcard (MQTT-3.3.2-2).
    #[error("wildcard '{wildcard}' at byte {pos} is not allowed in a topic name {input:?}")]
    WildcardInName {
        /// The wildcard found, `+` or `#`.
        wildcard: char,
        /// Byte offset of the first wildcard.
        pos: usize,
        /// The rejected topic name.
        input: String,
    },
    /// `#` is not the last level of a filter (MQTT-4.7.1-2).
    #[error("'#' must be the last level in {input:?}")]
    HashNotLast {
        /// The rejected filter.
        input: String,
    },
    /// A wildcard shares its level with other characters, as in `a/b#` or `a+`
    /// (MQTT-4.7.1-2 and MQTT-4.7.1-3).
    #[error("'{wildcard}' must occupy a whole level, but level {level} is {level_text:?} in {input:?}")]
    WildcardNotWholeLevel {
        /// The misplaced wildcard, `+` or `#`.
        wildcard: char,
        /// Index of the offending level, counting from 0.
        level: usize,
        /// Text of the offending level.
        level_text: String,
        /// The rejected filter.
        input: String,
    },
    /// `$share/{group}/...` with an empty group name (MQTT-4.8.2-1).
    #[error("shared subscription group must not be empty in {input:?}")]
    ShareGroupEmpty {
        /// The rejected shared subscription.
        input: String,
    },
    /// The share group contains `+` or `#` (MQTT-4.8.2-2).
    #[error("shared subscription group {group:?} must not contain '+' or '#' in {input:?}")]
    ShareGroupWildcard {
        /// The rejected group name.
        group: String,
        /// The rejected shared subscription.
        input: String,
    },
    /// `$share` or `$share/{group}` without a topic filter (MQTT-4.8.2-1).
    #[error("shared subscription {input:?} has no topic filter; expected $share/{{group}}/{{filter}}")]
    ShareMissingFilter {
        /// The rejected shared subscription.
        input: String,
    },
    /// The filter part of `$share/{group}/{filter}` is invalid.
    #[error("invalid filter in shared subscription {input:?}: {reason}")]
    ShareInvalidFilter {
        /// The rejected shared subscription.
        input: String,
        /// What is wrong with the filter part.
        reason: Box<TopicError>,
    },
}

/// Checks the rules every topic name and filter shares: non-empty, encodable
/// length, no U+0000.
fn validate_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong { len: s.len() });
    }
    if let Some(pos) = s.find('\0') {
        return Err(TopicError::NullChar { pos, input: s.to_owned() });
    }
    Ok(())
}

/// Validates a topic name as used in PUBLISH (and in retained messages and wills).
///
/// A topic name is non-empty, at most 65535 bytes, and contains neither wildcard
/// (`+`, `#`) nor U+0000. Empty levels (`a//b`, `/a`) and a leading `$` are allowed.
pub fn validate_topic_name(s: &str) -> Result<(), TopicError> {
    validate_common(s)?;
    if let Some((pos, wildcard)) = s.char_indices().find(|&(_, c)| c == '+' || c == '#') {
        return Err(TopicError::WildcardInName { wildcard, pos, input: s.to_owned() });
    }
    Ok(())
}

/// Whether a topic name or filter is at most `max_len` bytes long and has at most `max_levels`
/// `/`-separated levels (`limits.maxTopicLength`, `limits.maxTopicLevels`).
pub fn within(s: &str, max_len: u16, max_levels: u16) -> bool {
    s.len() <= usize::from(max_len) && s.split('/').count() <= usize::from(max_levels)
}

/// Validates a topic filter as used in SUBSCRIBE, mapping rules and authorization rules.
///
/// A filter is non-empty, at most 65535 bytes, has no U+0000, uses `+` only as a
/// whole level and `#` only as the whole last level. `#`, `+`, `/`, `a//b` and
/// `+/+/#` are valid; `a/#/b`, `a/b#` and `a+` are not. `$share/...` is *not*
/// special here: callers strip it with [`parse_shared`] first.
pub fn validate_filter(s: &str) -> Result<(), TopicError> {
    validate_common(s)?;
    let level_count = s.split('/').count();
    for (index, level) in s.split('/').enumerate() {
        if level == "#" {
            if index + 1 != level_count {
                return Err(TopicError::HashNotLast { input: s.to_owned() });
            }
        } else if level == "+" {
            // A whole-level `+` is fine anywhere.
        } else if let Some(wildcard) = level.chars().find(|&c| c == '+' || c == '#') {
            return Err(TopicError::WildcardNotWholeLevel {
                wildcard,
                level: index,
                level_text: level.to_owned(),
                input: s.to_owned(),
            });
        }
    }
    Ok(())
}

/// The one `$`-topic rule (MQTT-4.7.2-1): a topic whose first level starts with `$` (such as
/// `$SYS/...`) is not matched by a filter whose first level is a wildcard, so `#` and `+/x` do
/// not see it. Every matcher of the broker (this module, the subscription trie, the mapping
/// search) asks this function, so they cannot disagree.
pub fn hidden_from_wildcards(first_level: &str) -> bool {
    first_level.starts_with('$')
}

/// Whether a filter level is a wildcard (`+` or `#`).
fn is_wildcard(level: &str) -> bool {
    level == "+" || level == "#"
}

/// The first level of a topic or filter (`split` always yields one).
fn first_level(s: &str) -> &str {
    s.split('/').next().unwrap_or("")
}

/// Returns whether topic name `topic` matches topic filter `filter`.
///
/// Both arguments are assumed valid (see [`validate_topic_name`] and
/// [`validate_filter`]); for invalid input the result is unspecified but the
/// function does not panic. Rules implemented:
/// - levels are compared exactly, including empty levels (`a//b` ≠ `a/b`);
/// - `+` matches exactly one level, which may be empty;
/// - `#` matches the remaining levels, including none, so `a/#` matches `a`;
/// - [`hidden_from_wildcards`]: `#` does not see `$SYS/...`.
pub fn matches(filter: &str, topic: &str) -> bool {
    if hidden_from_wildcards(first_level(topic)) && is_wildcard(first_level(filter)) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            // `#` swallows whatever is left, including nothing (the parent level).
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether filter `outer` matches every topic that filter `inner` can match (both valid).
///
/// What an `allow` access rule needs before it grants a subscription: `devices/#` covers
/// `devices/+/status`, but `devices/+/status` does not cover `devices/#`, and `#` does not
/// cover `$SYS/#` ([`hidden_from_wildcards`]).
pub fn covers(outer: &str, inner: &str) -> bool {
    let inner_first = first_level(inner);
    if is_wildcard(first_level(outer)) && !is_wildcard(inner_first) && hidden_from_wildcards(inner_first) {
        return false;
    }
    let mut o = outer.split('/').peekable();
    let mut i = inner.split('/');
    let mut prefix = Prefix::default();
    loop {
        match (o.next(), i.next()) {
            (Some("#"), _) => return true,
            // `#` matches its parent level too, and `+` does not; but when the parent is no
            // topic name, `+/#` matches everything the `#` does.
            (Some("+"), Some("#")) => return prefix.is_no_topic() && o.peek() == Some(&"#"),
            (Some("+"), Some(level)) => prefix.push(level),
            (Some(a), Some(b)) if a == b && !is_wildcard(a) => prefix.push(a),
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether some topic name matches both filters `a` and `b` (both valid).
///
/// What a `deny` access rule needs: it refuses a subscription as soon as the two overlap, so a
/// wider filter cannot sidestep it. `#` and `$SYS/#` do not overlap ([`hidden_from_wildcards`]).
pub fn overlaps(a: &str, b: &str) -> bool {
    let (fa, fb) = (first_level(a), first_level(b));
    let hidden =
        |wild: &str, literal: &str| is_wildcard(wild) && !is_wildcard(literal) && hidden_from_wildcards(literal);
    if hidden(fa, fb) || hidden(fb, fa) {
        return false;
    }
    let mut x = a.split('/');
    let mut y = b.split('/');
    let mut prefix = Prefix::default();
    loop {
        match (x.next(), y.next()) {
            // A `#` matching its parent level: the witness is the levels so far.
            (Some("#"), None) | (None, Some("#")) | (None, None) => return !prefix.is_no_topic(),
            (Some("#"), _) | (_, Some("#")) => return true,
            (Some("+"), Some(level)) | (Some(level), Some("+")) => prefix.push(level),
            (Some(p), Some(q)) if p == q => prefix.push(p),
            _ => return false,
        }
    }
}

/// The topic levels two filters have matched so far, as far as [`covers`] and [`overlaps`] need
/// them: a prefix of no level, or of exactly one empty level, is no topic name (the latter is
/// the empty string).
#[derive(Default)]
struct Prefix {
    levels: usize,
    first_empty: bool,
}

impl Prefix {
    /// One more level; `level` is a literal the topic must have there, or `+` (any level: a
    /// non-empty one can be chosen, and `"+"` is non-empty, so it never counts as the empty level).
    fn push(&mut self, level: &str) {
        if self.levels == 0 {
            self.first_empty = level.is_empty();
        }
        self.levels += 1;
    }

    fn is_no_topic(&self) -> bool {
        self.levels == 0 || (self.levels == 1 && self.first_empty)
    }
}

/// A parsed MQTT 5 shared subscription `$share/{group}/{filter}`, borrowing from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFilter<'a> {
    /// The share name: messages matching `filter` are spread over the group's members.
    pub group: &'a str,
    /// The topic filter after the group; valid per [`validate_filter`].
    pub filter: &'a str,
}

/// Splits a shared subscription `$share/{group}/{filter}` into its parts.
///
/// Returns `Ok(None)` when `s` is an ordinary filter (its first level is not
/// `$share`); the caller then validates it with [`validate_filter`]. When the
/// first level is `$share`, the group must be non-empty and free of `+`, `#`
/// (and, by construction, `/`), and the filter must be valid; `$share` and
/// `$share/group` alone are errors rather than plain filters, because a client
/// sending them certainly meant a shared subscription.
pub fn parse_shared(s: &str) -> Result<Option<SharedFilter<'_>>, TopicError> {
    let rest = match s.strip_prefix(SHARE_PREFIX) {
        Some("") => return Err(TopicError::ShareMissingFilter { input: s.to_owned() }),
        Some(rest) => match rest.strip_prefix('/') {
            Some(rest) => rest,
            // `$shared/...` or `$sharex`: an ordinary filter that merely looks similar.
            None => return Ok(None),
        },
        None => return Ok(None),
    };
    validate_common(s)?;
    // The group ends at the first '/', so it can never contain one.
    let Some((group, filter)) = rest.split_once('/') else {
        return Err(TopicError::ShareMissingFilter { input: s.to_owned() });
    };
    if group.is_empty() {
        return Err(TopicError::ShareGroupEmpty { input: s.to_owned() });
    }
    if group.contains(['+', '#']) {
        return Err(TopicError::ShareGroupWildcard { group: group.to_owned(), input: s.to_owned() });
    }
    if filter.is_empty() {
        return Err(TopicError::ShareMissingFilter { input: s.to_owned() });
    }
    validate_filter(filter)
        .map_err(|reason| TopicError::ShareInvalidFilter { input: s.to_owned(), reason: Box::new(reason) })?;
    Ok(Some(SharedFilter { group, filter }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_and_levels_are_bounded() {
        assert!(within("a/b/c", 5, 3));
        assert!(!within("a/b/c", 4, 3), "5 bytes");
        assert!(!within("a/b/c", 5, 2), "3 levels");
        assert!(within("/", 1, 2) && !within("/", 1, 1), "an empty level counts");
        assert!(within("#", 1, 1));
    }

    #[test]
    fn topic_names_valid() {
        for name in
            ["a", "a/b/c", "/", "//", "/a", "a/", "a//b", "$SYS/broker", " ", "sport/tennis/player1", "ünïcödé/😀"]
        {
            assert_eq!(validate_topic_name(name), Ok(()), "{name:?}");
        }
        let longest = "a".repeat(MAX_TOPIC_LEN);
        assert_eq!(validate_topic_name(&longest), Ok(()));
    }

    #[test]
    fn topic_names_invalid() {
        assert_eq!(validate_topic_name(""), Err(TopicError::Empty));
        let too_long = "a".repeat(MAX_TOPIC_LEN + 1);
        assert_eq!(validate_topic_name(&too_long), Err(TopicError::TooLong { len: 65536 }));
        assert_eq!(
            validate_topic_name("a/+/b"),
            Err(TopicError::WildcardInName { wildcard: '+', pos: 2, input: "a/+/b".into() })
        );
        assert_eq!(
            validate_topic_name("a/b#"),
            Err(TopicError::WildcardInName { wildcard: '#', pos: 3, input: "a/b#".into() })
        );
        assert_eq!(
            validate_topic_name("#"),
            Err(TopicError::WildcardInName { wildcard: '#', pos: 0, input: "#".into() })
        );
        assert_eq!(validate_topic_name("a\0b"), Err(TopicError::NullChar { pos: 1, input: "a\0b".into() }));
    }

    #[test]
    fn filters_valid() {
        for filter in [
            "#",
            "+",
            "/",
            "a//b",
            "+/+/#",
            "+/tennis/#",
            "sport/#",
            "sport/tennis/+",
            "sport/+/player1",
            "/+",
            "+/",
            "$SYS/#",
            "a/b/c",
            "$share/g/a",
        ] {
            assert_eq!(validate_filter(filter), Ok(()), "{filter:?}");
        }
        assert_eq!(validate_filter(&"+/".repeat(32767)), Ok(()));
    }

    #[test]
    fn filters_invalid() {
        assert_eq!(validate_filter(""), Err(TopicError::Empty));
        assert_eq!(validate_filter(&"a".repeat(MAX_TOPIC_LEN + 1)), Err(TopicError::TooLong { len: 65536 }));
        assert_eq!(validate_filter("a/#/b"), Err(TopicError::HashNotLast { input: "a/#/b".into() }));
        assert_eq!(validate_filter("#/"), Err(TopicError::HashNotLast { input: "#/".into() }));
        assert_eq!(
            validate_filter("a/b#"),
            Err(TopicError::WildcardNotWholeLevel {
                wildcard: '#',
                level: 1,
                level_text: "b#".into(),
                input: "a/b#".into()
            })
        );
        assert_eq!(
            validate_filter("a+"),
            Err(TopicError::WildcardNotWholeLevel {
                wildcard: '+',
                level: 0,
                level_text: "a+".into(),
                input: "a+".into()
            })
        );
        // The spec's own examples (MQTT-4.7.1): "sport/tennis#" and "sport+" are invalid.
        assert!(validate_filter("sport/tennis#").is_err());
        assert!(validate_filter("sport+").is_err());
        assert!(validate_filter("sport/tennis/#/ranking").is_err());
        assert!(validate_filter("++").is_err());
        assert!(validate_filter("##").is_err());
        assert_eq!(validate_filter("a/\0"), Err(TopicError::NullChar { pos: 2, input: "a/\0".into() }));
    }

    #[test]
    fn error_messages_say_what_and_where() {
        let msg = |r: Result<(), TopicError>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(msg(validate_filter("a/#/b")), "'#' must be the last level in \"a/#/b\"");
        assert_eq!(msg(validate_filter("a/b#")), "'#' must occupy a whole level, but level 1 is \"b#\" in \"a/b#\"");
        assert_eq!(msg(validate_topic_name("x/+")), "wildcard '+' at byte 2 is not allowed in a topic name \"x/+\"");
        assert_eq!(msg(validate_topic_name("")), "must not be empty");
        assert_eq!(msg(validate_topic_name(&"a".repeat(70000))), "is 70000 bytes long, the maximum is 65535");
    }

    #[test]
    fn spec_multi_level_examples() {
        // MQTT-4.7.1.2: "sport/tennis/player1/#" matches these.
        let f = "sport/tennis/player1/#";
        assert!(matches(f, "sport/tennis/player1"));
        assert!(matches(f, "sport/tennis/player1/ranking"));
        assert!(matches(f, "sport/tennis/player1/score/wimbledon"));
        assert!(!matches(f, "sport/tennis/player2"));
        assert!(!matches(f, "sport/tennis"));
        // "sport/#" also matches the singular "sport", since # includes the parent level.
        assert!(matches("sport/#", "sport"));
        assert!(matches("sport/#", "sport/"));
        assert!(!matches("sport/#", "sports"));
        assert!(matches("#", "sport"));
        assert!(matches("#", "/"));
    }

    #[test]
    fn spec_single_level_examples() {
        // MQTT-4.7.1.3.
        assert!(matches("sport/tennis/+", "sport/tennis/player1"));
        assert!(matches("sport/tennis/+", "sport/tennis/player2"));
        assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(matches("sport/+", "sport/"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("+", "sport"));
        assert!(!matches("+", "sport/"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        assert!(matches("+/tennis/#", "sport/tennis"));
        assert!(matches("+/tennis/#", "sport/tennis/player1"));
        assert!(!matches("+/tennis/#", "sport/golf"));
        assert!(matches("sport/+/player1", "sport/tennis/player1"));
    }

    #[test]
    fn empty_levels_are_levels() {
        assert!(matches("a//b", "a//b"));
        assert!(!matches("a//b", "a/b"));
        assert!(!matches("a/b", "a//b"));
        assert!(matches("a/+/b", "a//b"));
        assert!(matches("/", "/"));
        assert!(!matches("/", "a"));
        assert!(matches("+/+", "/"));
        assert!(matches("/#", "/"));
        assert!(matches("/#", "/a/b"));
        assert!(!matches("/#", "a"));
        assert!(matches("a/", "a/"));
        assert!(!matches("a/", "a"));
    }

    #[test]
    fn exact_and_prefix_mismatches() {
        assert!(matches("a/b/c", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b/d"));
        assert!(!matches("A", "a"));
    }

    #[test]
    fn dollar_topics_hidden_from_leading_wildcards() {
        // MQTT-4.7.2-1 and the spec's examples.
        assert!(!matches("#", "$SYS/monitor/Clients"));
        assert!(!matches("+/monitor/Clients", "$SYS/monitor/Clients"));
        assert!(matches("$SYS/#", "$SYS/monitor/Clients"));
        assert!(matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
        assert!(!matches("+", "$SYS"));
        assert!(matches("$SYS/#", "$SYS"));
        // Only the first level is special.
        assert!(matches("a/+", "a/$b"));
        assert!(matches("a/#", "a/$b"));
        assert!(matches("#", "a/$b"));
    }

    #[test]
    fn filters_cover_and_overlap() {
        assert!(covers("devices/#", "devices/+/status") && covers("devices/#", "devices"));
        assert!(covers("devices/+/status", "devices/7/status"));
        assert!(!covers("devices/+/status", "devices/#") && !covers("devices/+/status", "devices/+/+"));
        assert!(!covers("devices/7", "devices/+"));
        assert!(overlaps("devices/secret/#", "devices/#") && overlaps("a/+/c", "a/b/+"));
        assert!(!overlaps("a/b", "a/c") && !overlaps("a/b/c", "a/b"));
    }

    #[test]
    fn dollar_rule_is_the_same_for_every_matcher() {
        // The disagreement this module ended: `#` matches no `$SYS` topic, so it neither covers
        // nor overlaps `$SYS/#`.
        assert!(!matches("#", "$SYS/x"));
        assert!(!covers("#", "$SYS/#") && !covers("+/#", "$SYS/x") && !covers("#", "$SYS"));
        assert!(!overlaps("#", "$SYS/#") && !overlaps("$SYS/+", "+/+"));
        assert!(covers("$SYS/#", "$SYS/x/+") && overlaps("$SYS/#", "$SYS/x"));
        // A leading wildcard on both sides: neither matches `$` topics, so nothing is lost.
        assert!(covers("#", "+/x") && overlaps("#", "+"));
        assert!(covers("a/#", "a/$b") && overlaps("+/$b", "a/+"));
    }

    /// Every topic of up to four levels over a small alphabet that includes a `$` level, an
    /// empty level and a level no filter names: a witness for any non-cover or overlap of the
    /// filters below (at most three levels) is among them.
    fn small_topics() -> Vec<String> {
        let alphabet = ["a", "b", "$x", "", "fresh"];
        let mut all: Vec<String> = Vec::new();
        let mut layer: Vec<String> = alphabet.iter().map(|l| l.to_string()).collect();
        for _ in 0..4 {
            all.extend(layer.iter().filter(|t| !t.is_empty()).cloned());
            layer = layer.iter().flat_map(|t| alphabet.iter().map(move |l| format!("{t}/{l}"))).collect();
        }
        all
    }

    /// Every valid filter of up to three levels over `a`, `$x`, the empty level, `+` and `#`.
    fn small_filters() -> Vec<String> {
        let alphabet = ["a", "$x", "", "+", "#"];
        let mut all: Vec<String> = Vec::new();
        let mut layer: Vec<String> = alphabet.iter().map(|l| l.to_string()).collect();
        for _ in 0..3 {
            all.extend(layer.iter().filter(|f| validate_filter(f).is_ok()).cloned());
            layer = layer
                .iter()
                .filter(|f| !f.ends_with('#'))
                .flat_map(|f| alphabet.iter().map(move |l| format!("{f}/{l}")))
                .collect();
        }
        all
    }

    #[test]
    fn cover_and_overlap_agree_with_matches_on_every_small_case() {
        let topics = small_topics();
        let filters = small_filters();
        let matched: Vec<Vec<bool>> = filters.iter().map(|f| topics.iter().map(|t| matches(f, t)).collect()).collect();
        for (i, a) in filters.iter().enumerate() {
            for (j, b) in filters.iter().enumerate() {
                let brute_covers = (0..topics.len()).all(|t| !matched[j][t] || matched[i][t]);
                let brute_overlaps = (0..topics.len()).any(|t| matched[i][t] && matched[j][t]);
                assert_eq!(covers(a, b), brute_covers, "covers({a:?}, {b:?})");
                assert_eq!(overlaps(a, b), brute_overlaps, "overlaps({a:?}, {b:?})");
            }
        }
    }

    #[test]
    fn shared_subscriptions() {
        assert_eq!(parse_shared("a/b"), Ok(None));
        assert_eq!(parse_shared("#"), Ok(None));
        assert_eq!(parse_shared("$SYS/#"), Ok(None));
        assert_eq!(parse_shared("$sharedthing/x"), Ok(None));
        assert_eq!(parse_shared("$shares/x/y"), Ok(None));
        assert_eq!(
            parse_shared("$share/consumers/sport/tennis/+"),
            Ok(Some(SharedFilter { group: "consumers", filter: "sport/tennis/+" }))
        );
        assert_eq!(parse_shared("$share/g/#"), Ok(Some(SharedFilter { group: "g", filter: "#" })));
        // The filter may itself start with an empty level.
        assert_eq!(parse_shared("$share/g//a"), Ok(Some(SharedFilter { group: "g", filter: "/a" })));
        assert_eq!(parse_shared("$share//a"), Err(TopicError::ShareGroupEmpty { input: "$share//a".into() }));
        assert_eq!(
            parse_shared("$share/g+/a"),
            Err(TopicError::ShareGroupWildcard { group: "g+".into(), input: "$share/g+/a".into() })
        );
        assert!(matches!(parse_shared("$share/#/a"), Err(TopicError::ShareGroupWildcard { .. })));
        for missing in ["$share", "$share/", "$share/g", "$share/g/"] {
            assert_eq!(
                parse_shared(missing),
                Err(TopicError::ShareMissingFilter { input: missing.into() }),
                "{missing:?}"
            );
        }
        assert_eq!(
            parse_shared("$share/g/a/#/b"),
            Err(TopicError::ShareInvalidFilter {
                input: "$share/g/a/#/b".into(),
                reason: Box::new(TopicError::HashNotLast { input: "a/#/b".into() })
            })
        );
        assert!(matches!(parse_shared("$share/g\0/a"), Err(TopicError::NullChar { pos: 8, .. })));
        assert_eq!(
            parse_shared("$share/g/a/#/b").err().map(|e| e.to_string()).unwrap_or_default(),
            "invalid filter in shared subscription \"$share/g/a/#/b\": '#' must be the last level in \"a/#/b\""
        );
    }
}
