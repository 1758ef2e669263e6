//! Minimal, allocation-light HTTP/1.1 response and SSE parsing.
//!
//! The generator holds thousands of streams open and parses up to millions of events a
//! second on one or two threads, so nothing here builds a full HTTP message or parses
//! JSON: the response head is read once, chunked bodies are de-chunked in place (slices
//! of the input are handed on, never copied), and the SSE scanner only looks for the
//! `seq` and `t` numbers in `data:` lines.

use std::fmt;

/// The longest response head accepted; anything bigger is not a server we benchmark.
pub const MAX_HEAD: usize = 16 * 1024;

/// A protocol error from the server: the stream cannot be read any further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub &'static str);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for WireError {}

/// What the generator needs from a response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub chunked: bool,
    pub content_length: Option<usize>,
    /// `Connection: close`: the publisher must reconnect before its next request.
    pub close: bool,
}

/// Parses a response head from the start of `buf`.
///
/// Returns `Ok(None)` while the head is incomplete, else the head and its length in
/// bytes (the body starts right after it).
pub fn parse_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, WireError> {
    let Some(end) = find_head_end(buf) else {
        return if buf.len() > MAX_HEAD {
            Err(WireError("response head too large"))
        } else {
            Ok(None)
        };
    };
    let head = &buf[..end];
    let mut lines = head.split(|&b| b == b'\n').map(trim_cr);
    let status_line = lines.next().unwrap_or_default();
    if !status_line.starts_with(b"HTTP/1.") {
        return Err(WireError("not an HTTP/1.x response"));
    }
    let status = status_line
        .get(9..12)
        .and_then(parse_u64)
        .and_then(|s| u16::try_from(s).ok())
        .ok_or(WireError("bad status line"))?;
    let mut parsed = ResponseHead {
        status,
        chunked: false,
        content_length: None,
        close: false,
    };
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            parsed.chunked = contains_ignore_case(value, b"chunked");
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let len = parse_u64(value).ok_or(WireError("bad content-length"))?;
            parsed.content_length = usize::try_from(len).ok();
        } else if name.eq_ignore_ascii_case(b"connection") {
            parsed.close = contains_ignore_case(value, b"close");
        }
    }
    Ok(Some((parsed, end)))
}

/// Index just past the blank line ending the head (`\r\n\r\n`, tolerating bare `\n`).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(off) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        let rest = &buf[nl + 1..];
        if rest.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        if rest.starts_with(b"\n") {
            return Some(nl + 2);
        }
        i = nl + 1;
    }
    None
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = s {
        s = rest;
    }
    s
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Parses a whole slice of ASCII digits (no sign, no blanks).
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then_some(())?;
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Incremental decoder for `Transfer-Encoding: chunked`.
///
/// Holds no buffer: chunk data is passed on as sub-slices of whatever was read, so a
/// chunk split across reads costs nothing extra.
#[derive(Debug, Default)]
pub struct Dechunker {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// At the start of a size line, before any hex digit.
    #[default]
    Size,
    /// Inside the hex size; the value so far.
    SizeDigits(u64),
    /// After `;` (chunk extensions, ignored) until the end of the size line.
    Extension(u64),
    /// Saw `\r` after the size line; expecting `\n`.
    SizeLf(u64),
    Data(u64),
    /// The CRLF after a chunk's data.
    DataCr,
    DataLf,
    /// The zero-size chunk was read: the body is complete (trailers are not read).
    Done,
}

impl Dechunker {
    /// Feeds raw body bytes; calls `out` with each run of de-chunked data.
    ///
    /// Returns `true` once the terminating zero-size chunk has been seen.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mut out: impl FnMut(&[u8]),
    ) -> Result<bool, WireError> {
        use ChunkState::*;
        while let Some((&b, rest)) = input.split_first() {
            match self.state {
                Data(left) => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                    out(&input[..take]);
                    input = &input[take..];
                    let left = left - take as u64;
                    self.state = if left == 0 { DataCr } else { Data(left) };
                    continue;
                }
                Done => return Ok(true),
                Size | SizeDigits(_) if b.is_ascii_hexdigit() => {
                    let so_far = if let SizeDigits(v) = self.state { v } else { 0 };
                    let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                    let v = so_far
                        .checked_mul(16)
                        .and_then(|v| v.checked_add(digit))
                        .ok_or(WireError("chunk size overflow"))?;
                    self.state = SizeDigits(v);
                }
                SizeDigits(v) if b == b';' || b == b' ' || b == b'\t' => self.state = Extension(v),
                SizeDigits(v) | Extension(v) if b == b'\r' => self.state = SizeLf(v),
                SizeDigits(v) | Extension(v) | SizeLf(v) if b == b'\n' => {
                    self.state = if v == 0 { Done } else { Data(v) };
                    if v == 0 {
                        return Ok(true);
                    }
                }
                Extension(_) => {}
                DataCr if b == b'\r' => self.state = DataLf,
                DataCr | DataLf if b == b'\n' => self.state = Size,
                _ => return Err(WireError("malformed chunked encoding")),
            }
            input = rest;
        }
        Ok(self.state == Done)
    }
}

/// One benchmark event as seen by a subscriber: its sequence number and the
/// unix time in microseconds at which the schedule said it was due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub seq: u64,
    pub due_us: u64,
}

/// How much of a line is kept when it spans two reads. Only the start of a `data:`
/// line matters (the payload puts `seq` and `t` first), so a long line costs no memory.
const LINE_PREFIX: usize = 256;

/// Incremental SSE scanner: splits the stream into lines (CRLF, CR or LF, even when a
/// CRLF is split across reads), and dispatches one [`Sample`] per event (at its blank
/// line, as the WHATWG parser does) whose `data:` carries `"seq"` and `"t"`.
/// Comments, `id:`, `event:`, `retry:` and events without those numbers are skipped.
#[derive(Debug, Default)]
pub struct SseScanner {
    /// Start of a line that began in an earlier read (at most [`LINE_PREFIX`] bytes).
    partial: Vec<u8>,
    /// The previous read ended in `\r`: a leading `\n` now belongs to that line break.
    skip_lf: bool,
    /// The sample of the event being read, dispatched at the blank line.
    pending: Option<Sample>,
}

impl SseScanner {
    /// Scans `input`, calling `on_sample` for each complete benchmark event.
    pub fn feed(&mut self, mut input: &[u8], mut on_sample: impl FnMut(Sample)) {
        if self.skip_lf {
            self.skip_lf = false;
            if let [b'\n', rest @ ..] = input {
                input = rest;
            }
        }
        while !input.is_empty() {
            let Some(end) = input.iter().position(|&b| b == b'\n' || b == b'\r') else {
                let room = LINE_PREFIX.saturating_sub(self.partial.len());
                self.partial
                    .extend_from_slice(&input[..room.min(input.len())]);
                return;
            };
            let after = if input[end] == b'\r' {
                match input.get(end + 1) {
                    Some(b'\n') => end + 2,
                    Some(_) => end + 1,
                    None => {
                        self.skip_lf = true;
                        end + 1
                    }
                }
            } else {
                end + 1
            };
            if self.partial.is_empty() {
                self.line(&input[..end], &mut on_sample);
            } else {
                let room = LINE_PREFIX.saturating_sub(self.partial.len());
                self.partial.extend_from_slice(&input[..room.min(end)]);
                let line = std::mem::take(&mut self.partial);
                self.line(&line, &mut on_sample);
                self.partial = line;
                self.partial.clear();
            }
            input = &input[after..];
        }
    }

    fn line(&mut self, line: &[u8], on_sample: &mut impl FnMut(Sample)) {
        if line.is_empty() {
            if let Some(sample) = self.pending.take() {
                on_sample(sample);
            }
            return;
        }
        // The first data line that carries a sample stands for the event.
        if self.pending.is_none()
            && let Some(value) = line.strip_prefix(b"data:")
        {
            self.pending = parse_sample(value);
        }
    }
}

/// Extracts `seq` and `t` from a payload such as `{"seq":12,"t":1712345678901234}`.
pub fn parse_sample(data: &[u8]) -> Option<Sample> {
    Some(Sample {
        seq: number_after(data, b"\"seq\":")?,
        due_us: number_after(data, b"\"t\":")?,
    })
}

/// The unsigned integer right after the first `key` in `hay` (blanks allowed between).
pub fn number_after(hay: &[u8], key: &[u8]) -> Option<u64> {
    let at = hay.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = trim(&hay[at..]);
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    parse_u64(&rest[..digits])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dechunk_all(pieces: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut d = Dechunker::default();
        let mut out = Vec::new();
        let mut done = false;
        for p in pieces {
            done = d
                .feed(p, |s| out.extend_from_slice(s))
                .expect("valid chunked body");
        }
        (out, done)
    }

    #[test]
    fn head_with_chunked_body() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n1a\r\n";
        let (head, len) = parse_head(raw).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert!(head.chunked);
        assert!(!head.close);
        assert_eq!(&raw[len..], b"1a\r\n");
    }

    #[test]
    fn head_incomplete_then_complete() {
        assert_eq!(
            parse_head(b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n").unwrap(),
            None
        );
        let (head, len) = parse_head(
            b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (head.status, head.content_length, head.close, head.chunked),
            (201, Some(5), true, false)
        );
        assert_eq!(len, 62);
    }

    #[test]
    fn head_rejects_garbage() {
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }

    #[test]
    fn dechunk_whole_and_split_everywhere() {
        let body: &[u8] = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        assert_eq!(dechunk_all(&[body]), (b"hello, world".to_vec(), true));
        for cut in 0..body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(
                dechunk_all(&[a, b]),
                (b"hello, world".to_vec(), true),
                "cut at {cut}"
            );
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(dechunk_all(&bytes), (b"hello, world".to_vec(), true));
    }

    #[test]
    fn dechunk_hex_sizes_and_open_stream() {
        let data = vec![b'x'; 0x1f];
        let mut body = b"1F\r\n".to_vec();
        body.extend_from_slice(&data);
        body.extend_from_slice(b"\r\n");
        assert_eq!(dechunk_all(&[&body]), (data, false));
    }

    #[test]
    fn dechunk_rejects_bad_framing() {
        let mut d = Dechunker::default();
        assert!(d.feed(b"zz\r\n", |_| {}).is_err());
        let mut d = Dechunker::default();
        assert!(d.feed(b"2\r\nabX", |_| {}).is_err());
    }

    fn scan(pieces: &[&[u8]]) -> Vec<Sample> {
        let mut s = SseScanner::default();
        let mut got = Vec::new();
        for p in pieces {
            s.feed(p, |x| got.push(x));
        }
        got
    }

    const S1: Sample = Sample {
        seq: 1,
        due_us: 100,
    };
    const S2: Sample = Sample {
        seq: 2,
        due_us: 200,
    };

    #[test]
    fn scanner_all_line_endings() {
        for eol in ["\n", "\r\n", "\r"] {
            let stream = format!(
                "retry: 3000{eol}{eol}: keep-alive{eol}{eol}id: 7{eol}event: bench{eol}data: {{\"seq\":1,\"t\":100}}{eol}{eol}data:{{\"seq\":2,\"t\":200}}{eol}{eol}"
            );
            assert_eq!(scan(&[stream.as_bytes()]), vec![S1, S2], "eol {eol:?}");
        }
    }

    #[test]
    fn scanner_split_at_every_byte() {
        for eol in ["\n", "\r\n", "\r"] {
            let stream = format!(
                "id: 1{eol}data: {{\"seq\":1,\"t\":100}}{eol}{eol}data: {{\"seq\":2,\"t\":200}}{eol}{eol}"
            );
            let bytes = stream.as_bytes();
            for cut in 0..bytes.len() {
                let (a, b) = bytes.split_at(cut);
                assert_eq!(scan(&[a, b]), vec![S1, S2], "eol {eol:?} cut {cut}");
            }
            let singles: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(scan(&singles), vec![S1, S2], "eol {eol:?} byte by byte");
        }
    }

    #[test]
    fn scanner_crlf_split_is_one_line_break() {
        // "\r" ends one read and "\n" starts the next: one line break, not a blank line
        // that would dispatch the event before its data line.
        let got = scan(&[b"id: 1\r", b"\ndata: {\"seq\":1,\"t\":100}\r\n\r\n"]);
        assert_eq!(got, vec![S1]);
    }

    #[test]
    fn scanner_waits_for_blank_line_and_keeps_long_lines_small() {
        let mut s = SseScanner::default();
        let mut got = Vec::new();
        let pad = "x".repeat(10_000);
        s.feed(
            format!("data: {{\"seq\":1,\"t\":100,\"zpad\":\"{pad}").as_bytes(),
            |x| got.push(x),
        );
        s.feed(format!("{pad}\"}}\n").as_bytes(), |x| got.push(x));
        assert!(got.is_empty(), "not dispatched before the blank line");
        assert!(
            s.partial.capacity() <= 2 * LINE_PREFIX,
            "a long line is not kept whole"
        );
        s.feed(b"\n", |x| got.push(x));
        assert_eq!(got, vec![S1]);
    }

    #[test]
    fn scanner_ignores_events_without_sample() {
        let got = scan(&[b"event: hub.gap\ndata: {\"lastEventId\":\"x\"}\n\ndata: null\n\n"]);
        assert!(got.is_empty());
    }

    #[test]
    fn sample_parser() {
        assert_eq!(
            parse_sample(b" {\"seq\": 42, \"t\":7}"),
            Some(Sample { seq: 42, due_us: 7 })
        );
        assert_eq!(parse_sample(b"{\"t\":7}"), None);
        assert_eq!(parse_sample(b"{\"seq\":-1,\"t\":7}"), None);
        assert_eq!(
            number_after(b"{\"success\":true,\"receivers\":1000}", b"\"receivers\":"),
            Some(1000)
        );
    }
}
