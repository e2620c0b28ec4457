//! Long-running tools as tasks (the `io.modelcontextprotocol/tasks` extension, SEP-2663), on
//! rmcp's [`TaskManager`].
//!
//! A tool opts in by returning [`Tasks::long`] with its work (`self.tasks().long(…)`): a client
//! that declared the extension (for its session, or in this request's `_meta`) gets a
//! `CreateTaskResult` at once and polls `tasks/get` until the task is terminal; answers in-task
//! questions with `tasks/update`; cancels with `tasks/cancel`. A client that did not declare it
//! gets the work run inline, as an ordinary call — or, for a tool that cannot do without
//! ([`Support::Required`]: it asks the client mid-task), `-32021` naming the extension.
//!
//! The work sees one [`Job`] either way: progress becomes the task's `statusMessage` (a poller
//! reads it) or a `notifications/progress` on the call; cancellation is `tasks/cancel` or the
//! call's own; a question is an `input_required` status, answered by `tasks/update`.
//!
//! A task lives in the process that runs it: behind mcp-edge, task ids name their replica so
//! every poll reaches it. A draining replica keeps answering while tasks run ([`Tasks::settle`]).

use std::{future::Future, time::Duration};

use futures::FutureExt;
use rmcp::{
    ErrorData, RoleServer,
    model::{
        CallToolResponse, CallToolResult, ClientCapabilities, CreateTaskResult, GetTaskResult,
        InputRequest, InputResponses, ProgressNotificationParam, ProgressToken,
    },
    service::{Peer, RequestContext},
    task_manager::{TaskContext, TaskManager, TaskOptions},
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use rmcp::task_manager::{DEFAULT_POLL_INTERVAL_MS, DEFAULT_TASK_TTL_MS, TaskExit};

/// After the last task of a draining replica ends, how long it keeps answering so that its
/// pollers read the result (two poll intervals).
pub const SETTLE_LINGER: Duration = Duration::from_millis(2 * DEFAULT_POLL_INTERVAL_MS);

/// Whether a long-running tool can also run inline, for a client without the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Inline for such a client: the call waits for the result.
    Optional,
    /// Only as a task (it asks the client mid-task): such a client gets `-32021`.
    Required,
}

/// What a long-running tool's work sees: the same calls whether it runs as a task or inline.
pub struct Job {
    task: Option<TaskContext>,
    progress: Option<(Peer<RoleServer>, ProgressToken)>,
    cancelled: CancellationToken,
}

impl Job {
    /// The task's id, when the work runs as one.
    pub fn task_id(&self) -> Option<&str> {
        self.task.as_ref().map(TaskContext::task_id)
    }

    /// Say how far the work is: the task's `statusMessage`, or a progress notification on the
    /// call when the client sent a progress token.
    pub async fn progress(&self, done: u32, total: u32, message: impl Into<String>) {
        let message = message.into();
        if let Some(task) = &self.task {
            task.set_status_message(message);
        } else if let Some((peer, token)) = &self.progress {
            let note = ProgressNotificationParam::new(token.clone(), done as f64)
                .with_total(total as f64)
                .with_message(message);
            let _ = peer.notify_progress(note).await;
        }
    }

    /// Resolves when the client cancelled (`tasks/cancel`, or the inline call's cancellation).
    pub async fn cancelled(&self) {
        match &self.task {
            Some(task) => task.cancelled().await,
            None => self.cancelled.cancelled().await,
        }
    }

    /// Ask the client (elicitation, sampling, roots) and wait for its answer. Only a task can:
    /// inline, there is no way for the answer to come back (such tools are
    /// [`Support::Required`]).
    pub async fn ask(&self, key: &str, request: InputRequest) -> Result<Value, TaskExit> {
        match &self.task {
            Some(task) => task.request_input(key, request).await,
            None => Err(TaskExit::Error(ErrorData::internal_error(
                "this tool asks the client mid-task: call it with the io.modelcontextprotocol/tasks extension",
                None,
            ))),
        }
    }
}

/// This process's tasks.
#[derive(Clone, Default)]
pub struct Tasks {
    manager: TaskManager,
}

impl Tasks {
    /// Tasks not yet terminal.
    pub fn running(&self) -> usize {
        self.manager.running_task_count()
    }

    /// For a draining replica: wait until no task runs, then [`SETTLE_LINGER`] more for the
    /// results to be read. The caller bounds it with the grace period.
    pub async fn settle(&self) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while self.running() > 0 {
            tick.tick().await;
        }
        tokio::time::sleep(SETTLE_LINGER).await;
    }

    /// Run `work` as a task when the client declared the extension, else inline (or refuse it,
    /// for [`Support::Required`]).
    pub async fn long<F, Fut>(
        &self,
        ctx: &RequestContext<RoleServer>,
        support: Support,
        work: F,
    ) -> Result<CallToolResponse, ErrorData>
    where
        F: FnOnce(Job) -> Fut + Send + 'static,
        Fut: Future<Output = Result<CallToolResult, TaskExit>> + Send + 'static,
    {
        if declared(ctx) {
            let task = self.manager.spawn(TaskOptions::default(), |task| {
                let job = Job {
                    task: Some(task),
                    progress: None,
                    cancelled: CancellationToken::new(),
                };
                work(job).boxed()
            });
            return Ok(CallToolResponse::Task(CreateTaskResult::new(task)));
        }
        if support == Support::Required {
            return Err(required());
        }
        let job = Job {
            task: None,
            progress: ctx
                .meta
                .get_progress_token()
                .map(|token| (ctx.peer.clone(), token)),
            cancelled: ctx.ct.clone(),
        };
        match work(job).await {
            Ok(result) => Ok(result.into()),
            Err(TaskExit::Cancelled) => Err(ErrorData::internal_error("cancelled", None)),
            Err(TaskExit::Error(error)) => Err(error),
        }
    }

    /// `tasks/get`.
    pub fn get(&self, task_id: &str) -> Result<GetTaskResult, ErrorData> {
        self.manager.get_task(task_id).map(GetTaskResult::new)
    }

    /// `tasks/update`: answers to the task's questions (unknown or answered keys are ignored).
    pub fn update(&self, task_id: &str, answers: InputResponses) -> Result<(), ErrorData> {
        self.manager.update_task(task_id, answers)
    }

    /// `tasks/cancel`: asks the work to stop (it settles as `cancelled` when it honours it).
    pub fn cancel(&self, task_id: &str) -> Result<(), ErrorData> {
        self.manager.cancel_task(task_id)
    }
}

/// Whether the request (or, in a legacy session, its client) declared the extension.
fn declared(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.client_capabilities()
        .is_some_and(|caps| caps.supports_tasks())
}

/// `-32021`: the extension is required.
pub fn required() -> ErrorData {
    ErrorData::missing_required_client_capability(
        ClientCapabilities::builder().enable_tasks().build(),
    )
}
