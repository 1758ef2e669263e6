//! Which clients want which topics.
//!
//! Publishing to a topic must cost in proportion to its subscribers, not to everyone
//! connected. Exact topics are one hash lookup. Prefix patterns are kept in a map from
//! prefix to subscribers, together with the set of prefix lengths in use: matching a
//! topic probes its prefixes of just those lengths (one lookup each), so 10 subscribers
//! of a topic among 100,000 clients are found without looking at the other 99,990.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};

use crate::topic::{Topic, TopicFilter};

use super::client::ClientId;

#[derive(Debug, Default)]
pub struct TopicIndex {
    /// Every registered client, with or without topics: what a global broadcast reaches.
    clients: usize,
    exact: HashMap<Topic, HashSet<ClientId>>,
    prefixes: HashMap<Box<str>, HashSet<ClientId>>,
    /// Length in bytes of each prefix in `prefixes` → how many prefixes have it.
    prefix_lens: BTreeMap<usize, usize>,
}

impl TopicIndex {
    pub fn add(&mut self, client: ClientId, filters: &[TopicFilter]) {
        self.clients += 1;
        for filter in filters {
            match filter {
                TopicFilter::Exact(topic) => {
                    self.exact.entry(topic.clone()).or_default().insert(client);
                }
                TopicFilter::Prefix(prefix) => {
                    let set = self.prefixes.entry(prefix.clone()).or_default();
                    if set.is_empty() {
                        *self.prefix_lens.entry(prefix.len()).or_default() += 1;
                    }
                    set.insert(client);
                }
            }
        }
    }

    pub fn remove(&mut self, client: ClientId, filters: &[TopicFilter]) {
        self.clients -= 1;
        for filter in filters {
            match filter {
                TopicFilter::Exact(topic) => {
                    if let Some(set) = self.exact.get_mut(topic) {
                        set.remove(&client);
                        if set.is_empty() {
                            self.exact.remove(topic);
                        }
                    }
                }
                TopicFilter::Prefix(prefix) => {
                    if let Some(set) = self.prefixes.get_mut(prefix) {
                        set.remove(&client);
                        if set.is_empty() {
                            self.prefixes.remove(prefix);
                            if let Some(n) = self.prefix_lens.get_mut(&prefix.len()) {
                                *n -= 1;
                                if *n == 0 {
                                    self.prefix_lens.remove(&prefix.len());
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Calls `f` for every client with a filter matching `topic`: once per matching
    /// filter, so a caller that needs one call per client deduplicates.
    pub fn for_each_match(&self, topic: &Topic, mut f: impl FnMut(ClientId)) {
        self.for_each_set(topic, |set| set.iter().copied().for_each(&mut f));
    }

    /// How many clients an event published to `topics` reaches (all, when global).
    /// Called by publish handlers for every event, so it allocates nothing once warm:
    /// one matching set is counted as it is, and several are merged in a set kept per
    /// thread (which keeps the capacity of its largest use).
    pub fn count(&self, topics: &[Topic]) -> usize {
        if topics.is_empty() {
            return self.clients;
        }
        let (mut sets, mut only) = (0, 0);
        for topic in topics {
            self.for_each_set(topic, |set| {
                sets += 1;
                only = set.len();
            });
        }
        if sets <= 1 {
            return only;
        }
        thread_local! {
            static SEEN: RefCell<HashSet<ClientId>> = RefCell::default();
        }
        SEEN.with_borrow_mut(|seen| {
            for topic in topics {
                self.for_each_set(topic, |set| seen.extend(set));
            }
            let n = seen.len();
            seen.clear();
            n
        })
    }

    /// The subscriber set of each filter matching `topic`.
    fn for_each_set<'a>(&'a self, topic: &Topic, mut f: impl FnMut(&'a HashSet<ClientId>)) {
        let name = topic.as_str();
        if let Some(set) = self.exact.get(topic) {
            f(set);
        }
        for &len in self.prefix_lens.range(..=name.len()).map(|(len, _)| len) {
            if name.is_char_boundary(len)
                && let Some(set) = self.prefixes.get(&name[..len])
            {
                f(set);
            }
        }
    }

    /// The `n` most-subscribed topics and patterns (written `prefix*`), most first,
    /// and how many there are in all, for `/stats`. Called under the read lock that the
    /// hub's writes wait for, so only the `n` listed are copied out.
    pub fn most_subscribed(&self, n: usize) -> (Vec<(String, usize)>, usize) {
        let exact = self.exact.iter().map(|(t, s)| (t.as_str(), "", s.len()));
        let prefixes = self.prefixes.iter().map(|(p, s)| (&**p, "*", s.len()));
        let mut all: Vec<(&str, &str, usize)> = exact.chain(prefixes).collect();
        let total = all.len();
        let order = |a: &(&str, &str, usize), b: &(&str, &str, usize)| {
            b.2.cmp(&a.2).then_with(|| (a.0, a.1).cmp(&(b.0, b.1)))
        };
        if total > n && n > 0 {
            all.select_nth_unstable_by(n - 1, order);
        }
        all.truncate(n);
        all.sort_unstable_by(order);
        let listed = all
            .into_iter()
            .map(|(name, star, count)| (format!("{name}{star}"), count))
            .collect();
        (listed, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(list: &[&str]) -> Vec<TopicFilter> {
        list.iter()
            .map(|f| TopicFilter::parse(f).unwrap())
            .collect()
    }

    fn matches(index: &TopicIndex, topic: &str) -> Vec<u64> {
        let mut got = Vec::new();
        index.for_each_match(&Topic::parse(topic).unwrap(), |id| got.push(id.0));
        got.sort();
        got
    }

    #[test]
    fn finds_exact_and_prefix_subscribers_and_forgets_them() {
        let mut index = TopicIndex::default();
        index.add(ClientId(1), &filters(&["news.sport"]));
        index.add(ClientId(2), &filters(&["news.*"]));
        index.add(ClientId(3), &filters(&["*"]));
        index.add(ClientId(4), &filters(&["weather", "n*"]));
        assert_eq!(matches(&index, "news.sport"), [1, 2, 3, 4]);
        assert_eq!(matches(&index, "weather"), [3, 4]);
        assert_eq!(matches(&index, "other"), [3]);

        index.remove(ClientId(3), &filters(&["*"]));
        index.remove(ClientId(4), &filters(&["weather", "n*"]));
        assert_eq!(matches(&index, "news.sport"), [1, 2]);
        assert!(matches(&index, "weather").is_empty());
        assert_eq!(
            index.prefix_lens.len(),
            1,
            "unused prefix lengths are forgotten"
        );
    }

    #[test]
    fn counts_each_reached_client_once() {
        let mut index = TopicIndex::default();
        index.add(ClientId(1), &filters(&["a", "b", "*"]));
        index.add(ClientId(2), &filters(&["b"]));
        index.add(ClientId(3), &[]);
        let topics = |list: &[&str]| -> Vec<Topic> {
            list.iter().map(|t| Topic::parse(t).unwrap()).collect()
        };
        assert_eq!(index.count(&topics(&["a"])), 1);
        assert_eq!(index.count(&topics(&["a", "b"])), 2);
        assert_eq!(index.count(&topics(&["z"])), 1);
        assert_eq!(index.count(&[]), 3, "global: everyone");
        index.remove(ClientId(3), &[]);
        assert_eq!(index.count(&[]), 2);
    }

    #[test]
    fn prefixes_split_on_character_boundaries_only() {
        let mut index = TopicIndex::default();
        index.add(ClientId(1), &filters(&["é*"]));
        assert_eq!(matches(&index, "éa"), [1]);
        assert!(matches(&index, "ea").is_empty());
    }

    #[test]
    fn lists_the_most_subscribed_topics_and_patterns_first() {
        let mut index = TopicIndex::default();
        index.add(ClientId(1), &filters(&["a", "b.*", "c"]));
        index.add(ClientId(2), &filters(&["a", "c"]));
        index.add(ClientId(3), &filters(&["a"]));
        let (listed, total) = index.most_subscribed(2);
        assert_eq!(listed, [("a".to_owned(), 3), ("c".to_owned(), 2)]);
        assert_eq!(total, 3);
        assert_eq!(index.most_subscribed(5).0[2], ("b.*".to_owned(), 1));
    }
}
