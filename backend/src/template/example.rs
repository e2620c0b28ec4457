//! The guide's example tool (docs/writing-tools.md, "Adding a tool"), compiled with the tests,
//! and the test that every Rust snippet of that guide is code the template really has: each
//! line it shows (comments aside) appears in `tools.rs` or here, in the same order. A snippet
//! may leave lines out; it may not show a line that does not build.

use rmcp::{
    handler::server::wrapper::Parameters,
    model::{CallToolResult, ContentBlock},
    tool, tool_router,
};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::backend::Backend;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AddArgs {
    /// First addend.
    pub a: i64,
    /// Second addend.
    pub b: i64,
}

#[tool_router(router = example_tools, vis = "pub(crate)")]
impl Backend {
    #[tool(
        description = "Add two integers.",
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn add(&self, Parameters(args): Parameters<AddArgs>) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::text((args.a + args.b).to_string())])
    }
}

/// A line as code: trimmed, a trailing `// comment` and a whole-line comment dropped.
fn code_of(line: &str) -> &str {
    let line = line.trim();
    if line.starts_with("//") {
        return "";
    }
    line.split_once(" // ")
        .map_or(line, |(code, _)| code)
        .trim_end()
}

#[test]
fn every_snippet_of_the_writing_tools_guide_is_code_the_template_has() {
    let guide = include_str!("../../../docs/writing-tools.md");
    let source = [include_str!("tools.rs"), include_str!("example.rs")].concat();
    let code: Vec<&str> = source
        .lines()
        .map(code_of)
        .filter(|l| !l.is_empty())
        .collect();
    let mut blocks = 0;
    for block in guide.split("```rust\n").skip(1) {
        let block = block.split("```").next().unwrap_or_default();
        blocks += 1;
        let mut at = 0;
        for line in block.lines().map(code_of).filter(|l| !l.is_empty()) {
            match code[at..].iter().position(|c| *c == line) {
                Some(i) => at += i + 1,
                None => panic!(
                    "docs/writing-tools.md, snippet {blocks}, shows `{line}`: not in \
                     backend/src/template/tools.rs or example.rs (after the lines before it)"
                ),
            }
        }
    }
    assert_eq!(blocks, 3, "the guide's Rust snippets");
}

#[test]
fn the_guide_s_example_tool_adds() {
    let tools = Backend::example_tools();
    let add = tools.get("add").expect("listed");
    assert_eq!(
        add.annotations.as_ref().and_then(|a| a.read_only_hint),
        Some(true)
    );
}
