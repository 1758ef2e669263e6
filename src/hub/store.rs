//! Durable history (SPEC §3 "Durable history"): the history kept in memory, also kept in
//! a redb file at `history_path`, loaded back at start.
//!
//! The hub never waits for the disk. It hands every event it keeps, and every event it
//! evicts, to a [`Writer`] over a channel that never blocks (its bytes are counted, and
//! publishers are refused with `503` while more than the publish backlog's budget waits
//! for the disk); the
//! writer's thread groups what arrives over `history_flush_ms` into one transaction,
//! so a publish costs no fsync of its own and a burst costs one. An event evicted
//! before its group was written is never written at all, so a history far smaller than
//! the publish rate keeps the file, and the work, bounded.
//!
//! Each event is keyed by its ledger reservation, which rises in the hub's (publish)
//! order, so the table reads back oldest first.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::topic::Topic;

use super::history::Entry;

/// Reservation number → one encoded [`Record`].
const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");

/// redb's page cache. The file is read once, at start, and otherwise only written:
/// redb's default (1 GiB) would only let a big history pin memory twice.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// The format of a record; a record of another version is refused as corrupt.
const FORMAT: u8 = 1;

/// Why the store cannot be used; shown after `sse.history_path: `.
#[derive(Debug)]
pub struct OpenError(String);

impl OpenError {
    pub fn new(path: &str, why: String) -> Self {
        Self(format!("{path}: {why}"))
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An opened store and the history it held.
pub struct Store {
    db: Database,
    path: PathBuf,
}

/// An event as the store keeps it. `private` is not stored: it is worked out again
/// from the `auth.private_topics` in force at the next start, so a topic made private
/// since is private in the replay too.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub key: u64,
    pub id: Box<str>,
    pub topics: Box<[Topic]>,
    pub frame: Bytes,
    /// When it was accepted, in milliseconds since the Unix epoch: unlike an
    /// `Instant`, it means the same after a restart, so a TTL keeps counting.
    pub at_unix_ms: u64,
    /// Whether the server chose the id: the newest such id seeds the id clock.
    pub server_id: bool,
}

impl Store {
    /// Opens `path`, creating it when missing (its directory must exist). Refuses a
    /// directory, a file that is not a redb database or fails its integrity check, and
    /// one another process has open; a refused file is left as it was.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let shown = path.display();
        let fail = |why: String| OpenError(format!("{shown}: {why}"));
        if path.is_dir() {
            return Err(fail("is a directory; give a file in it".into()));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(fail(format!(
                "its directory {} does not exist",
                dir.display()
            )));
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            // Checksums every page at open: a damaged file is refused instead of
            // trusted (a plain open may panic on one). The file is bounded like the
            // history, so this reads at most a few tens of MiB.
            .set_check_integrity_on_open(true)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    fail("is in use by another process (another ssehub running on it?)".into())
                }
                e => fail(format!("cannot open as a history store: {e}")),
            })?;
        // Nothing is written until there is something to keep: a file refused later
        // (a record that does not decode) is left as it was.
        Ok(Self {
            db,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every record, oldest first. A record that does not decode makes the store
    /// corrupt: nothing is loaded rather than a replay with holes.
    pub fn load(&self) -> Result<Vec<Record>, OpenError> {
        let fail = |why: String| OpenError(format!("{}: {why}", self.path.display()));
        let read = || -> Result<Vec<Record>, String> {
            let txn = self.db.begin_read().map_err(|e| e.to_string())?;
            let table = match txn.open_table(HISTORY) {
                Ok(table) => table,
                // A new file: its table is made by the first write.
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.to_string()),
            };
            let mut records = Vec::new();
            for row in table.iter().map_err(|e| e.to_string())? {
                let (key, value) = row.map_err(|e| e.to_string())?;
                let key = key.value();
                records.push(
                    decode(key, value.value())
                        .ok_or_else(|| format!("corrupt: record {key} does not decode"))?,
                );
            }
            Ok(records)
        };
        read().map_err(fail)
    }

    /// Starts the writer's thread, which owns the store from now on.
    /// `unwritten` counts the bytes of frames sent to it and not yet written.
    pub fn writer(self, flush: Duration, unwritten: Arc<AtomicUsize>) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel();
        let written = unwritten.clone();
        let thread = std::thread::Builder::new()
            .name("ssehub-store".into())
            .spawn(move || self.run(rx, flush, &written))?;
        Ok(Writer {
            tx,
            unwritten,
            thread: Some(thread),
        })
    }

    /// One transaction per group: waits for a change, collects what else arrives
    /// within `flush`, writes it all. Ends, after writing what it has, when the hub
    /// drops its sender.
    ///
    /// Within a group the thread sleeps rather than waits on the channel: a receiver
    /// that waits is woken by every send, which cost the hub's thread a futex call and
    /// this one a context switch per event (measured: most of what durability cost a
    /// publish). Asleep, it is woken only by [`Writer::close`].
    fn run(self, rx: Receiver<Change>, flush: Duration, unwritten: &AtomicUsize) {
        let mut group = Group::default();
        let mut open = true;
        while open && let Ok(first) = rx.recv() {
            group.add(first);
            let deadline = Instant::now() + flush;
            loop {
                loop {
                    match rx.try_recv() {
                        Ok(change) => group.add(change),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                }
                let now = Instant::now();
                if !open || now >= deadline {
                    break;
                }
                std::thread::park_timeout(deadline - now);
            }
            let bytes = group.bytes;
            self.commit(&mut group);
            unwritten.fetch_sub(bytes, Ordering::Relaxed);
        }
        log::debug!("history store {} closed", self.path.display());
    }

    fn commit(&self, group: &mut Group) {
        if group.is_empty() {
            return;
        }
        let written = self.write(|table| {
            let mut table = table?;
            for key in &group.removed {
                table.remove(key)?;
            }
            for record in group.added.values() {
                table.insert(record.key, encode(record).as_slice())?;
            }
            Ok(())
        });
        if let Err(e) = written {
            // Memory still holds the history; only a restart would miss these.
            log::error!(
                "history store {}: {} changes not written: {e}",
                self.path.display(),
                group.added.len() + group.removed.len()
            );
        }
        *group = Group::default();
    }

    /// Runs `change` on the table in one committed write transaction.
    fn write(
        &self,
        change: impl FnOnce(
            Result<redb::Table<'_, u64, &'static [u8]>, redb::TableError>,
        ) -> Result<(), redb::Error>,
    ) -> Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        change(txn.open_table(HISTORY))?;
        txn.commit()?;
        Ok(())
    }
}

/// What the hub tells the writer.
#[derive(Debug)]
enum Change {
    Keep(Record),
    Evict(u64),
}

/// The changes of one transaction. An event both kept and evicted within it is
/// neither written nor deleted.
#[derive(Default)]
struct Group {
    added: BTreeMap<u64, Record>,
    removed: Vec<u64>,
    /// Frames' bytes of every `Keep` received, written or cancelled by an `Evict`.
    bytes: usize,
}

impl Group {
    fn add(&mut self, change: Change) {
        match change {
            Change::Keep(record) => {
                self.bytes += record.frame.len();
                self.added.insert(record.key, record);
            }
            Change::Evict(key) => {
                if self.added.remove(&key).is_none() {
                    self.removed.push(key);
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// The hub's end of the store. Sending never waits; dropping it (or [`close`]) ends
/// the writer after its last group.
///
/// [`close`]: Writer::close
pub struct Writer {
    /// Unbounded: the hub must not wait for the disk. It holds what is published
    /// while one group is written (a commit, milliseconds); a disk that stops
    /// answering would let it grow with the publish rate, as no bound here could
    /// refuse a publish already answered: what it holds is counted in `unwritten`,
    /// which the publishers read, so new publishes are refused instead.
    tx: Sender<Change>,
    unwritten: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Kept in history from now on: written with the next group.
    pub fn keep(&self, entry: &Entry) {
        let record = Record {
            key: entry.reservation,
            id: entry.id.clone(),
            topics: entry.topics.clone(),
            frame: entry.frame.clone(),
            at_unix_ms: unix_ms(entry.at),
            server_id: entry.server_id,
        };
        // Counted before it is sent, so the writer never subtracts it first. An error
        // means the writer's thread has ended (after a failure it logged).
        let bytes = record.frame.len();
        self.unwritten.fetch_add(bytes, Ordering::Relaxed);
        if self.tx.send(Change::Keep(record)).is_err() {
            self.unwritten.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    /// Left history: deleted with the next group.
    pub fn evict(&self, entry: &Entry) {
        let _ = self.tx.send(Change::Evict(entry.reservation));
    }

    /// Writes what is pending and closes the file; returns once it is closed.
    pub fn close(mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        // Dropping the sender tells the writer this is the last group; the unpark
        // ends its wait for the group's deadline.
        drop(self);
        thread.thread().unpark();
        if thread.join().is_err() {
            log::error!("the history store's writer panicked");
        }
    }
}

/// `at` as milliseconds since the Unix epoch.
fn unix_ms(at: Instant) -> u64 {
    let age = Instant::now().saturating_duration_since(at);
    now_unix_ms().saturating_sub(age.as_millis() as u64)
}

/// The `Instant` a record was accepted at, as this process's clock sees it, so a TTL
/// counts the time the server was down, a reboot included (on Linux an `Instant`
/// reaches back centuries, its seconds being signed). An age no `Instant` here can
/// express counts from now.
pub fn instant_of(at_unix_ms: u64) -> Instant {
    let age = Duration::from_millis(now_unix_ms().saturating_sub(at_unix_ms));
    let now = Instant::now();
    now.checked_sub(age).unwrap_or(now)
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `FORMAT`, flags, accepted-at, then length-prefixed id and topics, then the frame.
fn encode(record: &Record) -> Vec<u8> {
    let topics: usize = record.topics.iter().map(|t| 4 + t.as_str().len()).sum();
    let mut out = Vec::with_capacity(18 + record.id.len() + topics + record.frame.len());
    out.push(FORMAT);
    out.push(u8::from(record.server_id));
    out.extend_from_slice(&record.at_unix_ms.to_le_bytes());
    put(&mut out, record.id.as_bytes());
    out.extend_from_slice(&(record.topics.len() as u32).to_le_bytes());
    for topic in &record.topics {
        put(&mut out, topic.as_str().as_bytes());
    }
    out.extend_from_slice(&record.frame);
    out
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// The record `encode` made, or `None` if these bytes are not one.
fn decode(key: u64, bytes: &[u8]) -> Option<Record> {
    let mut r = Reader(bytes);
    let [format, flags] = *r.take(2)? else {
        return None;
    };
    if format != FORMAT || flags > 1 {
        return None;
    }
    let at_unix_ms = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
    let id: Box<str> = r.text()?.into();
    let count = r.u32()? as usize;
    let mut topics = Vec::with_capacity(count.min(32));
    for _ in 0..count {
        topics.push(Topic::parse(r.text()?).ok()?);
    }
    Some(Record {
        key,
        id,
        topics: topics.into(),
        frame: Bytes::copy_from_slice(r.0),
        at_unix_ms,
        server_id: flags == 1,
    })
}

/// What is left of a record being decoded.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn text(&mut self) -> Option<&'a str> {
        let len = self.u32()? as usize;
        std::str::from_utf8(self.take(len)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::Scratch;

    fn record(key: u64) -> Record {
        Record {
            key,
            id: format!("id-{key}").into(),
            topics: Box::new([Topic::parse("a").unwrap(), Topic::parse("b.c").unwrap()]),
            frame: Bytes::from(format!("id: id-{key}\ndata: {key}\n\n")),
            at_unix_ms: 1_700_000_000_000 + key,
            server_id: key.is_multiple_of(2),
        }
    }

    fn entry(key: u64) -> Entry {
        let r = record(key);
        Entry {
            id: r.id,
            topics: r.topics,
            private: Box::default(),
            frame: r.frame,
            at: Instant::now(),
            reservation: key,
            server_id: r.server_id,
        }
    }

    fn temp(name: &str) -> Scratch {
        Scratch::new(&format!("store-{name}"))
    }

    fn keys(records: &[Record]) -> Vec<u64> {
        records.iter().map(|r| r.key).collect()
    }

    #[test]
    fn a_record_reads_back_as_written_and_damage_is_refused() {
        let r = record(7);
        assert_eq!(decode(7, &encode(&r)), Some(r.clone()));
        let bytes = encode(&r);
        for cut in 0..bytes.len() - r.frame.len() {
            assert_eq!(decode(7, &bytes[..cut]), None, "cut at {cut}");
        }
        let mut other = bytes.clone();
        other[0] = FORMAT + 1;
        assert_eq!(decode(7, &other), None);
    }

    #[test]
    fn kept_events_survive_a_close_and_evicted_ones_do_not() {
        let path = temp("survive.redb");
        let unwritten = Arc::new(AtomicUsize::new(0));
        let writer = Store::open(&path)
            .unwrap()
            .writer(Duration::from_millis(5), unwritten.clone())
            .unwrap();
        for key in 0..10 {
            writer.keep(&entry(key));
        }
        for key in 0..4 {
            writer.evict(&entry(key));
        }
        writer.close();
        assert_eq!(
            unwritten.load(Ordering::Relaxed),
            0,
            "every kept byte was written"
        );
        let store = Store::open(&path).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(keys(&loaded), [4, 5, 6, 7, 8, 9]);
        let at_unix_ms = loaded[0].at_unix_ms;
        assert_eq!(
            loaded[0],
            Record {
                at_unix_ms,
                ..record(4)
            }
        );
    }

    #[test]
    fn a_record_that_does_not_decode_makes_the_store_refused_whole() {
        let path = temp("bad-record.redb");
        let store = Store::open(&path).unwrap();
        assert!(store.load().unwrap().is_empty(), "a new file holds nothing");
        store
            .write(|table| {
                let mut table = table?;
                table.insert(0, encode(&record(0)).as_slice())?;
                table.insert(1, &b"not a record"[..])?;
                Ok(())
            })
            .unwrap();
        let refused = store.load().expect_err("corrupt");
        assert!(refused.to_string().contains("record 1"), "{refused}");
    }

    #[test]
    fn a_group_drops_what_was_kept_and_evicted_within_it() {
        let mut group = Group::default();
        group.add(Change::Keep(record(1)));
        group.add(Change::Evict(0));
        group.add(Change::Evict(1));
        assert!(group.added.is_empty());
        assert_eq!(group.removed, [0]);
    }

    #[test]
    fn a_second_open_of_the_same_file_is_refused_and_a_closed_one_reopens() {
        let path = temp("locked.redb");
        let first = Store::open(&path).unwrap();
        let refused = Store::open(&path).err().expect("the file is in use");
        assert!(refused.to_string().contains("in use"), "{refused}");
        drop(first);
        assert!(Store::open(&path).is_ok());
    }

    #[test]
    fn what_is_not_a_store_is_refused_and_left_as_it_was() {
        let garbage = temp("garbage.redb");
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        std::fs::write(&garbage, &bytes).unwrap();
        let refused = Store::open(&garbage).err().expect("not a store");
        assert!(refused.to_string().contains("garbage.redb"), "{refused}");
        assert_eq!(std::fs::read(&garbage).unwrap(), bytes);

        let dir = temp("a-directory");
        std::fs::create_dir_all(&dir).unwrap();
        let refused = Store::open(&dir).err().expect("a directory");
        assert!(refused.to_string().contains("is a directory"), "{refused}");

        let missing = temp("missing-dir").join("history.redb");
        let refused = Store::open(&missing).err().expect("no directory");
        assert!(refused.to_string().contains("does not exist"), "{refused}");
        assert!(!missing.exists());
    }

    #[test]
    fn a_damaged_store_is_refused_not_trusted() {
        let path = temp("damaged.redb");
        let writer = Store::open(&path)
            .unwrap()
            .writer(Duration::from_millis(1), Arc::default())
            .unwrap();
        for key in 0..100 {
            writer.keep(&entry(key));
        }
        writer.close();
        let mut bytes = std::fs::read(&path).unwrap();
        // Past redb's header (its first page): every tree page, checksummed.
        for b in &mut bytes[4096..] {
            *b ^= 0x55;
        }
        std::fs::write(&path, &bytes).unwrap();
        let refused = Store::open(&path).and_then(|store| store.load());
        let refused = refused.expect_err("damaged");
        assert!(refused.to_string().contains("damaged.redb"), "{refused}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "left as it was");
    }

    #[test]
    fn accepted_at_survives_as_unix_time() {
        let an_hour_ago = Instant::now() - Duration::from_secs(3600);
        let ms = unix_ms(an_hour_ago);
        let back = instant_of(ms);
        let drift = back
            .saturating_duration_since(an_hour_ago)
            .max(an_hour_ago.saturating_duration_since(back));
        assert!(drift < Duration::from_secs(1), "{drift:?}");
    }
}
