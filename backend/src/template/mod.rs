//! The template: what users copy to make their own server. Each kind in its own file, each
//! composed into the served lists by [`crate::catalog`]:
//!
//! - [`tools`] — `echo` (and the streaming and benchmark helpers `sleep`, `progress`, `payload`);
//! - [`resources`] — `info://server`;
//! - [`prompts`] — `code_review`.

#[cfg(test)]
mod example;
pub mod prompts;
pub mod resources;
pub mod tools;
