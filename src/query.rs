//! A strict reader of `application/x-www-form-urlencoded` query strings.
//!
//! `GET /events` repeats `topic`, and a malformed escape in a parameter it reads must
//! be refused (SPEC §3) rather than passed on as literal text, which is what lenient
//! decoders do. Parameters it does not read (cache-busters) are not decoded at all.

/// The query's `(name, value)` pairs in order, still encoded.
pub fn pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// Percent-decodes one name or value; `+` is a space.
pub fn decode(text: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = rest
                    .get(..2)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent-encoding in {text:?}"))?;
                bytes.push(hex);
                rest = &rest[2..];
            }
            _ => bytes.push(b),
        }
    }
    String::from_utf8(bytes).map_err(|_| format!("{text:?} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<Vec<(String, String)>, String> {
        pairs(query)
            .map(|(n, v)| Ok((decode(n)?, decode(v)?)))
            .collect()
    }

    #[test]
    fn repeated_names_keep_their_order_and_escapes_decode() {
        let pairs = parse("topic=a&topic=news.%2A&x&topic=b+c%20d&&_=1").unwrap();
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("topic", "a"),
                ("topic", "news.*"),
                ("x", ""),
                ("topic", "b c d"),
                ("_", "1")
            ]
        );
        assert_eq!(parse("t=%C3%A9").unwrap()[0].1, "é");
    }

    #[test]
    fn malformed_escapes_and_bad_utf8_are_refused() {
        assert!(parse("topic=%zz").is_err());
        assert!(parse("topic=%4").is_err());
        assert!(parse("topic=%+1").is_err());
        assert!(parse("topic=%FF").is_err());
    }
}
