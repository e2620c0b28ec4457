//! How the [`Backend`] answers: rmcp does the protocol work (negotiation, 2026-07-28 `_meta`
//! and header validation, MRTR gating, the tasks extension's gating, SSE); this handler supplies
//! capabilities, lists and reads what the [`catalog`](crate::catalog) composes, answers `tasks/*`
//! from [`crate::tasks`], and runs `subscriptions/listen` streams.

use std::borrow::Cow;

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::*,
    service::{RequestContext, SubscriptionContext},
    tool_handler,
};
use serde_json::json;
use tokio::sync::broadcast;

use crate::backend::{Backend, Catalog, ListChange, SERVER_NAME};

/// Whether results should carry 2026-07-28 caching hints.
fn modern(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.protocol_version()
        .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28)
}

macro_rules! with_cache_hints {
    ($result:expr, $ctx:expr) => {{
        let result = $result;
        if modern($ctx) {
            result.with_ttl_ms(0).with_cache_scope(CacheScope::Public)
        } else {
            result
        }
    }};
}

#[tool_handler(router = self.tools())]
#[allow(deprecated)] // logging/setLevel and resources/subscribe are legacy-only, still served
impl ServerHandler for Backend {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_resources_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_logging() // deprecated by 2026-07-28, still part of the legacy revisions
            .enable_completions()
            .enable_tasks()
            .build();
        let mut config = ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Stateless MCP server bundled with mcp-edge. Tool `echo` is the template.",
            );
        config.protocol_version = ProtocolVersion::V_2025_11_25;
        config
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(SUPPORTED)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let all = self.catalog().resources();
        Ok(with_cache_hints!(
            ListResourcesResult::with_all_items(all),
            &ctx
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let templates = self.catalog().resource_templates();
        Ok(with_cache_hints!(
            ListResourceTemplatesResult::with_all_items(templates),
            &ctx
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.as_str();
        let Some(contents) = self.catalog().read(self, uri) else {
            return Err(ErrorData::invalid_params(
                format!("Resource not found: {uri}"),
                Some(json!({ "uri": uri })),
            ));
        };
        Ok(ReadResourceResponse::Complete(with_cache_hints!(
            ReadResourceResult::new(vec![contents]),
            &ctx
        )))
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        _request: SubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // Accepted for legacy clients; a stateless server has no stream to deliver updates on.
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        _request: UnsubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let all = self.catalog().prompts();
        Ok(with_cache_hints!(
            ListPromptsResult::with_all_items(all),
            &ctx
        ))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        self.catalog().get_prompt(&request).unwrap_or_else(|| {
            Err(ErrorData::invalid_params(
                format!("Unknown prompt: {}", request.name),
                Some(json!({ "name": request.name })),
            ))
        })
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let candidates: &[&str] = match (&request.r#ref, request.argument.name.as_str()) {
            (Reference::Prompt(_), "language") => &["python", "rust", "typescript", "go"],
            // The fixtures' `test://template/{id}/data`.
            (Reference::Resource(_), "id") if self.catalog() == Catalog::WithFixtures => {
                &["1", "2", "3"]
            }
            _ => &[],
        };
        let prefix = request.argument.value.as_str();
        let values = candidates
            .iter()
            .filter(|c| c.starts_with(prefix))
            .map(|c| c.to_string())
            .collect();
        let info = CompletionInfo::new(values).map_err(|e| ErrorData::internal_error(e, None))?;
        Ok(CompleteResult::new(info))
    }

    async fn set_level(
        &self,
        _request: SetLevelRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // Stateless: nothing to remember between requests. Accepted so legacy clients proceed.
        Ok(())
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        self.tasks().get(&request.task_id)
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.tasks()
            .update(&request.task_id, request.input_responses)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.tasks().cancel(&request.task_id)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        // Every URI is honoured: an update is announced by URI, whatever the resource.
        Some(requested.clone())
    }

    async fn listen(&self, ctx: SubscriptionContext) -> Result<(), ErrorData> {
        let mut changes = self.changes();
        loop {
            let change = tokio::select! {
                _ = ctx.cancelled() => return Ok(()),
                change = changes.recv() => change,
            };
            let notification = match change {
                Ok(ListChange::Tools) => {
                    ServerNotification::ToolListChangedNotification(Default::default())
                }
                Ok(ListChange::Prompts) => {
                    ServerNotification::PromptListChangedNotification(Default::default())
                }
                Ok(ListChange::Resources) => {
                    ServerNotification::ResourceListChangedNotification(Default::default())
                }
                Ok(ListChange::Updated(uri)) => ServerNotification::ResourceUpdatedNotification(
                    ResourceUpdatedNotification::new(ResourceUpdatedNotificationParam::new(
                        uri.to_string(),
                    )),
                ),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            };
            // The sink drops what the client did not ask for; a closed stream ends the loop.
            if let Err(rmcp::service::SubscriptionSendError::SubscriptionClosed) =
                ctx.sink().send(notification).await
            {
                return Ok(());
            }
        }
    }
}

/// The revisions served: the three legacy ones and 2026-07-28.
pub static SUPPORTED: &[ProtocolVersion] = &[
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2026_07_28,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_versions_match_config_list() {
        let names: Vec<&str> = SUPPORTED.iter().map(|v| v.as_str()).collect();
        assert_eq!(names, crate::config::PROTOCOL_VERSIONS);
    }

    #[test]
    fn request_state_round_trips_and_rejects_tampering() {
        let backend = Backend::new("r1", Some(vec![7u8; 32]), Catalog::Template);
        let sealed = backend.seal(&json!({ "round": 1 })).unwrap();
        let opened: serde_json::Value = backend.open(&sealed).unwrap();
        assert_eq!(opened["round"], 1);
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(backend.open::<serde_json::Value>(&tampered).is_err());
        let other = Backend::new("r2", Some(vec![8u8; 32]), Catalog::Template);
        assert!(
            other.open::<serde_json::Value>(&sealed).is_err(),
            "foreign key must not open"
        );
        let same_key = Backend::new("r3", Some(vec![7u8; 32]), Catalog::Template);
        assert!(
            same_key.open::<serde_json::Value>(&sealed).is_ok(),
            "replicas sharing a key open each other's state"
        );
    }

    fn tool_names(backend: &Backend) -> Vec<String> {
        backend
            .tools()
            .list_all()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect()
    }

    #[test]
    fn the_template_lists_its_own_tools_and_no_fixture() {
        let backend = Backend::new("r1", None, Catalog::Template);
        let mut names = tool_names(&backend);
        names.sort();
        assert_eq!(
            names,
            [
                "confirm",
                "echo",
                "payload",
                "progress",
                "report",
                "sleep",
                "summarize"
            ]
        );
        let catalog = backend.catalog();
        assert!(catalog.resource_templates().is_empty());
        let uris: Vec<_> = catalog.resources().into_iter().map(|r| r.uri).collect();
        assert_eq!(uris, ["info://server"]);
        let prompts: Vec<_> = catalog.prompts().into_iter().map(|p| p.name).collect();
        assert_eq!(prompts, ["code_review"]);
        let echo = backend.tools().get("echo").unwrap();
        let annotations = echo.annotations.as_ref().unwrap();
        assert_eq!(annotations.read_only_hint, Some(true));
        assert_eq!(annotations.idempotent_hint, Some(true));
    }

    #[test]
    fn with_fixtures_it_also_lists_what_the_conformance_suite_calls() {
        let names = tool_names(&Backend::new("r1", None, Catalog::WithFixtures));
        for name in [
            "echo",
            "report",
            "greet",
            "slow_compute",
            "failing_job",
            "test_simple_text",
            "test_input_required_result_elicitation",
        ] {
            assert!(
                names.iter().any(|n| n == name),
                "{name} missing from {names:?}"
            );
        }
        assert!(!Catalog::WithFixtures.resource_templates().is_empty());
    }
}
