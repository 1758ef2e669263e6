//! One client's side of the hub: the stream its response body reads.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix::Addr;
use bytes::Bytes;
use futures_core::Stream;
use tokio::sync::mpsc;

use super::messages::Disconnect;
use super::{ClientId, Hub};

/// The preamble and replay first, then whatever the hub queues, until the hub drops
/// the sender (slow client, shutdown) or the connection goes away.
pub struct Subscription {
    id: ClientId,
    /// Written before the queue and not counted against `client_buffer` (SPEC §1);
    /// `None` once written, so an idle stream keeps no buffer for it.
    head: Option<std::vec::IntoIter<Bytes>>,
    rx: mpsc::Receiver<Bytes>,
    hub: Addr<Hub>,
}

impl Subscription {
    pub(super) fn new(
        id: ClientId,
        head: Vec<Bytes>,
        rx: mpsc::Receiver<Bytes>,
        hub: Addr<Hub>,
    ) -> Self {
        Self {
            id,
            head: Some(head.into_iter()),
            rx,
            hub,
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
        // actix-http keeps polling while its write buffer has room, so several queued
        // items leave in one write without our concatenating them.
        self.rx.poll_recv(cx).map(|item| item.map(Ok))
    }
}

/// The registry forgets a client as soon as its stream is dropped (connection closed,
/// or an answer that never reached its handler), not at the next failed send, so the
/// client count follows disconnects within one message to the hub.
impl Drop for Subscription {
    fn drop(&mut self) {
        // do_send queues even when the mailbox is full, so it cannot block here.
        self.hub.do_send(Disconnect(self.id));
    }
}
