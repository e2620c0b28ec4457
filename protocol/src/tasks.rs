//! Task ids across replicas (the tasks extension, SEP-2663): a task lives in the replica that
//! runs it, so the id a client sees names that replica — `<replica>/<the replica's own id>`,
//! as SSE event ids do — and `tasks/get`, `tasks/update`, `tasks/cancel` for it go there, from
//! any mcp-edge process, with no shared store.
//!
//! Ids are rewritten where they appear: `result.taskId` of a response (a `CreateTaskResult`,
//! a `tasks/get` answer) gets the replica prepended ([`name_in_response`]); `params.taskId` of a
//! request is given back the replica's own form ([`restore_in_request`]). Both splice the one
//! JSON string in place: the rest of the body is passed on byte for byte.

use serde::Deserialize;
use serde_json::value::RawValue;

/// Between the replica and its own id.
pub const SEPARATOR: char = '/';

/// The extension's identifier, as clients declare it.
pub const EXTENSION: &str = "io.modelcontextprotocol/tasks";

/// The methods that name a task in `params.taskId` (and in `Mcp-Name`).
pub const METHODS: [&str; 3] = ["tasks/get", "tasks/update", "tasks/cancel"];

/// The id a client sees for `raw`, a task of `replica`.
pub fn name(replica: &str, raw: &str) -> String {
    let mut id = String::with_capacity(replica.len() + 1 + raw.len());
    id.push_str(replica);
    id.push(SEPARATOR);
    id.push_str(raw);
    id
}

/// `(replica, the replica's id)` of an id mcp-edge gave out; `None` for any other string.
pub fn parse(id: &str) -> Option<(&str, &str)> {
    id.split_once(SEPARATOR)
        .filter(|(replica, raw)| !replica.is_empty() && !raw.is_empty())
}

#[derive(Deserialize)]
struct Response<'a> {
    #[serde(borrow, default)]
    result: Option<TaskField<'a>>,
}

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow, default)]
    params: Option<TaskField<'a>>,
}

#[derive(Deserialize)]
struct TaskField<'a> {
    #[serde(borrow, default, rename = "taskId")]
    task_id: Option<&'a RawValue>,
}

/// `body` with the JSON string at `raw` (a slice of it) replaced by `value` as a JSON string.
fn splice(body: &[u8], raw: &RawValue, value: &str) -> Vec<u8> {
    let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
    let end = start + raw.get().len();
    let value = serde_json::to_string(value).expect("a string serializes");
    let mut out = Vec::with_capacity(body.len() + value.len());
    out.extend_from_slice(&body[..start]);
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(&body[end..]);
    out
}

/// The string a raw JSON value holds, if it is one.
fn string(raw: &RawValue) -> Option<String> {
    serde_json::from_str(raw.get()).ok()
}

/// A JSON-RPC response whose `result.taskId` names a task of `replica`: the body with that id
/// as the client must see it. `None`: no task id in it (most responses), nothing to change.
pub fn name_in_response(body: &[u8], replica: &str) -> Option<Vec<u8>> {
    if !mentions_task_id(body) {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    let response: Response<'_> = serde_json::from_str(text).ok()?;
    let raw = response.result?.task_id?;
    let id = string(raw)?;
    Some(splice(body, raw, &name(replica, &id)))
}

/// A request naming a task in `params.taskId`: the body with the replica's own id `raw` in its
/// place. `None` when the body has no such field.
pub fn restore_in_request(body: &[u8], raw: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let request: Request<'_> = serde_json::from_str(text).ok()?;
    let field = request.params?.task_id?;
    Some(splice(body, field, raw))
}

/// A cheap first look: whether `"taskId"` occurs at all.
fn mentions_task_id(body: &[u8]) -> bool {
    const KEY: &[u8] = b"\"taskId\"";
    body.windows(KEY.len()).any(|w| w == KEY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_names_its_replica_and_parses_back() {
        let id = name("r2", "0d62415c-2e82");
        assert_eq!(id, "r2/0d62415c-2e82");
        assert_eq!(parse(&id), Some(("r2", "0d62415c-2e82")));
        assert_eq!(
            parse("10.0.0.7:8000/a/b"),
            Some(("10.0.0.7:8000", "a/b")),
            "the replica's own id may hold the separator"
        );
        for foreign in ["plain-id", "/x", "r1/", ""] {
            assert_eq!(parse(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn a_created_task_and_a_polled_one_get_the_replica_in_their_id() {
        let created = br#"{"jsonrpc":"2.0","id":2,"result":{"resultType":"task","taskId":"abc","status":"working","ttlMs":300000}}"#;
        let named = name_in_response(created, "r3").unwrap();
        assert_eq!(
            String::from_utf8(named).unwrap(),
            r#"{"jsonrpc":"2.0","id":2,"result":{"resultType":"task","taskId":"r3/abc","status":"working","ttlMs":300000}}"#
        );
        let polled = br#"{"jsonrpc":"2.0","id":"q","result":{"resultType":"complete","status":"completed","taskId":"abc","result":{"content":[{"type":"text","text":"taskId"}]}}}"#;
        let named = String::from_utf8(name_in_response(polled, "r3").unwrap()).unwrap();
        assert!(named.contains(r#""taskId":"r3/abc""#), "{named}");
        assert!(
            named.ends_with(r#""text":"taskId"}]}}}"#),
            "the rest is untouched"
        );
    }

    #[test]
    fn responses_without_a_task_id_are_left_alone() {
        for body in [
            &br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"\"taskId\""}]}}"#,
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"unknown task: x","data":{"taskId":"x"}}}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{"taskId":7}}"#,
            b"not json \"taskId\"",
        ] {
            assert_eq!(name_in_response(body, "r1"), None, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn a_request_gets_the_replica_s_own_id_back() {
        let body = br#"{"jsonrpc":"2.0","id":5,"method":"tasks/get","params":{"taskId":"r2/abc","_meta":{"k":"taskId"}}}"#;
        let restored = restore_in_request(body, "abc").unwrap();
        assert_eq!(
            String::from_utf8(restored).unwrap(),
            r#"{"jsonrpc":"2.0","id":5,"method":"tasks/get","params":{"taskId":"abc","_meta":{"k":"taskId"}}}"#
        );
        let escaped =
            br#"{"jsonrpc":"2.0","id":5,"method":"tasks/cancel","params":{"taskId":"r2\/abc"}}"#;
        let restored = restore_in_request(escaped, "abc").unwrap();
        assert!(restored.ends_with(br#"{"taskId":"abc"}}"#));
        assert_eq!(
            restore_in_request(
                br#"{"jsonrpc":"2.0","id":5,"method":"tasks/get","params":{}}"#,
                "abc"
            ),
            None
        );
    }
}
