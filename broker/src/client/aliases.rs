//! Server-to-client topic aliases (MQTT 5 §3.3.2.3.4): a topic the connection delivers again
//! goes out as an empty topic name plus a two-byte alias, which matters for the small messages
//! of device fleets.
//!
//! Bounded per connection: at most the client's Topic Alias Maximum and [`MAX_ALIASES`],
//! least recently used replaced. A topic gets an alias on its second delivery among the last
//! [`SEEN`] topics without one, so a subscriber whose topics never repeat soon (one backend
//! reading thousands of devices) pays nothing for the announcement. Nothing is allocated until
//! the first delivery of a connection that allows aliases.

use std::hash::{DefaultHasher, Hash, Hasher};

/// Aliases one connection may hold, whatever the client allows: each keeps a topic string.
pub(super) const MAX_ALIASES: u16 = 16;
/// Topics without alias remembered (by hash) to spot the ones that repeat.
const SEEN: usize = 32;

/// How a PUBLISH names its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Naming {
    /// The topic name alone.
    Plain,
    /// The topic name with the alias it has from this PUBLISH on (a new one, or the least
    /// recently used one given to this topic instead).
    Announce(u16),
    /// An empty topic name and the alias the client already knows.
    Alias(u16),
}

/// The aliases of one connection.
pub(super) struct OutboundAliases {
    /// The client's Topic Alias Maximum within ours; 0 = no aliases.
    max: u16,
    /// Boxed and created on first use: most connections never need it.
    table: Option<Box<Table>>,
}

#[derive(Default)]
struct Table {
    aliased: Vec<Entry>,
    /// Hashes of topics recently sent without alias (a ring).
    seen: [u64; SEEN],
    next_seen: usize,
    /// Deliveries so far: the clock of least recently used.
    tick: u64,
}

struct Entry {
    topic: Box<str>,
    alias: u16,
    used: u64,
}

fn hash(topic: &str) -> u64 {
    let mut h = DefaultHasher::new();
    topic.hash(&mut h);
    h.finish()
}

impl OutboundAliases {
    /// Aliases for a client accepting `client_max` of them (its CONNECT's Topic Alias Maximum).
    pub(super) fn new(client_max: u16) -> Self {
        OutboundAliases { max: client_max.min(MAX_ALIASES), table: None }
    }

    /// How the next PUBLISH of `topic` names it; nothing changes until [`Self::sent`].
    pub(super) fn choose(&self, topic: &str) -> Naming {
        let Some(t) = self.table.as_deref() else { return Naming::Plain };
        if let Some(e) = t.aliased.iter().find(|e| *e.topic == *topic) {
            return Naming::Alias(e.alias);
        }
        if !t.seen.contains(&hash(topic)) {
            return Naming::Plain;
        }
        if t.aliased.len() < usize::from(self.max) {
            // Aliases are handed out 1, 2, … and never given back, so the next is len + 1.
            return Naming::Announce(t.aliased.len() as u16 + 1);
        }
        match t.aliased.iter().min_by_key(|e| e.used) {
            Some(lru) => Naming::Announce(lru.alias),
            None => Naming::Plain,
        }
    }

    /// Records that a PUBLISH of `topic` named as `naming` was queued for the client (only
    /// then: an alias the client never saw announced must not be used).
    pub(super) fn sent(&mut self, topic: &str, naming: Naming) {
        if self.max == 0 {
            return;
        }
        let t = self.table.get_or_insert_with(Box::default);
        t.tick += 1;
        let tick = t.tick;
        match naming {
            Naming::Plain => {
                t.seen[t.next_seen] = hash(topic);
                t.next_seen = (t.next_seen + 1) % SEEN;
            }
            Naming::Alias(alias) => {
                if let Some(e) = t.aliased.iter_mut().find(|e| e.alias == alias) {
                    e.used = tick;
                }
            }
            Naming::Announce(alias) => {
                // Forgotten as seen: replaced later, the topic earns an alias again by repeating.
                let h = hash(topic);
                t.seen.iter_mut().filter(|s| **s == h).for_each(|s| *s = 0);
                let entry = Entry { topic: topic.into(), alias, used: tick };
                match t.aliased.iter_mut().find(|e| e.alias == alias) {
                    Some(e) => *e = entry,
                    None => t.aliased.push(entry),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delivers `topic` once and returns how it was named.
    fn deliver(a: &mut OutboundAliases, topic: &str) -> Naming {
        let naming = a.choose(topic);
        a.sent(topic, naming);
        naming
    }

    #[test]
    fn a_repeated_topic_is_announced_on_its_second_delivery_then_aliased() {
        let mut a = OutboundAliases::new(10);
        assert_eq!(deliver(&mut a, "t/1"), Naming::Plain);
        assert_eq!(deliver(&mut a, "t/1"), Naming::Announce(1));
        assert_eq!(deliver(&mut a, "t/1"), Naming::Alias(1));
        assert_eq!(deliver(&mut a, "t/2"), Naming::Plain);
        assert_eq!(deliver(&mut a, "t/2"), Naming::Announce(2));
        assert_eq!(deliver(&mut a, "t/1"), Naming::Alias(1));
    }

    #[test]
    fn no_aliases_without_the_clients_consent_and_no_table_until_used() {
        let mut a = OutboundAliases::new(0);
        for _ in 0..3 {
            assert_eq!(deliver(&mut a, "t"), Naming::Plain);
        }
        assert!(a.table.is_none());
        assert!(OutboundAliases::new(5).table.is_none());
    }

    #[test]
    fn bounded_by_both_maxima_least_recently_used_replaced() {
        assert_eq!(OutboundAliases::new(u16::MAX).max, MAX_ALIASES);
        let mut a = OutboundAliases::new(2);
        for t in ["a", "a", "b", "b"] {
            deliver(&mut a, t);
        }
        assert_eq!(deliver(&mut a, "a"), Naming::Alias(1), "b is now the least recently used");
        deliver(&mut a, "c");
        assert_eq!(deliver(&mut a, "c"), Naming::Announce(2), "c takes b's alias");
        assert_eq!(deliver(&mut a, "b"), Naming::Plain, "b has to earn one again");
        assert_eq!(deliver(&mut a, "a"), Naming::Alias(1));
        assert_eq!(a.table.as_ref().map(|t| t.aliased.len()), Some(2));
    }

    #[test]
    fn an_alias_not_sent_is_not_used() {
        let mut a = OutboundAliases::new(4);
        deliver(&mut a, "t");
        assert_eq!(a.choose("t"), Naming::Announce(1));
        // That PUBLISH was dropped (too large for the client): announced again next time.
        assert_eq!(a.choose("t"), Naming::Announce(1));
    }

    #[test]
    fn topics_that_never_repeat_soon_cost_nothing() {
        let mut a = OutboundAliases::new(16);
        for round in 0..3 {
            for device in 0..100 {
                let t = format!("devices/{device}/telemetry");
                assert_eq!(deliver(&mut a, &t), Naming::Plain, "round {round}");
            }
        }
    }
}
