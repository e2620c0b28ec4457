//! The protocol revisions, named once.

/// The first revision without sessions (per-request `_meta`, no `initialize`).
pub const MODERN: &str = "2026-07-28";
/// Assumed when a legacy request names no version (the spec's rule for a missing header), and
/// the only revision with JSON-RPC batches.
pub const DEFAULT_LEGACY: &str = "2025-03-26";
/// Every revision mcp-edge and mcp-backend understand, oldest first.
pub const KNOWN: &[&str] = &[DEFAULT_LEGACY, "2025-06-18", "2025-11-25", MODERN];

/// Whether `version` is one of [`KNOWN`].
pub fn is_known(version: &str) -> bool {
    KNOWN.contains(&version)
}
