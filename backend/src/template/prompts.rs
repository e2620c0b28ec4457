//! The template's prompt: `code_review`, with an optional `language` argument.

use rmcp::{
    ErrorData,
    model::{
        GetPromptRequestParams, GetPromptResponse, GetPromptResult, Prompt, PromptArgument,
        PromptMessage, Role,
    },
};

/// The prompts listed.
pub fn prompts() -> Vec<Prompt> {
    vec![Prompt::new(
        "code_review",
        Some("Ask for a careful review of a piece of code"),
        Some(vec![
            PromptArgument::new("language")
                .with_description("Programming language of the code (default: python)")
                .with_required(false),
        ]),
    )]
}

/// The prompt `request` names, if it is one of the template's.
pub fn get_prompt(
    request: &GetPromptRequestParams,
) -> Option<Result<GetPromptResponse, ErrorData>> {
    if request.name != "code_review" {
        return None;
    }
    let language = request
        .arguments
        .as_ref()
        .and_then(|a| a.get("language"))
        .and_then(|v| v.as_str())
        .unwrap_or("python");
    let text = format!(
        "Please review the following {language} code. Point out bugs, unclear names, \
         missing error handling and missing tests, most important first."
    );
    Some(Ok(GetPromptResponse::Complete(
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
            .with_description(format!("Code review ({language})")),
    )))
}
