//! Topic names (what an event is published to) and topic filters (what a client
//! subscribes to). Both are parsed once at the boundary, so the hub only ever holds
//! values that are already valid.

/// A topic name is at most this many UTF-8 bytes (SPEC §4): long enough for any
/// hierarchical name, short enough that the topic index stays cheap to probe.
pub const MAX_TOPIC_BYTES: usize = 256;

/// A topic an event is published to: 1–256 bytes, no control character, no `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(Box<str>);

impl Topic {
    pub fn parse(text: &str) -> Result<Self, String> {
        check_name(text)?;
        if text.contains('*') {
            return Err("must not contain '*' (patterns are for subscribers)".into());
        }
        Ok(Self(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a subscriber asked for: an exact topic, or a prefix pattern (`news.*`, or `*`
/// for every topic, which is the empty prefix).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicFilter {
    Exact(Topic),
    Prefix(Box<str>),
}

impl std::fmt::Display for TopicFilter {
    /// As it was asked for: `news.sport`, `news.*`, `*`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(topic) => f.write_str(topic.as_str()),
            Self::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

impl TopicFilter {
    pub fn parse(text: &str) -> Result<Self, String> {
        check_name(text)?;
        match text.find('*') {
            None => Ok(Self::Exact(Topic(text.into()))),
            Some(star) if star == text.len() - 1 => Ok(Self::Prefix(text[..star].into())),
            Some(_) => Err("'*' is allowed only at the end of a pattern".into()),
        }
    }

    pub fn matches(&self, topic: &Topic) -> bool {
        match self {
            Self::Exact(exact) => exact == topic,
            Self::Prefix(prefix) => topic.as_str().starts_with(&**prefix),
        }
    }
}

/// A list of filters used as a rule rather than a subscription: the private topics, or
/// what a token may publish or subscribe to. Empty matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patterns(Box<[TopicFilter]>);

impl Patterns {
    pub fn parse(list: &[String]) -> Result<Self, String> {
        list.iter()
            .map(|text| TopicFilter::parse(text).map_err(|reason| format!("{text:?} {reason}")))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn matches(&self, topic: &Topic) -> bool {
        self.0.iter().any(|f| f.matches(topic))
    }

    /// Whether every one of `topics` is matched (true for none).
    pub fn covers(&self, topics: &[Topic]) -> bool {
        topics.iter().all(|t| self.matches(t))
    }

    /// Whether `*` is among them: every topic, and global broadcasts.
    pub fn covers_everything(&self) -> bool {
        self.0
            .iter()
            .any(|f| matches!(f, TopicFilter::Prefix(p) if p.is_empty()))
    }

    /// The topics among `topics` that these patterns match.
    pub fn select(&self, topics: &[Topic]) -> Box<[Topic]> {
        topics.iter().filter(|t| self.matches(t)).cloned().collect()
    }
}

fn check_name(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if text.len() > MAX_TOPIC_BYTES {
        return Err(format!("must be at most {MAX_TOPIC_BYTES} bytes"));
    }
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(s: &str) -> Topic {
        Topic::parse(s).unwrap()
    }

    #[test]
    fn patterns_match_by_prefix_and_star_matches_everything() {
        let news = TopicFilter::parse("news.*").unwrap();
        assert!(news.matches(&topic("news.sport")));
        assert!(news.matches(&topic("news.")));
        assert!(!news.matches(&topic("news")));
        assert!(!news.matches(&topic("weather")));
        let all = TopicFilter::parse("*").unwrap();
        assert_eq!(all, TopicFilter::Prefix("".into()));
        assert!(all.matches(&topic("anything")));
        let exact = TopicFilter::parse("stocks").unwrap();
        assert!(exact.matches(&topic("stocks")) && !exact.matches(&topic("stocks2")));
    }

    #[test]
    fn bad_names_are_refused_with_a_reason() {
        assert!(TopicFilter::parse("").is_err());
        assert!(TopicFilter::parse("a*b").is_err());
        assert!(TopicFilter::parse("**").is_err());
        assert!(TopicFilter::parse("a\u{0}").is_err());
        assert!(
            TopicFilter::parse("a\u{85}").is_err(),
            "C1 controls are Cc too"
        );
        assert!(TopicFilter::parse(&"x".repeat(257)).is_err());
        assert!(TopicFilter::parse(&"é".repeat(128)).is_ok(), "256 bytes");
        assert!(Topic::parse(&"é".repeat(129)).is_err(), "258 bytes");
        assert!(Topic::parse("news.*").is_err());
        assert!(Topic::parse("a b/c:d").is_ok());
    }
}
