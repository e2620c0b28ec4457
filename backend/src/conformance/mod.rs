//! The "everything server" fixtures that the official conformance suite calls: tools, resources
//! and prompts with the exact names of the suite's scenarios (2025 and 2026-07-28 revisions,
//! including multi round-trip requests). They are test fixtures, kept apart from the template.
//!
//! Everything here is stateless: state that must survive a round trip travels in a sealed
//! `requestState` (HMAC, see [`crate::backend::Backend::seal`]), so any replica sharing the key
//! can answer the retry.
//!
//! Logging, sampling and roots are deprecated by 2026-07-28 (SEP-2577) but legacy scenarios
//! still exercise them, hence the `allow(deprecated)`.
#![allow(deprecated)]

use std::time::Duration;

use rmcp::{
    ErrorData, RoleServer,
    handler::server::{tool::RequestState, wrapper::Parameters},
    model::*,
    service::RequestContext,
    tool, tool_router,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::backend::{Backend, ListChange};

/// A 1×1 red PNG.
pub const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg==";
/// A silent WAV header.
pub const WAV: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEARKwAAIhYAQACABAAZGF0YQAAAAA=";

const STATELESS_NOTE: &str = "this server is stateless: a server-to-client request needs a session \
     to carry the client's answer back; 2026-07-28 clients get the same feature as a multi \
     round-trip request (input_required)";

fn text(message: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(message.into())])
}

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("literal schemas are objects"),
    }
}

fn no_args() -> std::sync::Arc<JsonObject> {
    std::sync::Arc::new(object(json!({ "type": "object", "properties": {} })))
}

fn custom_headers_schema() -> std::sync::Arc<JsonObject> {
    std::sync::Arc::new(object(json!({
        "type": "object",
        "properties": {
            "region": { "type": "string", "x-mcp-header": "Region", "description": "Mirrored into Mcp-Param-Region" },
            "query": { "type": "string" }
        },
        "required": ["region"]
    })))
}

fn json_schema_2020_12() -> std::sync::Arc<JsonObject> {
    std::sync::Arc::new(object(json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": { "street": { "type": "string" }, "city": { "type": "string" } }
            }
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string" },
            "email": { "type": "string" }
        },
        "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
        "if": { "properties": { "contactMethod": { "const": "phone" } }, "required": ["contactMethod"] },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "additionalProperties": false
    })))
}

// ----- multi round-trip helpers -------------------------------------------------------------

/// A form elicitation asking for one property of type `ty`.
pub fn elicit(message: &str, property: &str, ty: &str) -> InputRequest {
    let schema = serde_json::from_value(json!({
        "type": "object",
        "properties": { property: { "type": ty } },
        "required": [property]
    }))
    .expect("a literal elicitation schema is valid");
    InputRequest::Elicitation(ElicitRequest::new(
        ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: message.to_owned(),
            requested_schema: schema,
        },
    ))
}

pub fn sample(prompt: &str, max_tokens: u32) -> InputRequest {
    InputRequest::CreateMessage(CreateMessageRequest::new(CreateMessageRequestParams::new(
        vec![SamplingMessage::user_text(prompt)],
        max_tokens,
    )))
}

pub fn list_roots() -> InputRequest {
    InputRequest::ListRoots(ListRootsRequest {
        method: Default::default(),
        extensions: Default::default(),
    })
}

fn input_required(requests: Vec<(&str, InputRequest)>, state: Option<String>) -> CallToolResponse {
    let map: InputRequests = requests
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    InputRequiredResult::new(Some(map), state).into()
}

/// The client capability a legacy-named asking tool needs.
#[derive(Clone, Copy)]
enum Need {
    Sampling,
    Elicitation,
}

/// One question, one answer: the body of the four legacy-named asking tools. A 2026-07-28
/// request gets `input_required` (or -32021 without the capability), then `done(answer)`; a
/// legacy request to a stateless server cannot carry an answer back, so it gets the note.
fn asked(
    ctx: &RequestContext<RoleServer>,
    tool: &str,
    key: &str,
    responses: Option<&InputResponses>,
    need: Need,
    ask: impl FnOnce() -> InputRequest,
    done: impl FnOnce(&JsonObject) -> String,
) -> Result<CallToolResponse, ErrorData> {
    if ctx.meta.protocol_version().is_none() {
        return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
            "{tool}: {STATELESS_NOTE}"
        ))])
        .into());
    }
    if let Some(answer) = answer(responses, key)? {
        return Ok(text(done(answer)).into());
    }
    let caps = client_capabilities(ctx);
    let declared = match need {
        Need::Sampling => caps.sampling.is_some(),
        Need::Elicitation => caps.elicitation.is_some(),
    };
    if !declared {
        let mut required = ClientCapabilities::default();
        match need {
            Need::Sampling => required.sampling = Some(Default::default()),
            Need::Elicitation => required.elicitation = Some(Default::default()),
        }
        return Err(ErrorData::missing_required_client_capability(required));
    }
    Ok(input_required(vec![(key, ask())], None))
}

/// A form elicitation with a whole literal schema (kept field for field: see the tests).
fn form(message: &str, schema: Value) -> InputRequest {
    serde_json::from_value(json!({
        "method": "elicitation/create",
        "params": { "mode": "form", "message": message, "requestedSchema": schema }
    }))
    .expect("a literal elicitation request is valid")
}

/// `action=<a>, content=<json>`, as the suite's reference server words it.
fn elicitation_summary(answer: &JsonObject) -> String {
    let action = answer
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let content = answer.get("content").cloned().unwrap_or_else(|| json!({}));
    format!("action={action}, content={content}")
}

/// SEP-1034: a default for every primitive type.
fn defaults_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "description": "User name", "default": "John Doe" },
            "age": { "type": "integer", "description": "User age", "default": 30 },
            "score": { "type": "number", "description": "User score", "default": 95.5 },
            "status": {
                "type": "string", "description": "User status",
                "enum": ["active", "inactive", "pending"], "default": "active"
            },
            "verified": { "type": "boolean", "description": "Verification status", "default": true }
        },
        "required": []
    })
}

/// SEP-1330: the five enum shapes.
fn enums_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "untitledSingle": {
                "type": "string", "description": "Select one option",
                "enum": ["option1", "option2", "option3"]
            },
            "titledSingle": {
                "type": "string", "description": "Select one option with titles",
                "oneOf": [
                    { "const": "value1", "title": "First Option" },
                    { "const": "value2", "title": "Second Option" },
                    { "const": "value3", "title": "Third Option" }
                ]
            },
            "legacyEnum": {
                "type": "string", "description": "Select one option (legacy)",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"]
            },
            "untitledMulti": {
                "type": "array", "description": "Select multiple options", "minItems": 1, "maxItems": 3,
                "items": { "type": "string", "enum": ["option1", "option2", "option3"] }
            },
            "titledMulti": {
                "type": "array", "description": "Select multiple options with titles", "minItems": 1, "maxItems": 3,
                "items": {
                    "anyOf": [
                        { "const": "value1", "title": "First Choice" },
                        { "const": "value2", "title": "Second Choice" },
                        { "const": "value3", "title": "Third Choice" }
                    ]
                }
            }
        },
        "required": []
    })
}

/// What the server remembers between rounds, sealed into `requestState`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct RoundState {
    tool: String,
    round: u32,
}

/// The client's answer for `key`, checked to be a JSON object; `Err` for a malformed answer.
fn answer<'a>(
    responses: Option<&'a InputResponses>,
    key: &str,
) -> Result<Option<&'a JsonObject>, ErrorData> {
    match responses.and_then(|r| r.get(key)) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(other) => Err(ErrorData::invalid_params(
            format!("inputResponses.{key} must be an object, got {other}"),
            Some(json!({ "key": key })),
        )),
    }
}

/// The accepted elicitation content field `field`, or a description of the action taken.
fn elicited(answer: &JsonObject, field: &str) -> Result<String, ErrorData> {
    match answer.get("action").and_then(Value::as_str) {
        Some("accept") => answer
            .get("content")
            .and_then(|c| c.get(field))
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            })
            .ok_or_else(|| {
                ErrorData::invalid_params(
                    format!("accepted elicitation lacks content.{field}"),
                    None,
                )
            }),
        Some(action @ ("decline" | "cancel")) => Ok(format!("({action}d)")),
        _ => Err(ErrorData::invalid_params(
            "elicitation answer needs an action of accept, decline or cancel",
            None,
        )),
    }
}

fn sampled_text(answer: &JsonObject) -> String {
    answer
        .get("content")
        .and_then(|c| c.get("text"))
        .and_then(Value::as_str)
        .unwrap_or("(no text)")
        .to_owned()
}

fn client_capabilities(ctx: &RequestContext<RoleServer>) -> ClientCapabilities {
    ctx.meta.client_capabilities().unwrap_or_default()
}

/// Log at `level`, honouring the request's `_meta` logLevel on 2026-07-28 (no level, no logs);
/// legacy requests carry no level in a stateless server, so they always get the message.
async fn log(ctx: &RequestContext<RoleServer>, level: LoggingLevel, message: &str) {
    if ctx.meta.protocol_version().is_some() {
        match ctx.meta.log_level() {
            Some(min) if severity(level) >= severity(min) => {}
            _ => return,
        }
    }
    let note =
        LoggingMessageNotificationParam::new(level, json!(message)).with_logger("mcp-backend");
    let _ = ctx.peer.notify_logging_message(note).await;
}

/// RFC 5424 order, least severe first.
fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        _ => 7,
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PromptArg {
    /// The prompt to send to the client's model.
    pub prompt: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct MessageArg {
    /// The message to show the user.
    pub message: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UriArg {
    /// The resource that changed (default: test://watched-resource).
    pub uri: Option<String>,
}

/// The suite's subscribable resource.
const WATCHED: &str = "test://watched-resource";

#[tool_router(router = conformance_tools, vis = "pub(crate)")]
impl Backend {
    #[tool(description = "Returns simple text content", input_schema = no_args())]
    async fn test_simple_text(&self) -> CallToolResult {
        text("This is a simple text response for testing.")
    }

    #[tool(description = "Returns image content", input_schema = no_args())]
    async fn test_image_content(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::image(PNG, "image/png")])
    }

    #[tool(description = "Returns audio content", input_schema = no_args())]
    async fn test_audio_content(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::Audio(AudioContent::new(
            WAV,
            "audio/wav",
        ))])
    }

    #[tool(description = "Returns an embedded resource", input_schema = no_args())]
    async fn test_embedded_resource(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::resource(
            ResourceContents::TextResourceContents {
                uri: "test://embedded-resource".into(),
                mime_type: Some("text/plain".into()),
                text: "This is an embedded resource content.".into(),
                meta: None,
            },
        )])
    }

    #[tool(description = "Returns text, image and resource content", input_schema = no_args())]
    async fn test_multiple_content_types(&self) -> CallToolResult {
        CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            ContentBlock::image(PNG, "image/png"),
            ContentBlock::resource(ResourceContents::TextResourceContents {
                uri: "test://mixed-content-resource".into(),
                mime_type: Some("application/json".into()),
                text: r#"{"test":"data","value":123}"#.into(),
                meta: None,
            }),
        ])
    }

    #[tool(description = "Sends three info log notifications 50 ms apart", input_schema = no_args())]
    async fn test_tool_with_logging(&self, ctx: RequestContext<RoleServer>) -> CallToolResult {
        for (i, message) in [
            "Tool execution started",
            "Tool processing data",
            "Tool execution completed",
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            log(&ctx, LoggingLevel::Info, message).await;
        }
        text("Logging test completed")
    }

    #[tool(description = "Logs only when the request's _meta sets a logLevel (2026-07-28)", input_schema = no_args())]
    async fn test_logging_tool(&self, ctx: RequestContext<RoleServer>) -> CallToolResult {
        log(&ctx, LoggingLevel::Info, "test_logging_tool ran").await;
        text("Logging tool completed")
    }

    #[tool(description = "Reports progress 0, 50, 100 of 100, 50 ms apart", input_schema = no_args())]
    async fn test_tool_with_progress(&self, ctx: RequestContext<RoleServer>) -> CallToolResult {
        let token = ctx.meta.get_progress_token();
        for (i, (progress, message)) in [(0.0, "Starting"), (50.0, "Halfway"), (100.0, "Complete")]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if let Some(token) = &token {
                let note = ProgressNotificationParam::new(token.clone(), progress)
                    .with_total(100.0)
                    .with_message(message);
                let _ = ctx.peer.notify_progress(note).await;
            }
        }
        text("Progress test completed")
    }

    #[tool(description = "Always fails", input_schema = no_args())]
    async fn test_error_handling(&self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(
            "This tool intentionally returns an error for testing",
        )])
    }

    #[tool(
        description = "Asks the client's model: an input_required result on 2026-07-28 (legacy: explained error)"
    )]
    async fn test_sampling(
        &self,
        Parameters(args): Parameters<PromptArg>,
        InputResponsesArg(r): InputResponsesArg,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let prompt = args.prompt.unwrap_or_else(|| "Hello".into());
        asked(
            &ctx,
            "test_sampling",
            "llm",
            r.as_ref(),
            Need::Sampling,
            || sample(&prompt, 100),
            |a| format!("LLM response: {}", sampled_text(a)),
        )
    }

    #[tool(
        description = "Asks the user for input: an input_required result on 2026-07-28 (legacy: explained error)"
    )]
    async fn test_elicitation(
        &self,
        Parameters(args): Parameters<MessageArg>,
        InputResponsesArg(r): InputResponsesArg,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let message = args
            .message
            .unwrap_or_else(|| "Please provide your information".into());
        let schema = json!({
            "type": "object",
            "properties": { "response": { "type": "string", "description": "User's response" } },
            "required": ["response"]
        });
        asked(
            &ctx,
            "test_elicitation",
            "user_info",
            r.as_ref(),
            Need::Elicitation,
            || form(&message, schema),
            |a| format!("User response: {}", elicitation_summary(a)),
        )
    }

    #[tool(description = "Elicitation with defaults (SEP-1034): input_required on 2026-07-28", input_schema = no_args())]
    async fn test_elicitation_sep1034_defaults(
        &self,
        InputResponsesArg(r): InputResponsesArg,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let ask = || {
            form(
                "Please review and update the form fields with defaults",
                defaults_schema(),
            )
        };
        asked(
            &ctx,
            "elicitation",
            "defaults",
            r.as_ref(),
            Need::Elicitation,
            ask,
            |a| format!("Elicitation completed: {}", elicitation_summary(a)),
        )
    }

    #[tool(description = "Elicitation with enums (SEP-1330): input_required on 2026-07-28", input_schema = no_args())]
    async fn test_elicitation_sep1330_enums(
        &self,
        InputResponsesArg(r): InputResponsesArg,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let ask = || form("Please select options from the enum fields", enums_schema());
        asked(
            &ctx,
            "elicitation",
            "enums",
            r.as_ref(),
            Need::Elicitation,
            ask,
            |a| format!("Elicitation completed: {}", elicitation_summary(a)),
        )
    }

    #[tool(description = "Answers after 100 ms (SSE reconnection scenario)", input_schema = no_args())]
    async fn test_reconnection(&self) -> CallToolResult {
        tokio::time::sleep(Duration::from_millis(100)).await;
        text("Reconnection test completed")
    }

    #[tool(description = "Tool with JSON Schema 2020-12 features", input_schema = json_schema_2020_12())]
    async fn json_schema_2020_12_tool(&self, args: JsonObject) -> CallToolResult {
        let name = args.get("name").and_then(Value::as_str).unwrap_or("world");
        text(format!("Hello, {name}!"))
    }

    #[tool(description = "Echoes its x-mcp-header parameter (SEP-2243 custom headers)", input_schema = custom_headers_schema())]
    async fn test_custom_headers(&self, args: JsonObject) -> CallToolResult {
        text(format!(
            "region={}",
            args.get("region").and_then(Value::as_str).unwrap_or("")
        ))
    }

    // ----- 2026-07-28: stateless lifecycle diagnostics ---------------------------------------

    #[tool(description = "Needs the sampling client capability; without it answers -32021", input_schema = no_args())]
    async fn test_missing_capability(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if client_capabilities(&ctx).sampling.is_none() {
            let mut required = ClientCapabilities::default();
            required.sampling = Some(Default::default());
            return Err(ErrorData::missing_required_client_capability(required));
        }
        Ok(input_required(
            vec![("answer", sample("Say hello", 20))],
            None,
        ))
    }

    #[tool(description = "Asks for input mid-call as an input_required result, never as a request", input_schema = no_args())]
    async fn test_streaming_elicitation(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if client_capabilities(&ctx).elicitation.is_none() {
            let mut required = ClientCapabilities::default();
            required.elicitation = Some(Default::default());
            return Err(ErrorData::missing_required_client_capability(required));
        }
        Ok(input_required(
            vec![("name", elicit("What is your name?", "name", "string"))],
            None,
        ))
    }

    #[tool(description = "Announces a tool-list change to this replica's listen streams", input_schema = no_args())]
    async fn test_trigger_tool_change(&self) -> CallToolResult {
        self.announce(ListChange::Tools);
        text("tools/list_changed announced")
    }

    #[tool(description = "Announces a prompt-list change to this replica's listen streams", input_schema = no_args())]
    async fn test_trigger_prompt_change(&self) -> CallToolResult {
        self.announce(ListChange::Prompts);
        text("prompts/list_changed announced")
    }

    #[tool(
        description = "Announces that a resource changed (notifications/resources/updated) to this replica's listen streams that subscribed its URI"
    )]
    async fn test_trigger_resource_update(
        &self,
        Parameters(args): Parameters<UriArg>,
    ) -> CallToolResult {
        let uri = args.uri.unwrap_or_else(|| WATCHED.to_owned());
        let done = format!("resources/updated announced for {uri}");
        self.announce(ListChange::Updated(uri.into()));
        text(done)
    }

    // ----- 2026-07-28: multi round-trip requests (SEP-2322) -----------------------------------

    #[tool(description = "MRTR: one elicitation, then a greeting", input_schema = no_args())]
    async fn test_input_required_result_elicitation(
        &self,
        InputResponsesArg(r): InputResponsesArg,
    ) -> Result<CallToolResponse, ErrorData> {
        match answer(r.as_ref(), "user_name")? {
            None => Ok(input_required(
                vec![("user_name", elicit("What is your name?", "name", "string"))],
                None,
            )),
            Some(a) => Ok(text(format!("Hello, {}!", elicited(a, "name")?)).into()),
        }
    }

    #[tool(description = "MRTR: one sampling request", input_schema = no_args())]
    async fn test_input_required_result_sampling(
        &self,
        InputResponsesArg(r): InputResponsesArg,
    ) -> Result<CallToolResponse, ErrorData> {
        match answer(r.as_ref(), "capital_question")? {
            None => Ok(input_required(
                vec![(
                    "capital_question",
                    sample("What is the capital of France?", 100),
                )],
                None,
            )),
            Some(a) => Ok(text(format!("Model said: {}", sampled_text(a))).into()),
        }
    }

    #[tool(description = "MRTR: one roots/list request", input_schema = no_args())]
    async fn test_input_required_result_list_roots(
        &self,
        InputResponsesArg(r): InputResponsesArg,
    ) -> Result<CallToolResponse, ErrorData> {
        match answer(r.as_ref(), "client_roots")? {
            None => Ok(input_required(vec![("client_roots", list_roots())], None)),
            Some(a) => {
                let roots = a.get("roots").and_then(Value::as_array).ok_or_else(|| {
                    ErrorData::invalid_params(
                        "client_roots must be a ListRootsResult with a roots array",
                        None,
                    )
                })?;
                let uris: Vec<&str> = roots
                    .iter()
                    .filter_map(|r| r.get("uri").and_then(Value::as_str))
                    .collect();
                Ok(text(format!("Roots: {}", uris.join(", "))).into())
            }
        }
    }

    #[tool(description = "MRTR: round-trips a sealed requestState", input_schema = no_args())]
    async fn test_input_required_result_request_state(
        &self,
        InputResponsesArg(r): InputResponsesArg,
        RequestState(state): RequestState,
    ) -> Result<CallToolResponse, ErrorData> {
        const TOOL: &str = "request_state";
        let confirm = answer(r.as_ref(), "confirm")?;
        match (confirm, state) {
            (Some(_), Some(state)) => {
                self.open_round(&state, TOOL, 1)?;
                Ok(text("state-ok: requestState verified").into())
            }
            _ => Ok(input_required(
                vec![("confirm", elicit("Please confirm", "ok", "boolean"))],
                Some(self.seal_round(TOOL, 1)?),
            )),
        }
    }

    #[tool(description = "MRTR: elicitation, sampling and roots in one round", input_schema = no_args())]
    async fn test_input_required_result_multiple_inputs(
        &self,
        InputResponsesArg(r): InputResponsesArg,
        RequestState(state): RequestState,
    ) -> Result<CallToolResponse, ErrorData> {
        const TOOL: &str = "multiple_inputs";
        if let Some(state) = &state {
            self.open_round(state, TOOL, 1)?;
        }
        let mut missing = Vec::new();
        for key in ["user_name", "greeting", "client_roots"] {
            if answer(r.as_ref(), key)?.is_none() {
                missing.push(key);
            }
        }
        if missing.is_empty() && state.is_some() {
            return Ok(text("Every input answered; the call is complete.").into());
        }
        let wanted = if state.is_none() {
            vec!["user_name", "greeting", "client_roots"]
        } else {
            missing
        };
        let requests = wanted
            .into_iter()
            .map(|key| match key {
                "user_name" => (key, elicit("What is your name?", "name", "string")),
                "greeting" => (key, sample("Generate a greeting", 50)),
                _ => (key, list_roots()),
            })
            .collect();
        Ok(input_required(requests, Some(self.seal_round(TOOL, 1)?)))
    }

    #[tool(description = "MRTR: two rounds with evolving requestState", input_schema = no_args())]
    async fn test_input_required_result_multi_round(
        &self,
        InputResponsesArg(r): InputResponsesArg,
        RequestState(state): RequestState,
    ) -> Result<CallToolResponse, ErrorData> {
        const TOOL: &str = "multi_round";
        let round = match &state {
            None => 0,
            Some(s) => self.open_state(s, TOOL)?,
        };
        match round {
            1 => match answer(r.as_ref(), "step1")? {
                Some(a) => {
                    let name = elicited(a, "name")?;
                    let _ = name;
                    Ok(input_required(
                        vec![(
                            "step2",
                            elicit("Step 2: What is your favorite color?", "color", "string"),
                        )],
                        Some(self.seal_round(TOOL, 2)?),
                    ))
                }
                None => Ok(self.multi_round_start()?),
            },
            2 => match answer(r.as_ref(), "step2")? {
                Some(a) => Ok(text(format!(
                    "Both rounds answered (color {}); the call is complete.",
                    elicited(a, "color")?
                ))
                .into()),
                None => Ok(input_required(
                    vec![(
                        "step2",
                        elicit("Step 2: What is your favorite color?", "color", "string"),
                    )],
                    Some(self.seal_round(TOOL, 2)?),
                )),
            },
            _ => Ok(self.multi_round_start()?),
        }
    }

    #[tool(description = "MRTR: requestState is HMAC-sealed; a tampered one is rejected", input_schema = no_args())]
    async fn test_input_required_result_tampered_state(
        &self,
        InputResponsesArg(r): InputResponsesArg,
        RequestState(state): RequestState,
    ) -> Result<CallToolResponse, ErrorData> {
        const TOOL: &str = "tampered_state";
        match state {
            Some(state) => {
                self.open_round(&state, TOOL, 1)?;
                match answer(r.as_ref(), "confirm")? {
                    Some(_) => Ok(text("Request state verified; the call is complete.").into()),
                    None => Ok(input_required(
                        vec![("confirm", elicit("Confirm to continue", "ok", "boolean"))],
                        Some(self.seal_round(TOOL, 1)?),
                    )),
                }
            }
            None => Ok(input_required(
                vec![("confirm", elicit("Confirm to continue", "ok", "boolean"))],
                Some(self.seal_round(TOOL, 1)?),
            )),
        }
    }

    #[tool(description = "MRTR: asks only for what the client declared (sampling, elicitation, roots)", input_schema = no_args())]
    async fn test_input_required_result_capabilities(
        &self,
        InputResponsesArg(r): InputResponsesArg,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if r.as_ref().is_some_and(|r| !r.is_empty()) {
            return Ok(text("Declared-capability input answered.").into());
        }
        let caps = client_capabilities(&ctx);
        let mut requests = Vec::new();
        if caps.sampling.is_some() {
            requests.push(("summary", sample("Summarise the input", 50)));
        }
        if caps.elicitation.is_some() {
            requests.push(("user_name", elicit("What is your name?", "name", "string")));
        }
        if caps.roots.is_some() {
            requests.push(("client_roots", list_roots()));
        }
        if requests.is_empty() {
            let mut required = ClientCapabilities::default();
            required.sampling = Some(Default::default());
            return Err(ErrorData::missing_required_client_capability(required));
        }
        Ok(input_required(requests, None))
    }
}

/// `InputResponses` under a name that does not clash with the model type.
pub use rmcp::handler::server::tool::InputResponses as InputResponsesArg;

impl Backend {
    fn multi_round_start(&self) -> Result<CallToolResponse, ErrorData> {
        Ok(input_required(
            vec![(
                "step1",
                elicit("Step 1: What is your name?", "name", "string"),
            )],
            Some(self.seal_round("multi_round", 1)?),
        ))
    }

    fn seal_round(&self, tool: &str, round: u32) -> Result<String, ErrorData> {
        self.seal(&RoundState {
            tool: tool.to_owned(),
            round,
        })
    }

    /// The round sealed in `state` for `tool`; a tampered or foreign state is -32602.
    fn open_state(&self, state: &str, tool: &str) -> Result<u32, ErrorData> {
        let opened: RoundState = self.open(state)?;
        if opened.tool != tool {
            return Err(ErrorData::invalid_params(
                "requestState belongs to another tool",
                None,
            ));
        }
        Ok(opened.round)
    }

    fn open_round(&self, state: &str, tool: &str, round: u32) -> Result<(), ErrorData> {
        if self.open_state(state, tool)? != round {
            return Err(ErrorData::invalid_params(
                "requestState is for another round",
                None,
            ));
        }
        Ok(())
    }
}

// ----- resources -------------------------------------------------------------------------

pub mod prompts;
pub mod resources;
pub mod tasks;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_answers_are_invalid_params() {
        let mut r = InputResponses::new();
        r.insert("user_name".into(), json!("not an object"));
        assert!(answer(Some(&r), "user_name").is_err());
        assert!(answer(Some(&r), "other").unwrap().is_none());
        let ok = object(json!({ "action": "accept", "content": { "name": "Alice" } }));
        assert_eq!(elicited(&ok, "name").unwrap(), "Alice");
        let bad = object(json!({ "action": "maybe" }));
        assert!(elicited(&bad, "name").is_err());
    }

    #[test]
    fn literal_elicitation_schemas_survive_the_typed_model() {
        for schema in [defaults_schema(), enums_schema()] {
            let request = serde_json::to_value(form("m", schema.clone())).unwrap();
            assert_eq!(request["params"]["requestedSchema"], schema);
            assert_eq!(request["params"]["mode"], "form");
        }
    }
}
