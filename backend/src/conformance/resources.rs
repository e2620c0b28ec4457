//! The suite's resources: static text and binary ones, and a resource template.

use rmcp::model::*;
use serde_json::json;

use super::PNG;

pub fn resources() -> Vec<Resource> {
    vec![
        Resource::new("test://static-text", "Static Text Resource")
            .with_description("A static text resource for testing")
            .with_mime_type("text/plain"),
        Resource::new("test://static-binary", "Static Binary Resource")
            .with_description("A static binary resource (image) for testing")
            .with_mime_type("image/png"),
        Resource::new("test://watched-resource", "Watched Resource")
            .with_description("A resource that can be subscribed to")
            .with_mime_type("text/plain"),
    ]
}

pub fn resource_templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new("test://template/{id}/data", "Resource Template")
            .with_description("A resource template with parameter substitution")
            .with_mime_type("application/json"),
    ]
}

/// The contents of a conformance resource, or `None` when `uri` is not one.
pub fn read(uri: &str) -> Option<ResourceContents> {
    let text = |mime: &str, body: String| ResourceContents::TextResourceContents {
        uri: uri.to_owned(),
        mime_type: Some(mime.to_owned()),
        text: body,
        meta: None,
    };
    match uri {
        "test://static-text" => Some(text(
            "text/plain",
            "This is the content of the static text resource.".into(),
        )),
        "test://watched-resource" => Some(text("text/plain", "Watched resource content".into())),
        "test://static-binary" => Some(ResourceContents::BlobResourceContents {
            uri: uri.to_owned(),
            mime_type: Some("image/png".into()),
            blob: PNG.into(),
            meta: None,
        }),
        _ => {
            let id = uri
                .strip_prefix("test://template/")?
                .strip_suffix("/data")?;
            if id.is_empty() || id.contains('/') {
                return None;
            }
            let body =
                json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
            Some(text("application/json", body.to_string()))
        }
    }
}

// ----- prompts ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_resource_substitutes_id() {
        let Some(ResourceContents::TextResourceContents { text, .. }) =
            read("test://template/123/data")
        else {
            panic!("template resource not served");
        };
        assert_eq!(
            text,
            r#"{"data":"Data for ID: 123","id":"123","templateTest":true}"#
        );
        assert!(read("test://template//data").is_none());
        assert!(read("test://nonexistent").is_none());
    }
}
