//! The one table of MCP methods: for each, the label it gets in metrics, whether repeating it
//! can do harm, which revisions have it, and whether its target is named in `Mcp-Name`.
//!
//! A method missing here still works everywhere; it is counted as `other` and never repeated.

/// Which protocol revisions define a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eras {
    /// Every revision.
    All,
    /// 2025 revisions only (sessions; removed in 2026-07-28).
    Legacy,
    /// 2026-07-28 and later only.
    Modern,
}

/// One row of [`METHODS`].
#[derive(Debug)]
pub struct Method {
    pub name: &'static str,
    /// It changes nothing on a server: a request whose connection broke before any answer may
    /// go to another replica.
    pub safe: bool,
    pub eras: Eras,
    /// 2026-07-28 names its target (`params.name`, `params.uri`, or a task's `params.taskId`) in
    /// the `Mcp-Name` header.
    pub named: bool,
}

const fn row(name: &'static str, safe: bool, eras: Eras, named: bool) -> Method {
    Method {
        name,
        safe,
        eras,
        named,
    }
}

use Eras::{All, Legacy, Modern};

/// Every method with its own metric label, in the order metrics list them.
pub const METHODS: &[Method] = &[
    row("initialize", true, Legacy, false),
    row("ping", true, Legacy, false),
    row("tools/list", true, All, false),
    row("tools/call", false, All, true),
    row("resources/list", true, All, false),
    row("resources/templates/list", true, All, false),
    row("resources/read", true, All, true),
    row("resources/subscribe", false, Legacy, false),
    row("resources/unsubscribe", false, Legacy, false),
    row("prompts/list", true, All, false),
    row("prompts/get", true, All, true),
    row("completion/complete", true, All, false),
    row("logging/setLevel", false, Legacy, false),
    row("server/discover", true, Modern, false),
    row("subscriptions/listen", true, Modern, false),
    row("tasks/get", true, Modern, true),
    row("tasks/update", false, Modern, true),
    row("tasks/cancel", false, Modern, true),
    row("notifications/initialized", false, Legacy, false),
    row("notifications/cancelled", false, All, false),
    row("notifications/progress", false, All, false),
    row("notifications/roots/list_changed", false, All, false),
];

/// The row of `name`, if the table has one.
pub fn find(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

/// The metric label of a request's method: its name when the table has it, `none` for a
/// request without one (GET, DELETE), else `other`.
pub fn label(method: Option<&str>) -> &'static str {
    match method {
        None => "none",
        Some(m) => find(m).map_or("other", |m| m.name),
    }
}

/// Whether a request of this method changes nothing (see [`Method::safe`]).
pub fn is_safe(method: &str) -> bool {
    find(method).is_some_and(|m| m.safe)
}

/// Whether 2026-07-28 names this method's target in `Mcp-Name`.
pub fn is_named(method: &str) -> bool {
    find(method).is_some_and(|m| m.named)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_methods_get_their_own_label_and_others_share_one() {
        assert_eq!(label(Some("tools/call")), "tools/call");
        assert_eq!(label(Some("tools/frobnicate")), "other");
        assert_eq!(label(None), "none");
    }

    #[test]
    fn only_methods_that_change_nothing_are_safe_to_repeat() {
        let safe: Vec<_> = METHODS.iter().filter(|m| m.safe).map(|m| m.name).collect();
        assert_eq!(
            safe,
            [
                "initialize",
                "ping",
                "tools/list",
                "resources/list",
                "resources/templates/list",
                "resources/read",
                "prompts/list",
                "prompts/get",
                "completion/complete",
                "server/discover",
                "subscriptions/listen",
                "tasks/get"
            ]
        );
        assert!(
            !is_safe("tools/call"),
            "a tool is safe only by its own annotations"
        );
    }

    #[test]
    fn names_are_unique() {
        for (i, m) in METHODS.iter().enumerate() {
            assert!(METHODS[..i].iter().all(|o| o.name != m.name), "{}", m.name);
        }
    }
}
