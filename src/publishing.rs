//! Where `POST /broadcast` hands validated events: the node's own hub, or, in cluster
//! mode, the cluster's stream (from which every node's hub reads them back).

use crate::cluster;
use crate::error::ApiError;
use crate::event::Publication;
use crate::hub::{self, Accepted};

#[derive(Clone)]
pub enum Publishing {
    /// In memory (or with durable history): answered without waiting for the hub.
    Local(hub::Publisher),
    /// Answered once Redis holds the events.
    Cluster(cluster::Publisher),
}

impl Publishing {
    pub async fn publish(&self, publication: Publication) -> Result<Accepted, ApiError> {
        match self {
            Self::Local(hub) => hub.publish(publication),
            Self::Cluster(stream) => stream.publish(publication).await,
        }
    }
}
