//! One client's side of the hub: the stream its response body reads.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;

use super::client::{ClientId, Item, Selection};
use super::lobby::Lobby;
use super::queue;

/// The preamble and replay first, then whatever the hub queues, until the hub drops
/// the sender (slow client, shutdown) or the connection goes away.
pub struct Subscription {
    id: ClientId,
    /// Written before the queue and not counted against `client_buffer` (SPEC §1);
    /// `None` once written, so an idle stream keeps no buffer for it.
    head: Option<std::vec::IntoIter<Bytes>>,
    /// A batch being written, and the index of its next frame to look at.
    batch: Option<(Arc<Selection>, usize)>,
    rx: queue::Receiver,
    lobby: Arc<Lobby>,
}

impl Subscription {
    pub(super) fn new(
        id: ClientId,
        head: Vec<Bytes>,
        rx: queue::Receiver,
        lobby: Arc<Lobby>,
    ) -> Self {
        Self {
            id,
            head: Some(head.into_iter()),
            batch: None,
            rx,
            lobby,
        }
    }

    /// The next queued item, which the test expects to be a batch.
    #[cfg(test)]
    pub(super) fn take_batch(&mut self) -> Arc<Selection> {
        match self.rx.try_recv() {
            Some(Item::Batch(selection)) => selection,
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    /// The next frame of the batch being written, if any is left.
    fn next_of_batch(&mut self) -> Option<Bytes> {
        let (selection, at) = self.batch.as_mut()?;
        match selection.next_pick(*at) {
            Some(i) => {
                *at = i + 1;
                Some(selection.frames[i].clone())
            }
            None => {
                self.batch = None;
                None
            }
        }
    }
}

impl Stream for Subscription {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(head) = &mut self.head {
            if let Some(item) = head.next() {
                return Poll::Ready(Some(Ok(item)));
            }
            self.head = None;
        }
        loop {
            if let Some(frame) = self.next_of_batch() {
                return Poll::Ready(Some(Ok(frame)));
            }
            // actix-http keeps polling while its write buffer has room, so several
            // queued items leave in one write without our concatenating them.
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Item::Frame(frame))) => return Poll::Ready(Some(Ok(frame))),
                Poll::Ready(Some(Item::Batch(selection))) => self.batch = Some((selection, 0)),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The registry forgets a client once its stream is dropped (connection closed, or an
/// answer that never reached its handler), not at the next failed send: the hub takes
/// the departure the next time it runs, before any fan-out, within a second at most.
impl Drop for Subscription {
    fn drop(&mut self) {
        self.lobby.leave(self.id);
    }
}
