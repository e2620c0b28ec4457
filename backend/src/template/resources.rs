//! The template's resource: `info://server`, which replica answered (name, version, id).

use rmcp::model::{Resource, ResourceContents};
use serde_json::json;

use crate::backend::{Backend, SERVER_NAME};

pub const INFO_URI: &str = "info://server";

/// The resources listed.
pub fn resources() -> Vec<Resource> {
    vec![
        Resource::new(INFO_URI, "Server info")
            .with_description("Name, version and replica id of the replica that answered")
            .with_mime_type("application/json"),
    ]
}

/// The contents of `uri`, if it is one of the template's.
pub fn read(backend: &Backend, uri: &str) -> Option<ResourceContents> {
    if uri != INFO_URI {
        return None;
    }
    let body = json!({
        "name": SERVER_NAME,
        "version": env!("CARGO_PKG_VERSION"),
        "replica_id": backend.replica_id(),
    });
    Some(ResourceContents::TextResourceContents {
        uri: uri.to_owned(),
        mime_type: Some("application/json".into()),
        text: body.to_string(),
        meta: None,
    })
}
