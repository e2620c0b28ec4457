//! What this server serves, composed in one place: the [`template`](crate::template) (what users
//! copy) and, when asked for ([`Catalog::WithFixtures`], `--conformance-fixtures`), the
//! [`conformance`](crate::conformance) fixtures (what the official suite and the project's tests
//! call). A new tool, resource or prompt lands in the template's file of its kind; this module
//! lists it.

use rmcp::{
    ErrorData,
    handler::server::router::tool::ToolRouter,
    model::{
        GetPromptRequestParams, GetPromptResponse, Prompt, Resource, ResourceContents,
        ResourceTemplate,
    },
};

pub use crate::backend::Catalog;
use crate::{backend::Backend, conformance, template};

impl Backend {
    /// The bundled server serving `catalog`.
    /// `state_key`: the HMAC key for `requestState`; `None` makes a random one.
    pub fn new(
        replica_id: impl Into<String>,
        state_key: Option<Vec<u8>>,
        catalog: Catalog,
    ) -> Self {
        Self::with_tools(replica_id, state_key, catalog.tools(), catalog)
    }
}

impl Catalog {
    fn fixtures(self) -> bool {
        self == Catalog::WithFixtures
    }

    pub fn tools(self) -> ToolRouter<Backend> {
        match self {
            Catalog::Template => Backend::template_tools(),
            Catalog::WithFixtures => {
                Backend::template_tools() + Backend::conformance_tools() + Backend::task_fixtures()
            }
        }
    }

    pub fn resources(self) -> Vec<Resource> {
        let mut all = template::resources::resources();
        if self.fixtures() {
            all.extend(conformance::resources::resources());
        }
        all
    }

    pub fn resource_templates(self) -> Vec<ResourceTemplate> {
        match self {
            Catalog::Template => Vec::new(),
            Catalog::WithFixtures => conformance::resources::resource_templates(),
        }
    }

    pub fn read(self, backend: &Backend, uri: &str) -> Option<ResourceContents> {
        template::resources::read(backend, uri).or_else(|| {
            self.fixtures()
                .then(|| conformance::resources::read(uri))
                .flatten()
        })
    }

    pub fn prompts(self) -> Vec<Prompt> {
        let mut all = template::prompts::prompts();
        if self.fixtures() {
            all.extend(conformance::prompts::prompts());
        }
        all
    }

    pub fn get_prompt(
        self,
        request: &GetPromptRequestParams,
    ) -> Option<Result<GetPromptResponse, ErrorData>> {
        template::prompts::get_prompt(request).or_else(|| {
            self.fixtures()
                .then(|| conformance::prompts::get_prompt(request))
                .flatten()
        })
    }
}
