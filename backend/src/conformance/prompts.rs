//! The suite's prompts: simple, with arguments, with embedded resources and images.

use rmcp::{ErrorData, model::*};
use serde_json::Value;

use super::{PNG, answer, elicit, elicited};

pub fn prompts() -> Vec<Prompt> {
    let arg = |name: &str, description: &str| {
        PromptArgument::new(name)
            .with_description(description)
            .with_required(true)
    };
    vec![
        Prompt::new(
            "test_simple_prompt",
            Some("A simple prompt without arguments"),
            None,
        ),
        Prompt::new(
            "test_prompt_with_arguments",
            Some("A prompt with required arguments"),
            Some(vec![
                arg("arg1", "First test argument"),
                arg("arg2", "Second test argument"),
            ]),
        ),
        Prompt::new(
            "test_prompt_with_embedded_resource",
            Some("A prompt with an embedded resource"),
            Some(vec![arg("resourceUri", "URI of the resource to embed")]),
        ),
        Prompt::new(
            "test_prompt_with_image",
            Some("A prompt with image content"),
            None,
        ),
        Prompt::new(
            "test_input_required_result_prompt",
            Some("MRTR: asks for context before rendering"),
            None,
        ),
    ]
}

/// A conformance prompt, `None` when `name` is not one.
pub fn get_prompt(
    request: &GetPromptRequestParams,
) -> Option<Result<GetPromptResponse, ErrorData>> {
    let arg = |key: &str| {
        request
            .arguments
            .as_ref()
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let done = |messages: Vec<PromptMessage>| {
        Ok(GetPromptResponse::Complete(GetPromptResult::new(messages)))
    };
    Some(match request.name.as_str() {
        "test_simple_prompt" => done(vec![PromptMessage::new_text(
            Role::User,
            "This is a simple prompt for testing.",
        )]),
        "test_prompt_with_arguments" => done(vec![PromptMessage::new_text(
            Role::User,
            format!(
                "Prompt with arguments: arg1='{}', arg2='{}'",
                arg("arg1"),
                arg("arg2")
            ),
        )]),
        "test_prompt_with_embedded_resource" => done(vec![
            PromptMessage::new(
                Role::User,
                ContentBlock::resource(ResourceContents::TextResourceContents {
                    uri: arg("resourceUri"),
                    mime_type: Some("text/plain".into()),
                    text: "Embedded resource content for testing.".into(),
                    meta: None,
                }),
            ),
            PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
        ]),
        "test_prompt_with_image" => done(vec![
            PromptMessage::new(Role::User, ContentBlock::image(PNG, "image/png")),
            PromptMessage::new_text(Role::User, "Please analyze the image above."),
        ]),
        "test_input_required_result_prompt" => {
            match answer(request.input_responses.as_ref(), "user_context") {
                Err(e) => Err(e),
                Ok(None) => {
                    let mut map = InputRequests::new();
                    map.insert(
                        "user_context".into(),
                        elicit("What context should the prompt use?", "context", "string"),
                    );
                    Ok(GetPromptResponse::InputRequired(InputRequiredResult::new(
                        Some(map),
                        None,
                    )))
                }
                Ok(Some(a)) => elicited(a, "context").and_then(|context| {
                    done(vec![PromptMessage::new_text(
                        Role::User,
                        format!("Use this context: {context}"),
                    )])
                }),
            }
        }
        _ => return None,
    })
}
