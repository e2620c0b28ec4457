//! The fixtures of the suite's `tasks-*` scenarios (the tasks extension, SEP-2663): `greet`
//! (never a task), `slow_compute` (a task when the client allows, inline otherwise),
//! `failing_job` (a tool error, only as a task), `protocol_error_job` (a protocol error),
//! `confirm_delete` and `multi_input` (questions asked mid-task), and `test_tool_with_task` (a
//! multi round-trip request whose last round becomes a task).

use std::time::Duration;

use rmcp::{
    ErrorData, RoleServer,
    handler::server::{tool::InputResponses as InputResponsesArg, wrapper::Parameters},
    model::*,
    service::RequestContext,
    task_manager::TaskExit,
    tool, tool_router,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{answer, elicit, elicited, input_required, no_args, text};
use crate::{
    backend::Backend,
    tasks::{Job, Support},
};

/// Longest `slow_compute` (seconds): inside the task's TTL (5 minutes), after which a task
/// still working is marked failed.
const MAX_SECONDS: u64 = 240;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GreetArgs {
    /// Who to greet.
    pub name: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SlowArgs {
    /// Seconds to work before answering (0 answers at once; at most 240).
    #[serde(default)]
    pub seconds: u64,
    /// A label echoed in the result.
    #[serde(default)]
    pub label: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DeleteArgs {
    /// The file to delete once the user confirms.
    pub filename: String,
}

/// An elicitation answer's `content.confirm`, or what the user did instead.
fn confirmed(answer: &Value) -> Result<bool, String> {
    match answer.get("action").and_then(Value::as_str) {
        Some("accept") => Ok(answer
            .get("content")
            .and_then(|c| c.get("confirm"))
            .and_then(Value::as_bool)
            .unwrap_or(true)),
        Some(other) => Err(other.to_owned()),
        None => Err("no action".to_owned()),
    }
}

/// Work that sleeps `seconds` unless cancelled first.
async fn sleep_or_cancel(job: &Job, seconds: u64) -> Result<(), TaskExit> {
    tokio::select! {
        _ = job.cancelled() => Err(TaskExit::Cancelled),
        _ = tokio::time::sleep(Duration::from_secs(seconds)) => Ok(()),
    }
}

#[tool_router(router = task_fixtures, vis = "pub(crate)")]
impl Backend {
    #[tool(description = "Sync-only: returns Hello, {name}!")]
    async fn greet(&self, Parameters(args): Parameters<GreetArgs>) -> CallToolResult {
        text(format!("Hello, {}!", args.name))
    }

    #[tool(
        description = "Task-supporting: works `seconds` seconds (cancellable), then says so with `label`"
    )]
    async fn slow_compute(
        &self,
        Parameters(args): Parameters<SlowArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if args.seconds > MAX_SECONDS {
            return Err(ErrorData::invalid_params(
                format!("seconds must be at most {MAX_SECONDS}"),
                None,
            ));
        }
        let replica = self.replica_id().to_owned();
        self.tasks()
            .long(&ctx, Support::Optional, move |job| async move {
                sleep_or_cancel(&job, args.seconds).await?;
                Ok(text(format!(
                    "slow_compute({}) finished after {}s on {replica}",
                    args.label, args.seconds
                )))
            })
            .await
    }

    #[tool(
        description = "Task-required: reports a tool execution error after about a second",
        input_schema = no_args()
    )]
    async fn failing_job(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.tasks()
            .long(&ctx, Support::Required, |job| async move {
                sleep_or_cancel(&job, 1).await?;
                Ok(CallToolResult::error(vec![ContentBlock::text(
                    "failing_job always fails (a tool execution error)",
                )]))
            })
            .await
    }

    #[tool(
        description = "Task-supporting: fails with a JSON-RPC protocol error",
        input_schema = no_args()
    )]
    async fn protocol_error_job(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.tasks()
            .long(&ctx, Support::Optional, |_job| async move {
                Err(TaskExit::Error(ErrorData::internal_error(
                    "protocol_error_job: the operation broke (a protocol error)",
                    None,
                )))
            })
            .await
    }

    #[tool(description = "Task-required: asks the user to confirm, then deletes `filename`")]
    async fn confirm_delete(
        &self,
        Parameters(args): Parameters<DeleteArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.tasks()
            .long(&ctx, Support::Required, move |job| async move {
                let question = elicit(&format!("Delete {}?", args.filename), "confirm", "boolean");
                let answer = job.ask("confirm", question).await?;
                Ok(match confirmed(&answer) {
                    Ok(true) => text(format!("Deleted {}", args.filename)),
                    Ok(false) => text(format!("Kept {}", args.filename)),
                    Err(action) => text(format!("Not deleted: the user chose {action}")),
                })
            })
            .await
    }

    #[tool(
        description = "Task-required: asks two questions at once, then reports both answers",
        input_schema = no_args()
    )]
    async fn multi_input(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.tasks()
            .long(&ctx, Support::Required, |job| async move {
                let (first, second) = tokio::join!(
                    job.ask("first", elicit("Your name?", "name", "string")),
                    job.ask("second", elicit("Confirm?", "confirm", "boolean")),
                );
                let (first, second) = (first?, second?);
                Ok(text(format!("first: {first}; second: {second}")))
            })
            .await
    }

    #[tool(
        description = "Task-required: asks for user_name (multi round-trip), then works on it as a task",
        input_schema = no_args()
    )]
    async fn test_tool_with_task(
        &self,
        InputResponsesArg(r): InputResponsesArg,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(answer) = answer(r.as_ref(), "user_name")? else {
            if !ctx
                .client_capabilities()
                .is_some_and(|c| c.supports_tasks())
            {
                return Err(crate::tasks::required());
            }
            return Ok(input_required(
                vec![("user_name", elicit("What is your name?", "name", "string"))],
                None,
            ));
        };
        let name = elicited(answer, "name")?;
        self.tasks()
            .long(&ctx, Support::Required, move |job| async move {
                sleep_or_cancel(&job, 1).await?;
                Ok(text(format!("Hello, {name}! (from a task)")))
            })
            .await
    }
}
