//! Who is connected, and which topics each wants: the clients and the topic index,
//! changed only together.
//!
//! The index is shared: publish handlers read it (never write it) to count an event's
//! receivers without a round trip through the hub. Only this type writes it, in the
//! same call that adds or removes the client, so the two never disagree.

use std::collections::HashMap;
use std::collections::hash_map::IterMut;
use std::sync::{Arc, RwLock, RwLockWriteGuard};

use crate::topic::Topic;

use super::client::{Client, ClientId};
use super::index::TopicIndex;

pub struct Registry {
    clients: HashMap<ClientId, Client>,
    index: Arc<RwLock<TopicIndex>>,
}

impl Registry {
    pub fn new(index: Arc<RwLock<TopicIndex>>) -> Self {
        Self {
            clients: HashMap::new(),
            index,
        }
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Registers a client under `id` (given by the lobby, never reused).
    pub fn insert(&mut self, id: ClientId, client: Client) {
        self.index_mut().add(id, &client.filters);
        self.clients.insert(id, client);
    }

    pub fn remove(&mut self, id: ClientId) -> Option<Client> {
        let client = self.clients.remove(&id)?;
        self.index_mut().remove(id, &client.filters);
        Some(client)
    }

    /// Removes everyone (at shutdown).
    pub fn drain(&mut self) -> impl Iterator<Item = Client> + '_ {
        *self.index_mut() = TopicIndex::default();
        self.clients.drain().map(|(_, client)| client)
    }

    pub fn get_mut(&mut self, id: ClientId) -> Option<&mut Client> {
        self.clients.get_mut(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ClientId, &Client)> {
        self.clients.iter()
    }

    pub fn iter_mut(&mut self) -> IterMut<'_, ClientId, Client> {
        self.clients.iter_mut()
    }

    /// Calls `f` once for each client an event published to `topics` reaches through
    /// its topics (not for global events, which reach everyone), marking it as matched
    /// by `seq` so that a client matched by several filters is called once.
    pub fn for_each_reached(
        &mut self,
        topics: &[Topic],
        seq: u64,
        mut f: impl FnMut(ClientId, &mut Client),
    ) {
        // unwrap: only this type writes the index, and it does not panic doing so.
        let index = self.index.read().unwrap();
        for topic in topics {
            index.for_each_match(topic, |id| {
                if let Some(client) = self.clients.get_mut(&id)
                    && client.matched != seq
                {
                    client.matched = seq;
                    f(id, client);
                }
            });
        }
    }

    fn index_mut(&self) -> RwLockWriteGuard<'_, TopicIndex> {
        // unwrap: as above.
        self.index.write().unwrap()
    }
}
