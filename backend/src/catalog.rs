//! What this server serves, composed in one place: the [`template`](crate::template) (what users
//! copy) and the [`conformance`](crate::conformance) fixtures (what the official suite calls).
//! A new tool, resource or prompt lands in the template's file of its kind; this module lists it.

use rmcp::{
    ErrorData,
    model::{
        GetPromptRequestParams, GetPromptResponse, Prompt, Resource, ResourceContents,
        ResourceTemplate,
    },
};

use crate::{backend::Backend, conformance, template};

impl Backend {
    /// The bundled server: the template's tools and the conformance fixtures.
    /// `state_key`: the HMAC key for `requestState`; `None` makes a random one.
    pub fn new(replica_id: impl Into<String>, state_key: Option<Vec<u8>>) -> Self {
        Self::with_tools(
            replica_id,
            state_key,
            Self::template_tools() + Self::conformance_tools() + Self::task_fixtures(),
        )
    }
}

pub fn resources() -> Vec<Resource> {
    let mut all = template::resources::resources();
    all.extend(conformance::resources::resources());
    all
}

pub fn resource_templates() -> Vec<ResourceTemplate> {
    conformance::resources::resource_templates()
}

pub fn read(backend: &Backend, uri: &str) -> Option<ResourceContents> {
    template::resources::read(backend, uri).or_else(|| conformance::resources::read(uri))
}

pub fn prompts() -> Vec<Prompt> {
    let mut all = template::prompts::prompts();
    all.extend(conformance::prompts::prompts());
    all
}

pub fn get_prompt(
    request: &GetPromptRequestParams,
) -> Option<Result<GetPromptResponse, ErrorData>> {
    template::prompts::get_prompt(request).or_else(|| conformance::prompts::get_prompt(request))
}
