//! The template's tools: `echo`, the one users copy; `confirm` and `summarize`, the ones to copy
//! for a tool that asks the user (elicitation) or the client's model (sampling); `report`, the one
//! to copy for long-running work (a task, polled by the client, with progress); and the helpers
//! that streaming tests and benchmarks need (`sleep`, `progress`, `payload`).
//!
//! A tool that asks is a multi round-trip request (2026-07-28): its first answer is
//! `input_required` with the question, and the client calls again with the answer in
//! `inputResponses` — to any replica, so nothing is kept between the two. Legacy clients get the
//! same through mcp-edge, which asks them on the call's stream; called directly by a legacy
//! client, such a tool can only explain (a stateless server cannot receive the answer).
//!
//! Sampling is deprecated by 2026-07-28 (SEP-2577), but clients of every era still offer it.
#![allow(deprecated)]
//!
//! Adding a tool is one method in the `#[tool_router]` block below: a doc-less `#[tool]` with a
//! description, an argument struct deriving `Deserialize` + `JsonSchema`, and a body returning
//! `CallToolResult` (use `CallToolResult::error` for failures the caller should read). Annotate
//! read-only or idempotent tools: mcp-edge retries such calls on another replica when a
//! connection breaks before any response byte. Work that takes longer than a request should
//! wait returns `self.tasks().long(&ctx, Support::Optional, |job| async move { … })` (see
//! `report` and [`crate::tasks`]): a client with the tasks extension gets a task id at once and
//! polls.

use std::time::Duration;

use rmcp::{
    ErrorData, RoleServer,
    handler::server::{tool::InputResponses, wrapper::Parameters},
    model::{
        CallToolResponse, CallToolResult, ContentBlock, CreateMessageRequest,
        CreateMessageRequestParams, ElicitRequest, ElicitRequestParams, InputRequest,
        InputRequiredResult, ProgressNotificationParam, SamplingMessage,
    },
    service::RequestContext,
    tool, tool_router,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    backend::Backend,
    tasks::{Support, TaskExit},
};

/// Largest `payload` the helper produces (bytes).
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;
/// Longest `sleep` and `progress` run (milliseconds).
pub const MAX_SLEEP_MS: u64 = 60_000;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct EchoArgs {
    /// The text to echo back; must not be empty.
    pub message: String,
    /// How many times to repeat the message (1 to 10), joined by newlines.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 10))]
    pub repeat: i64,
}

fn one() -> i64 {
    1
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SleepArgs {
    /// Milliseconds to wait before answering (at most 60000).
    pub ms: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ProgressArgs {
    /// Number of progress notifications to emit (1 to 1000).
    pub steps: u32,
    /// Milliseconds between two notifications (at most 60000 in total).
    #[serde(default)]
    pub interval_ms: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PayloadArgs {
    /// Size of the returned text in bytes (at most 16 MiB).
    pub bytes: usize,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReportArgs {
    /// What the report is about.
    pub topic: String,
    /// Sections to write (1 to 100), one after the other.
    #[serde(default = "three")]
    #[schemars(range(min = 1, max = 100))]
    pub sections: u32,
    /// Milliseconds each section takes (at most 60000 in total).
    #[serde(default = "second")]
    pub section_ms: u64,
}

fn three() -> u32 {
    3
}

fn second() -> u64 {
    1_000
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ConfirmArgs {
    /// What the user is asked to confirm, e.g. "delete 3 files".
    pub action: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SummarizeArgs {
    /// The text the client's model is asked to summarize.
    pub text: String,
}

/// What an asking tool says to a legacy client calling it directly.
const ASKS: &str = "asks the client a question, which a stateless server can only do in protocol      2026-07-28 (a multi round-trip request); legacy clients get it through mcp-edge";

/// `input_required` with one question under `key`.
fn ask(key: &str, question: InputRequest) -> CallToolResponse {
    let questions = [(key.to_owned(), question)].into_iter().collect();
    InputRequiredResult::new(Some(questions), None).into()
}

/// The result of `echo`, or the message a caller can act on.
pub fn echo_text(args: &EchoArgs) -> Result<String, String> {
    if args.message.is_empty() {
        return Err("message must not be empty".to_owned());
    }
    if !(1..=10).contains(&args.repeat) {
        return Err(format!(
            "repeat must be between 1 and 10, got {}",
            args.repeat
        ));
    }
    let n = args.repeat as usize;
    let mut out = String::with_capacity(n * (args.message.len() + 1));
    for i in 0..n {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&args.message);
    }
    Ok(out)
}

/// `bytes` bytes of printable text: a repeating alphabet, so corruption is visible.
pub fn payload_text(bytes: usize) -> String {
    const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz0123456789";
    // Whole copies, then a cut: a copy at memory speed (a character at a time took ~30 ms for
    // 16 MiB, on the replica's worker thread).
    let mut text = ALPHABET.repeat(bytes.div_ceil(ALPHABET.len()));
    text.truncate(bytes);
    text
}

fn tool_error(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

fn text(message: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(message.into())])
}

#[tool_router(router = template_tools, vis = "pub(crate)")]
impl Backend {
    #[tool(
        description = "Echo a message back, repeated `repeat` times (1-10) joined by newlines.",
        annotations(
            title = "Echo",
            read_only_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> CallToolResult {
        match echo_text(&args) {
            Ok(out) => text(out),
            Err(reason) => tool_error(reason),
        }
    }

    #[tool(
        description = "Wait `ms` milliseconds (at most 60000), then answer. For streaming and timeout tests.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn sleep(&self, Parameters(args): Parameters<SleepArgs>) -> CallToolResult {
        if args.ms > MAX_SLEEP_MS {
            return tool_error(format!(
                "ms must be at most {MAX_SLEEP_MS}, got {}",
                args.ms
            ));
        }
        tokio::time::sleep(Duration::from_millis(args.ms)).await;
        text(format!("slept {} ms", args.ms))
    }

    #[tool(
        description = "Emit one progress notification per step, `interval_ms` apart, then answer. \
                       Send a progressToken in _meta to receive the notifications (over SSE).",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn progress(
        &self,
        Parameters(args): Parameters<ProgressArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        if !(1..=1000).contains(&args.steps) {
            return Ok(tool_error(format!(
                "steps must be between 1 and 1000, got {}",
                args.steps
            )));
        }
        if args.interval_ms.saturating_mul(args.steps as u64) > MAX_SLEEP_MS {
            return Ok(tool_error(format!(
                "steps × interval_ms must be at most {MAX_SLEEP_MS} ms"
            )));
        }
        let token = ctx.meta.get_progress_token();
        for step in 1..=args.steps {
            if step > 1 && args.interval_ms > 0 {
                tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
            }
            if let Some(token) = &token {
                let note = ProgressNotificationParam::new(token.clone(), step as f64)
                    .with_total(args.steps as f64)
                    .with_message(format!("step {step} of {}", args.steps));
                // A client that went away ends the call: that is cancellation in 2026-07-28.
                if ctx.peer.notify_progress(note).await.is_err() || ctx.ct.is_cancelled() {
                    return Err(ErrorData::internal_error("client went away", None));
                }
            }
        }
        Ok(text(format!("completed {} steps", args.steps)))
    }

    #[tool(
        description = "Ask the user to confirm `action` (elicitation), then say what they chose."
    )]
    async fn confirm(
        &self,
        Parameters(args): Parameters<ConfirmArgs>,
        InputResponses(answers): InputResponses,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if ctx.meta.protocol_version().is_none() {
            return Ok(tool_error(format!("confirm {ASKS}")).into());
        }
        // The retry: the user's answer is here, under the key the question was asked with.
        if let Some(answer) = answers.as_ref().and_then(|a| a.get("confirm")) {
            let accepted = answer.get("action").and_then(Value::as_str) == Some("accept");
            let yes = answer
                .pointer("/content/confirmed")
                .and_then(Value::as_bool)
                == Some(true);
            let verdict = if accepted && yes {
                "confirmed"
            } else {
                "not confirmed"
            };
            return Ok(text(format!("{verdict}: {}", args.action)).into());
        }
        let schema = serde_json::from_value(json!({
            "type": "object",
            "properties": { "confirmed": { "type": "boolean", "title": "Go ahead?" } },
            "required": ["confirmed"]
        }))
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let question = ElicitRequest::new(ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: format!("Confirm: {}", args.action),
            requested_schema: schema,
        });
        Ok(ask("confirm", InputRequest::Elicitation(question)))
    }

    #[tool(
        description = "Ask the client's model to summarize `text` (sampling), then return the summary."
    )]
    async fn summarize(
        &self,
        Parameters(args): Parameters<SummarizeArgs>,
        InputResponses(answers): InputResponses,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if ctx.meta.protocol_version().is_none() {
            return Ok(tool_error(format!("summarize {ASKS}")).into());
        }
        if let Some(answer) = answers.as_ref().and_then(|a| a.get("summary")) {
            let summary = answer
                .pointer("/content/text")
                .and_then(Value::as_str)
                .unwrap_or("");
            return Ok(text(format!("summary: {summary}")).into());
        }
        let prompt = format!("Summarize in one sentence:\n\n{}", args.text);
        let question = CreateMessageRequest::new(CreateMessageRequestParams::new(
            vec![SamplingMessage::user_text(prompt)],
            200,
        ));
        Ok(ask("summary", InputRequest::CreateMessage(question)))
    }

    #[tool(
        description = "Return exactly `bytes` bytes of text (at most 16 MiB). For body-size and throughput tests.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn payload(&self, Parameters(args): Parameters<PayloadArgs>) -> CallToolResult {
        if args.bytes > MAX_PAYLOAD {
            return tool_error(format!(
                "bytes must be at most {MAX_PAYLOAD}, got {}",
                args.bytes
            ));
        }
        text(payload_text(args.bytes))
    }

    #[tool(
        description = "Write a report on `topic`, one section at a time: long-running work. With the tasks extension it runs as a task (poll tasks/get; statusMessage says how far it is; tasks/cancel stops it); without, the call waits (progress notifications when asked for)."
    )]
    async fn report(
        &self,
        Parameters(args): Parameters<ReportArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !(1..=100).contains(&args.sections) {
            return Ok(tool_error(format!(
                "sections must be between 1 and 100, got {}",
                args.sections
            ))
            .into());
        }
        if args.section_ms.saturating_mul(args.sections as u64) > MAX_SLEEP_MS {
            return Ok(tool_error(format!(
                "sections × section_ms must be at most {MAX_SLEEP_MS} ms"
            ))
            .into());
        }
        self.tasks()
            .long(&ctx, Support::Optional, move |job| async move {
                let mut report = format!("# {}\n", args.topic);
                for n in 1..=args.sections {
                    tokio::select! {
                        _ = job.cancelled() => return Err(TaskExit::Cancelled),
                        _ = tokio::time::sleep(Duration::from_millis(args.section_ms)) => {}
                    }
                    report.push_str(&format!("\n## Section {n}\n…\n"));
                    job.progress(
                        n,
                        args.sections,
                        format!("section {n} of {}", args.sections),
                    )
                    .await;
                }
                Ok(text(report))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(message: &str, repeat: i64) -> Result<String, String> {
        echo_text(&EchoArgs {
            message: message.into(),
            repeat,
        })
    }

    #[test]
    fn echo_repeats_joined_by_newlines() {
        assert_eq!(echo("hi", 1).unwrap(), "hi");
        assert_eq!(echo("hi", 3).unwrap(), "hi\nhi\nhi");
    }

    #[test]
    fn echo_rejects_empty_and_out_of_range() {
        assert_eq!(echo("", 1).unwrap_err(), "message must not be empty");
        assert!(
            echo("x", 0)
                .unwrap_err()
                .contains("between 1 and 10, got 0")
        );
        assert!(echo("x", 11).unwrap_err().contains("got 11"));
    }

    #[test]
    fn repeat_defaults_to_one() {
        let args: EchoArgs = serde_json::from_str(r#"{"message":"m"}"#).unwrap();
        assert_eq!(args.repeat, 1);
    }

    #[test]
    fn payload_has_exact_length() {
        assert_eq!(payload_text(0).len(), 0);
        assert_eq!(payload_text(100_000).len(), 100_000);
    }
}
