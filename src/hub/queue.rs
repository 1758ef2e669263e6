//! Each client's bounded queue: one producer (the hub), one consumer (the client's
//! response body).
//!
//! tokio's mpsc allocates a block of 32 slots for every channel up front and keeps it,
//! plus a semaphore and its waiter list: about 1.4 KB for every connected client, most
//! of whom sit idle between events. This queue is a `VecDeque` behind a mutex: it holds
//! no buffer until something is queued, grows as items wait, and gives back what a
//! burst made it grow to once it is drained. The mutex is only ever contended by the
//! hub and that one client, for the length of a push or a pop.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use super::client::Item;

/// Slots kept when the queue is drained: a client receiving steadily neither frees nor
/// allocates per item; one that had a burst gives back the rest.
const KEEP_SLOTS: usize = 8;

/// Makes a queue that holds at most `capacity` items.
pub fn bounded(capacity: usize) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        items: Mutex::new(VecDeque::new()),
        capacity,
        waker: AtomicWaker::new(),
        sender_gone: AtomicBool::new(false),
        receiver_gone: AtomicBool::new(false),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

struct Shared {
    items: Mutex<VecDeque<Item>>,
    capacity: usize,
    /// The receiver's, woken by a push and by the sender's drop.
    waker: AtomicWaker,
    sender_gone: AtomicBool,
    receiver_gone: AtomicBool,
}

impl Shared {
    fn items(&self) -> MutexGuard<'_, VecDeque<Item>> {
        // A panic while holding it (none can: push and pop do not panic) would leave
        // only a queue of whole items behind: carry on with it.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why an item was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// `capacity` items wait already: the client is not reading.
    Full,
    /// The receiver is gone: the client's stream has ended.
    Closed,
}

/// The hub's end. Dropping it ends the stream once the queued items are read.
pub struct Sender {
    shared: Arc<Shared>,
}

impl Sender {
    /// Queues `item` unless the queue is full or its receiver gone; never waits.
    pub fn try_send(&self, item: Item) -> Result<(), Refused> {
        if self.shared.receiver_gone.load(Ordering::Relaxed) {
            return Err(Refused::Closed);
        }
        {
            let mut items = self.shared.items();
            if items.len() >= self.shared.capacity {
                return Err(Refused::Full);
            }
            items.push_back(item);
        }
        self.shared.waker.wake();
        Ok(())
    }

    /// Items waiting to be read.
    pub fn queued(&self) -> usize {
        self.shared.items().len()
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.shared.sender_gone.store(true, Ordering::Release);
        self.shared.waker.wake();
    }
}

/// The client's end, read by its response body.
pub struct Receiver {
    shared: Arc<Shared>,
}

impl Receiver {
    /// The next item; `None` once the sender is gone and everything queued was read.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        if let Some(item) = self.pop() {
            return Poll::Ready(Some(item));
        }
        self.shared.waker.register(cx.waker());
        // Read before the second look: whatever was queued before the sender went is
        // then seen by that look, so nothing queued is lost at the end.
        let sender_gone = self.shared.sender_gone.load(Ordering::Acquire);
        match self.pop() {
            Some(item) => Poll::Ready(Some(item)),
            None if sender_gone => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    /// The next item if one is queued, without registering for a wake-up.
    #[cfg(test)]
    pub fn try_recv(&mut self) -> Option<Item> {
        self.pop()
    }

    fn pop(&self) -> Option<Item> {
        let mut items = self.shared.items();
        let item = items.pop_front();
        if items.is_empty() && items.capacity() > KEEP_SLOTS {
            items.shrink_to(KEEP_SLOTS);
        }
        item
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.receiver_gone.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures_util::task::noop_waker_ref;

    fn frame(n: u8) -> Item {
        Item::Frame(Bytes::from(vec![n]))
    }

    fn byte(item: Option<Item>) -> Option<u8> {
        match item {
            Some(Item::Frame(b)) => Some(b[0]),
            Some(Item::Batch(_)) => panic!("a batch"),
            None => None,
        }
    }

    fn poll(rx: &mut Receiver) -> Poll<Option<u8>> {
        rx.poll_recv(&mut Context::from_waker(noop_waker_ref()))
            .map(byte)
    }

    #[test]
    fn holds_nothing_until_used_and_refuses_past_its_capacity() {
        let (tx, mut rx) = bounded(2);
        assert_eq!(tx.shared.items().capacity(), 0, "no buffer while idle");
        assert_eq!(poll(&mut rx), Poll::Pending);
        tx.try_send(frame(1)).unwrap();
        tx.try_send(frame(2)).unwrap();
        assert_eq!(tx.try_send(frame(3)), Err(Refused::Full));
        assert_eq!(tx.queued(), 2);
        assert_eq!(poll(&mut rx), Poll::Ready(Some(1)));
        assert_eq!(poll(&mut rx), Poll::Ready(Some(2)));
        assert_eq!(poll(&mut rx), Poll::Pending);
    }

    #[test]
    fn a_drained_queue_gives_back_what_a_burst_grew_it_to() {
        let (tx, mut rx) = bounded(256);
        for n in 0..200 {
            tx.try_send(frame(n)).unwrap();
        }
        assert!(tx.shared.items().capacity() >= 200);
        while rx.try_recv().is_some() {}
        assert!(tx.shared.items().capacity() <= KEEP_SLOTS);
    }

    #[test]
    fn the_senders_drop_ends_the_stream_after_what_was_queued() {
        let (tx, mut rx) = bounded(4);
        tx.try_send(frame(7)).unwrap();
        drop(tx);
        assert_eq!(poll(&mut rx), Poll::Ready(Some(7)));
        assert_eq!(poll(&mut rx), Poll::Ready(None));
    }

    #[test]
    fn a_gone_receiver_refuses_items() {
        let (tx, rx) = bounded(4);
        drop(rx);
        assert_eq!(tx.try_send(frame(1)), Err(Refused::Closed));
    }

    #[test]
    fn a_push_from_another_thread_wakes_the_reader() {
        let (tx, mut rx) = bounded(1000);
        let writer = std::thread::spawn(move || {
            for n in 0..1000u32 {
                while tx.try_send(frame((n % 251) as u8)) == Err(Refused::Full) {
                    std::thread::yield_now();
                }
            }
        });
        let got = futures_executor::block_on(async {
            let mut got = Vec::new();
            while let Some(item) = std::future::poll_fn(|cx| rx.poll_recv(cx).map(byte)).await {
                got.push(item);
            }
            got
        });
        writer.join().unwrap();
        let expected: Vec<u8> = (0..1000u32).map(|n| (n % 251) as u8).collect();
        assert_eq!(got, expected, "every item, in order, then the end");
    }
}
