//! The [`Backend`] type: one value answers every request of both protocol eras (rmcp makes a
//! clone per stateless request). It holds the replica's identity, its tools, the key that seals
//! multi round-trip `requestState`, the feed of list changes for listen streams, and its tasks.
//! A leaf: what it serves is composed in [`crate::catalog`], how it answers in
//! [`crate::handler`].

use std::sync::Arc;

use rmcp::{ErrorData, handler::server::router::tool::ToolRouter, model::RequestStateCodec};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::broadcast;

use crate::tasks::Tasks;

pub const SERVER_NAME: &str = "mcp-backend";

/// A change, delivered to this process's open listen streams: a list changed, or one
/// resource did (`notifications/resources/updated`, to the streams that subscribed its URI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListChange {
    Tools,
    Prompts,
    Resources,
    Updated(Arc<str>),
}

/// What a server serves ([`crate::catalog`] composes each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Catalog {
    /// The template's tools, resources and prompts: what a user running it sees.
    #[default]
    Template,
    /// The template and the conformance fixtures (`test_*` tools, fixture resources, templates
    /// and prompts, the tasks scenarios' tools): for the conformance suite and the tests.
    WithFixtures,
}

/// The server handler. Cheap to clone: rmcp makes one per stateless request.
#[derive(Clone)]
pub struct Backend {
    shared: Arc<Shared>,
}

struct Shared {
    replica_id: String,
    tools: ToolRouter<Backend>,
    state: RequestStateCodec,
    changes: broadcast::Sender<ListChange>,
    tasks: Tasks,
    catalog: Catalog,
}

impl Backend {
    /// A handler serving `tools`, and `catalog`'s resources and prompts (the catalog composes
    /// them: [`crate::catalog`]). `state_key`: the HMAC key for `requestState`; `None` makes a
    /// random one.
    pub fn with_tools(
        replica_id: impl Into<String>,
        state_key: Option<Vec<u8>>,
        tools: ToolRouter<Backend>,
        catalog: Catalog,
    ) -> Self {
        let key = state_key.unwrap_or_else(|| {
            use rand::RngCore;
            let mut key = vec![0u8; 32];
            rand::rng().fill_bytes(&mut key);
            key
        });
        let (changes, _) = broadcast::channel(64);
        Self {
            shared: Arc::new(Shared {
                replica_id: replica_id.into(),
                tools,
                state: RequestStateCodec::try_new(key).expect("keys are at least 32 bytes"),
                changes,
                tasks: Tasks::default(),
                catalog,
            }),
        }
    }

    pub fn replica_id(&self) -> &str {
        &self.shared.replica_id
    }

    /// Seal `value` into an opaque, tamper-evident `requestState`.
    pub fn seal<T: Serialize>(&self, value: &T) -> Result<String, ErrorData> {
        self.shared
            .state
            .seal_json(value)
            .map_err(|e| ErrorData::internal_error(format!("cannot seal requestState: {e}"), None))
    }

    /// Open a `requestState`; anything tampered, foreign or malformed is -32602.
    pub fn open<T: DeserializeOwned>(&self, sealed: &str) -> Result<T, ErrorData> {
        self.shared.state.open_json(sealed).map_err(|_| {
            ErrorData::invalid_params(
                "requestState failed its integrity check (tampered, or sealed with another key)",
                None,
            )
        })
    }

    /// What this handler serves besides its tools.
    pub fn catalog(&self) -> Catalog {
        self.shared.catalog
    }

    /// The tools this handler serves.
    pub fn tools(&self) -> &ToolRouter<Backend> {
        &self.shared.tools
    }

    /// This process's tasks (the tasks extension, [`crate::tasks`]).
    pub fn tasks(&self) -> &Tasks {
        &self.shared.tasks
    }

    /// The list changes announced from now on (a listen stream's feed).
    pub fn changes(&self) -> broadcast::Receiver<ListChange> {
        self.shared.changes.subscribe()
    }

    /// Tell this process's listen streams that a list changed.
    pub fn announce(&self, change: ListChange) {
        let _ = self.shared.changes.send(change);
    }
}
