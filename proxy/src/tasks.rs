//! Tasks over replicas (the tasks extension, SEP-2663): a task lives in the replica that runs
//! it, so mcp-edge hands out task ids that name that replica and sends each `tasks/get`,
//! `tasks/update` and `tasks/cancel` there — from any process, with no shared store.
//!
//! - the id: [`mcp_protocol::tasks`] (`<replica>/<the replica's id>`, spliced into the bytes);
//! - where a task request goes: [`crate::route`] (`Decision::Task`, or `TaskGone`);
//! - the replica's own id back in the request: [`restored`] (body and `Mcp-Name`);
//! - the replica named in the answer: [`crate::relay`] (`result.taskId`);
//! - which replica still serves its tasks: [`crate::upstream::Replicas::home`] (one that answers
//!   health checks: healthy, draining, or departed from the DNS answer while draining);
//! - a replica that cannot be reached: [`crate::route::after_failure`] (`Failure::TaskGone`);
//! - what happened: [`TaskCounts`], a metrics source.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use mcp_protocol::{
    Kind, Message,
    tasks::{self, METHODS},
};

use crate::{
    answer::{Failure, Reply, Stop},
    telemetry::registry::{self, Encoder, Source},
};

/// For a request to a task's replica (`raw`: the replica's own id), the body with that id in
/// `params.taskId`; `None` otherwise (or when the body has no such field: sent as it is).
pub fn restored(body: &Bytes, raw: Option<&str>) -> Option<Bytes> {
    tasks::restore_in_request(body, raw?).map(Bytes::from)
}

/// Whether a 2026-07-28 request's answer may name a task: a `tools/call` whose client allows
/// tasks, or a `tasks/get` routed to its task's replica (`routed`).
pub fn may_name(message: Option<&Message<'_>>, routed: bool) -> bool {
    message.is_some_and(|m| {
        m.kind == Kind::Request
            && (m.is("tools/call") && m.declares_tasks || routed && m.is("tasks/get"))
    })
}

/// How a task request ended at mcp-edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Sent to the replica its id names.
    Routed = 0,
    /// Answered -32602 here: that replica is gone, and the task with it.
    Gone = 1,
}

/// Counters of the tasks that passed through this process.
#[derive(Debug, Default)]
pub struct TaskCounts {
    created: AtomicU64,
    /// By [`METHODS`] index and [`Outcome`].
    requests: [[AtomicU64; 2]; 3],
}

impl TaskCounts {
    /// A replica created a task (its `CreateTaskResult` passed, its id named).
    pub fn created(&self) {
        self.created.fetch_add(1, Ordering::Relaxed);
    }

    /// A task request (`method` one of [`METHODS`]) ended with `outcome`.
    pub fn request(&self, method: &str, outcome: Outcome) {
        if let Some(i) = METHODS.iter().position(|m| *m == method) {
            self.requests[i][outcome as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A task request for a task whose replica is gone: counted, and its -32602.
    pub fn gone(&self, method: &str, id: Option<&str>) -> Reply {
        self.request(method, Outcome::Gone);
        Failure::TaskGone.reply(id)
    }

    /// The exchange of a task request routed to its replica: it answered, or it is gone.
    pub fn exchanged<T>(&self, method: &str, exchanged: &Result<T, Stop>) {
        match exchanged {
            Ok(_) => self.request(method, Outcome::Routed),
            Err(Stop::Answer(Failure::TaskGone)) => self.request(method, Outcome::Gone),
            Err(_) => {}
        }
    }
}

impl Source for TaskCounts {
    /// `mcp_edge_tasks_created_total`, `mcp_edge_task_requests_total` by method and outcome,
    /// and `mcp_edge_tasks_lost_total`.
    fn collect(&self, out: &mut Encoder) {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        out.counter(
            "mcp_edge_tasks_created_total",
            "Tasks replicas created through this process (CreateTaskResult relayed, its id naming the replica).",
            load(&self.created),
        );
        let mut family = out.family(
            "mcp_edge_task_requests_total",
            registry::Kind::Counter,
            "tasks/get, tasks/update and tasks/cancel for ids mcp-edge gave out: routed to the replica the id names, or answered -32602 here because that replica is gone.",
        );
        for (i, method) in METHODS.iter().enumerate() {
            for (outcome, name) in [(Outcome::Routed, "routed"), (Outcome::Gone, "gone")] {
                family.sample(
                    &[("method", method), ("outcome", name)],
                    load(&self.requests[i][outcome as usize]),
                );
            }
        }
        out.counter(
            "mcp_edge_tasks_lost_total",
            "Polls (tasks/get) of tasks lost with their replica: a poller stops at the first, so this counts lost tasks as their clients learnt it.",
            load(&self.requests[0][Outcome::Gone as usize]),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_request_carries_the_replica_s_id_and_the_rest_unchanged() {
        let body = Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"r2/abc"}}"#,
        );
        assert_eq!(
            &restored(&body, Some("abc")).unwrap()[..],
            br#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"abc"}}"#
        );
        assert_eq!(restored(&body, None), None, "not routed to a task");
    }

    #[test]
    fn only_a_call_allowing_tasks_and_a_routed_poll_may_name_one() {
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}}}}"#;
        let plain = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#;
        let poll = br#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"r1/a"}}"#;
        let may =
            |body: &[u8], routed| may_name(Some(&mcp_protocol::classify(body).unwrap()), routed);
        assert!(may(call, false));
        assert!(!may(plain, false));
        assert!(may(poll, true));
        assert!(
            !may(poll, false),
            "a poll of an id mcp-edge did not give out"
        );
    }

    #[test]
    fn counts_render_by_method_and_outcome() {
        let counts = TaskCounts::default();
        counts.created();
        counts.request("tasks/get", Outcome::Routed);
        counts.request("tasks/get", Outcome::Gone);
        counts.request("tasks/cancel", Outcome::Gone);
        counts.request("tasks/list", Outcome::Routed);
        let text = crate::telemetry::registry::render_one(&counts);
        for line in [
            "mcp_edge_tasks_created_total 1",
            r#"mcp_edge_task_requests_total{method="tasks/get",outcome="routed"} 1"#,
            r#"mcp_edge_task_requests_total{method="tasks/cancel",outcome="gone"} 1"#,
            r#"mcp_edge_task_requests_total{method="tasks/update",outcome="routed"} 0"#,
            "mcp_edge_tasks_lost_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
