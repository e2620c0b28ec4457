//! What the relay policy found in a response ([`super::Chunk`], [`super::Seal`]), applied to
//! the process's state: the questions a replica asked recorded for their answers, a
//! `tools/list` learnt, a task counted, a legacy session sealed.

use crate::{
    answer::Failure,
    relay::Chunk,
    request::Is,
    session::{Owner, Profile, ReplicaId},
    state::State,
    telemetry::metrics::Event,
};

/// What the relay policy found, applied to the process's state.
pub struct Found<'a> {
    pub state: &'a State,
    pub is: &'a Is,
    pub profile: &'a Profile,
    pub replica: &'a ReplicaId,
}

impl Found<'_> {
    /// A chunk's findings: server→client requests asked, a `tools/list` to learn from, a task
    /// created.
    pub fn apply(&self, chunk: Chunk) {
        if chunk.is_empty() {
            return;
        }
        for id in chunk.asked {
            self.state
                .owners
                .asked(&self.is.scope.key(), &id, self.replica.clone());
        }
        if let Some(list) = chunk.tools_list {
            self.state.tools.learn(&list);
        }
        if chunk.named_task && self.is.method == "tools/call" {
            self.state.tasks.created();
        }
    }

    /// Seal a session (the relay policy found its version); the token for the client.
    pub fn mint(&self, version: &str, theirs: Option<String>) -> Result<String, Failure> {
        let owner = theirs.map(|session_id| Owner {
            replica: self.replica.clone(),
            session_id,
        });
        let (token, _) = self
            .state
            .sessions
            .mint(version, owner, self.is.identity(), self.profile.clone())
            .map_err(|e| Failure::Seal(e.to_string()))?;
        self.state.metrics.count(Event::SessionMinted);
        Ok(token)
    }
}
