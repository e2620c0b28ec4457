//! One bridged call, pure: what it carries between rounds (the round, the replica's state to
//! echo, the client's answers, the questions pending) and the policies that decide what the
//! driver ([`super`]) does next. No I/O and no clock: each step takes what happened and returns
//! what to do; every way a call can fail is a [`Failure`], turned into the client's JSON-RPC
//! error and the metric's label in one place.
//!
//! | what happened | next |
//! |---|---|
//! | more calls in flight than `--max-bridges` (before the call starts) | fail: [`Failure::Refused`] |
//! | the round's body cannot be written (the client's request is not an object) | fail: [`Failure::Untranslatable`] |
//! | no final message: no replica answered (after the exchange's retries), or its answer broke off, outgrew the limit, or held no message | fail: [`Failure::Round`] ([`RoundFailure`] says which) |
//! | the replica's final message is no JSON-RPC response | fail: [`Failure::Unreadable`] |
//! | complete | [`Next::End`]: the result, in the session's legacy shape |
//! | -32020 (`Mcp-Param-*` headers), the first time | [`Next::Relearn`]: learn the tool's headers again, the same round again |
//! | -32022 (protocol version) in the first round (before any input was required), `--bridge auto` | [`Next::Demote`]: that replica takes no more bridged rounds; the same round elsewhere |
//! | any other error | fail: [`Failure::Replica`], the replica's error as it is |
//! | input required at round [`MAX_ROUNDS`] | fail: [`Failure::TooManyRounds`] |
//! | input required, no questions (the replica sheds load) | [`Next::Backoff`]: again with the state only, 50 ms doubling to 250 |
//! | input required, one question the client cannot be asked | fail: [`Failure::Unaskable`], no question asked |
//! | input required | [`Next::Ask`]: every question, in the session's revision |
//! | an answer to a pending question | [`Answered::Stored`]; [`Answered::All`] with the last one: the next round |
//! | an answer to none pending, or not a response | [`Answered::Late`] (a duplicate: the first won) |
//! | an error answer | fail: [`Failure::ClientError`], the other questions cancelled |
//! | the input timeout | fail: [`Failure::TimedOut`], the questions cancelled |
//! | the client's cancel | [`Ending::Cancelled`]: no result, the questions cancelled |
//! | the session's end, shutdown, the table dropping the call | fail: [`Failure::Ended`], the questions cancelled |
//!
//! Two ends are the driver's alone: a client that hangs up (its connection is gone, nothing is
//! written; counted `client_gone`) and one past its stream budget (the budget's own refusal,
//! counted `refused`).

use std::{collections::BTreeMap, fmt, time::Duration};

use mcp_protocol::error;
use serde_json::{Map, Value, json, value::RawValue};

use super::{
    End, Event, MAX_ROUNDS,
    id::QuestionId,
    translate::{self, Answer, Meta, Outcome, Retry},
};
use crate::session::Profile;

type Raw = Box<RawValue>;

/// The first wait after a replica shed load, and the longest.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_millis(250));

/// The session a call runs for, as the translation needs it.
#[derive(Clone, Copy)]
pub struct For<'a> {
    /// The client's method (`tools/call`, …).
    pub method: &'a str,
    /// The session's legacy revision.
    pub version: &'a str,
    pub profile: &'a Profile,
}

/// What the driver does after a round.
#[derive(Debug)]
pub enum Next {
    /// The call is over.
    End(Ending),
    /// Learn the tool's `Mcp-Param-*` headers again; the same round again.
    Relearn,
    /// The replica that served the round does not speak 2026-07-28: no more bridged rounds for
    /// it; the same round again.
    Demote,
    /// Wait, then the next round with the replica's state only.
    Backoff(Duration),
    /// Ask the client these (each a legacy request: its id, raw JSON, and the message), then
    /// wait for their answers.
    Ask(Vec<(String, Vec<u8>)>),
}

/// How a call ends.
#[derive(Debug)]
pub enum Ending {
    /// The result, in the legacy shape.
    Complete(Raw),
    /// The client cancelled: no result.
    Cancelled,
    Failed(Failure),
}

/// Why a round got no final message.
#[derive(Debug)]
pub enum RoundFailure {
    /// No healthy replica that speaks 2026-07-28 was left.
    NoReplica,
    /// The replica failed the exchange (after the exchange loop's retries), as the edge's one
    /// failure table says it.
    Failed {
        replica: String,
        failure: crate::answer::Failure,
    },
    /// The replica's answer broke off.
    BrokeOff { replica: String, why: String },
    /// Past the answer limit: one event (`event`), or a JSON body.
    TooLarge {
        replica: String,
        event: bool,
        limit: usize,
    },
    /// A whole answer without a JSON-RPC message.
    NoMessage { replica: String, status: u16 },
}

impl fmt::Display for RoundFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoReplica => {
                f.write_str("no healthy replica speaking 2026-07-28 is left to run this call")
            }
            Self::Failed { replica, failure } => {
                let why = failure.reply(None).error.map(|e| e.message);
                let why = why.unwrap_or_default();
                write!(f, "the replica {replica} failed this round: {why}")
            }
            Self::BrokeOff { replica, why } => {
                write!(f, "the replica {replica} broke off its answer: {why}")
            }
            Self::TooLarge {
                replica,
                event: true,
                limit,
            } => write!(
                f,
                "the replica {replica} sent an event larger than {limit} bytes"
            ),
            Self::TooLarge { replica, limit, .. } => {
                write!(
                    f,
                    "the replica {replica} answered with more than {limit} bytes"
                )
            }
            Self::NoMessage { replica, status } => write!(
                f,
                "the replica {replica} answered HTTP {status} without a JSON-RPC message"
            ),
        }
    }
}

/// Every way a bridged call fails.
#[derive(Debug)]
pub enum Failure {
    /// More calls in flight than `--max-bridges`.
    Refused,
    /// The client's request cannot be rewritten as a 2026-07-28 one.
    Untranslatable(String),
    Round {
        round: u32,
        why: RoundFailure,
    },
    /// The replica's final message is no JSON-RPC response.
    Unreadable(String),
    /// The replica's own JSON-RPC error, relayed as it is.
    Replica(Raw),
    TooManyRounds,
    /// The replica asked what the client did not declare, or its revision cannot say.
    Unaskable {
        key: String,
        why: String,
    },
    /// The client answered a question with an error.
    ClientError {
        key: String,
        method: Option<Value>,
        error: Value,
    },
    TimedOut {
        after: Duration,
    },
    /// The session ended, or mcp-edge shuts down.
    Ended(&'static str),
}

impl Failure {
    /// The metric's label.
    pub fn end(&self) -> End {
        match self {
            Self::Refused => End::Refused,
            Self::TimedOut { .. } => End::Timeout,
            _ => End::Error,
        }
    }

    /// The JSON-RPC error the client reads.
    pub fn error(&self) -> Raw {
        let internal = |message: &str, data| translate::error(error::INTERNAL_ERROR, message, data);
        match self {
            Self::Refused => internal(
                "too many bridged calls in flight at mcp-edge; try again shortly",
                None,
            ),
            Self::Untranslatable(why) => {
                internal(&format!("mcp-edge cannot bridge this call: {why}"), None)
            }
            Self::Round { round, why } => internal(&why.to_string(), Some(json!({"round": round}))),
            Self::Unreadable(why) => internal(why, None),
            Self::Replica(error) => error.clone(),
            Self::TooManyRounds => internal(
                &format!("the call needed more than {MAX_ROUNDS} rounds of input"),
                None,
            ),
            Self::Unaskable { key, why } => internal(why, Some(json!({"inputKey": key}))),
            Self::ClientError { key, method, error } => internal(
                &format!("the client answered input {key:?} with an error; the call was abandoned"),
                Some(json!({"inputKey": key, "method": method, "clientError": error})),
            ),
            Self::TimedOut { after } => translate::error(
                error::REQUEST_TIMEOUT,
                &format!(
                    "Request timed out: the client did not answer within {} s",
                    after.as_secs()
                ),
                None,
            ),
            Self::Ended(why) => internal(why, None),
        }
    }
}

impl Ending {
    /// What the questions still pending are told (`notifications/cancelled`).
    /// (Questions are pending only while the call waits for answers, which ends it in the
    /// first four ways.)
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Cancelled => "the call was cancelled",
            Self::Failed(Failure::ClientError { .. }) => {
                "another question of this call was answered with an error"
            }
            Self::Failed(Failure::TimedOut { .. }) => "timed out",
            Self::Failed(Failure::Ended(why)) => why,
            Self::Complete(_) | Self::Failed(_) => "the call ended",
        }
    }
}

/// A question asked and not answered yet.
#[derive(Debug)]
struct Pending {
    key: String,
    /// Its id, raw JSON.
    id: String,
    method: Option<Value>,
}

/// What an answer from the client did.
#[derive(Debug)]
pub enum Answered {
    /// It answers nothing pending (a duplicate, an earlier round's) or is no response: dropped.
    Late,
    /// Taken; more are pending.
    Stored,
    /// Taken, and it was the last: the next round.
    All,
    /// The client answered with an error: the call ends so.
    Error(Ending),
}

/// One bridged call between its rounds.
pub struct Call<'a> {
    /// The call, as question and retry ids name it.
    pub id: u128,
    process: u64,
    of: For<'a>,
    /// Whether a replica refusing the protocol version is taken off bridged rounds (`auto`).
    demotes: bool,
    round: u32,
    asked: u32,
    relearned: bool,
    backoff: Duration,
    /// The replica's `requestState`, echoed next round.
    state: Option<Raw>,
    /// The answers the next round carries: `None` until the first input was required.
    answers: Option<Map<String, Value>>,
    pending: BTreeMap<u32, Pending>,
}

impl<'a> Call<'a> {
    pub fn new(id: u128, process: u64, of: For<'a>, demotes: bool) -> Self {
        Self {
            id,
            process,
            of,
            demotes,
            round: 1,
            asked: 0,
            relearned: false,
            backoff: BACKOFF.0,
            state: None,
            answers: None,
            pending: BTreeMap::new(),
        }
    }

    /// This round's body: the client's request `sent` in 2026-07-28 form, with the answers and
    /// the state of the round before.
    pub fn body(&self, sent: &[u8], log_level: &str) -> Result<Vec<u8>, Failure> {
        let meta = Meta {
            profile: self.of.profile,
            version: self.of.version,
            log_level,
        };
        let id = format!("{:032x}.{}", self.id, self.round);
        let retry = self.answers.as_ref().map(|responses| Retry {
            id: &id,
            responses,
            state: self.state.as_deref(),
        });
        translate::modern_body(sent, &meta, retry.as_ref()).map_err(Failure::Untranslatable)
    }

    /// The round found no final message.
    pub fn round_failed(&self, why: RoundFailure) -> Ending {
        Ending::Failed(Failure::Round {
            round: self.round,
            why,
        })
    }

    /// The round's final message came: what next (the module's table).
    pub fn after_round(&mut self, message: &[u8]) -> Next {
        let outcome = match translate::outcome(message) {
            Ok(outcome) => outcome,
            Err(why) => return Next::End(Ending::Failed(Failure::Unreadable(why))),
        };
        match outcome {
            Outcome::Complete(result) => Next::End(Ending::Complete(translate::downgrade(
                self.of.method,
                &result,
            ))),
            Outcome::Error(error::HEADER_MISMATCH, _) if !self.relearned => {
                self.relearned = true;
                Next::Relearn
            }
            Outcome::Error(error::UNSUPPORTED_PROTOCOL_VERSION, _)
                if self.answers.is_none() && self.demotes =>
            {
                Next::Demote
            }
            Outcome::Error(_, error) => Next::End(Ending::Failed(Failure::Replica(error))),
            Outcome::InputRequired { .. } if self.round >= MAX_ROUNDS => {
                Next::End(Ending::Failed(Failure::TooManyRounds))
            }
            Outcome::InputRequired { requests, state } => {
                self.round += 1;
                self.state = state;
                if requests.is_empty() {
                    let wait = self.backoff;
                    self.backoff = (self.backoff * 2).min(BACKOFF.1);
                    self.answers = Some(Map::new());
                    return Next::Backoff(wait);
                }
                self.ask(requests)
            }
        }
    }

    /// Every question translated before any is asked; numbered across the call's rounds.
    fn ask(&mut self, requests: Vec<(String, Value)>) -> Next {
        let mut questions = Vec::with_capacity(requests.len());
        for (key, request) in requests {
            let id = QuestionId {
                process: self.process,
                call: self.id,
                n: self.asked,
            }
            .to_json();
            let message = match translate::ask(&id, &request, self.of.version, self.of.profile) {
                Ok(message) => message,
                Err(why) => {
                    self.pending.clear();
                    return Next::End(Ending::Failed(Failure::Unaskable { key, why }));
                }
            };
            let method = request.get("method").cloned();
            self.pending.insert(
                self.asked,
                Pending {
                    key,
                    id: id.clone(),
                    method,
                },
            );
            self.asked += 1;
            questions.push((id, message));
        }
        self.answers = Some(Map::new());
        Next::Ask(questions)
    }

    /// The client's answer to question `n`.
    pub fn answer(&mut self, n: u32, body: &[u8]) -> Answered {
        if !self.pending.contains_key(&n) {
            return Answered::Late;
        }
        let Some(answer) = translate::answer(body) else {
            return Answered::Late;
        };
        let pending = self.pending.remove(&n).expect("checked above");
        match answer {
            Answer::Result(result) => {
                self.answers
                    .get_or_insert_with(Map::new)
                    .insert(pending.key, result);
                if self.pending.is_empty() {
                    Answered::All
                } else {
                    Answered::Stored
                }
            }
            Answer::Error(error) => Answered::Error(Ending::Failed(Failure::ClientError {
                key: pending.key,
                method: pending.method,
                error,
            })),
        }
    }

    /// How the call ends when `event` stops it (not an answer: those go to [`Call::answer`]).
    pub fn stopped(event: Event) -> Ending {
        match event {
            Event::Cancel => Ending::Cancelled,
            Event::End(why) => Ending::Failed(Failure::Ended(why)),
            Event::Answer { .. } => Ending::Failed(Failure::Ended("unexpected answer")),
        }
    }

    /// Whether questions wait for their answers.
    pub fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The ids (raw JSON) of the questions still pending, given up: the call ends.
    pub fn take_pending(&mut self) -> Vec<String> {
        std::mem::take(&mut self.pending)
            .into_values()
            .map(|p| p.id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::profile::{ELICITATION, ELICITATION_FORM, SAMPLING};

    fn call(profile: &Profile, demotes: bool) -> Call<'_> {
        in_revision(profile, "2025-11-25", demotes)
    }

    fn in_revision<'a>(profile: &'a Profile, version: &'a str, demotes: bool) -> Call<'a> {
        let of = For {
            method: "tools/call",
            version,
            profile,
        };
        Call::new(7, 9, of, demotes)
    }

    fn input_required(requests: Value) -> Vec<u8> {
        json!({"jsonrpc": "2.0", "id": 1, "result": {
            "resultType": "input_required", "inputRequests": requests, "requestState": "s1"}})
        .to_string()
        .into_bytes()
    }

    fn elicit() -> Value {
        json!({"method": "elicitation/create", "params": {"mode": "form", "message": "name?", "requestedSchema": {}}})
    }

    fn error_answer(code: i64) -> Vec<u8> {
        json!({"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": "no"}})
            .to_string()
            .into_bytes()
    }

    fn failure(next: Next) -> Failure {
        match next {
            Next::End(Ending::Failed(f)) => f,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    fn asked(next: Next) -> Vec<(String, Vec<u8>)> {
        match next {
            Next::Ask(questions) => questions,
            other => panic!("expected questions, got {other:?}"),
        }
    }

    #[test]
    fn a_complete_result_ends_the_call_in_the_legacy_shape() {
        let p = Profile::declaring(0);
        let mut c = call(&p, true);
        let done = br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","content":[]}}"#;
        match c.after_round(done) {
            Next::End(Ending::Complete(result)) => {
                assert!(!result.get().contains("resultType"), "{}", result.get());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn input_is_asked_in_the_sessions_revision_and_the_answers_make_the_next_round() {
        let p = Profile::declaring(ELICITATION | ELICITATION_FORM);
        // 2025-06-18 has form elicitation without its `mode`: the question is said its way.
        let mut old = in_revision(&p, "2025-06-18", true);
        let said = asked(old.after_round(&input_required(json!({"a": elicit()}))));
        let said: Value = serde_json::from_slice(&said[0].1).unwrap();
        assert_eq!(said["method"], "elicitation/create");
        assert!(said["params"].get("mode").is_none(), "{said}");
        let mut c = call(&p, true);
        let questions =
            asked(c.after_round(&input_required(json!({"a": elicit(), "b": elicit()}))));
        assert_eq!(questions.len(), 2);
        assert_eq!(
            questions[0].0,
            r#""mcp-edge:0000000000000009:00000000000000000000000000000007:0""#
        );
        assert!(String::from_utf8_lossy(&questions[1].1).contains("elicitation/create"));
        assert!(matches!(
            c.answer(
                0,
                br#"{"jsonrpc":"2.0","id":0,"result":{"action":"accept"}}"#
            ),
            Answered::Stored
        ));
        // A duplicate of the first, then an unknown question: both late, the first answer stands.
        assert!(matches!(
            c.answer(
                0,
                br#"{"jsonrpc":"2.0","id":0,"result":{"action":"decline"}}"#
            ),
            Answered::Late
        ));
        assert!(matches!(
            c.answer(5, br#"{"jsonrpc":"2.0","id":5,"result":{}}"#),
            Answered::Late
        ));
        assert!(matches!(
            c.answer(
                1,
                br#"{"jsonrpc":"2.0","id":1,"result":{"action":"cancel"}}"#
            ),
            Answered::All
        ));
        let body: Value = serde_json::from_slice(
            &c.body(
                br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"t"}}"#,
                "debug",
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(body["params"]["inputResponses"]["a"]["action"], "accept");
        assert_eq!(body["params"]["inputResponses"]["b"]["action"], "cancel");
        assert_eq!(body["params"]["requestState"], "s1");
        assert_eq!(body["id"], "00000000000000000000000000000007.2");
    }

    #[test]
    fn a_question_the_client_did_not_declare_fails_the_call_before_any_is_asked() {
        let p = Profile::declaring(ELICITATION | ELICITATION_FORM);
        let mut c = call(&p, true);
        let sampling = json!({"method": "sampling/createMessage", "params": {"messages": []}});
        let f = failure(c.after_round(&input_required(json!({"a": elicit(), "b": sampling}))));
        assert!(
            matches!(&f, Failure::Unaskable { key, .. } if key == "b"),
            "{f:?}"
        );
        assert!(c.take_pending().is_empty());
        assert!(f.error().get().contains(r#""inputKey":"b""#));
    }

    #[test]
    fn a_header_mismatch_relearns_once_then_fails_with_the_replicas_error() {
        let p = Profile::declaring(0);
        let mut c = call(&p, true);
        assert!(matches!(
            c.after_round(&error_answer(error::HEADER_MISMATCH)),
            Next::Relearn
        ));
        let f = failure(c.after_round(&error_answer(error::HEADER_MISMATCH)));
        assert!(matches!(f, Failure::Replica(_)));
        assert!(
            f.error()
                .get()
                .contains(&error::HEADER_MISMATCH.to_string())
        );
    }

    #[test]
    fn a_replica_refusing_the_version_is_demoted_only_before_any_answer_and_only_in_auto() {
        let p = Profile::declaring(SAMPLING);
        let version = error::UNSUPPORTED_PROTOCOL_VERSION;
        assert!(matches!(
            call(&p, true).after_round(&error_answer(version)),
            Next::Demote
        ));
        assert!(matches!(
            failure(call(&p, false).after_round(&error_answer(version))),
            Failure::Replica(_)
        ));
        let mut c = call(&p, true);
        let sample = json!({"method": "sampling/createMessage", "params": {"messages": []}});
        asked(c.after_round(&input_required(json!({"a": sample}))));
        assert!(matches!(
            c.answer(0, br#"{"jsonrpc":"2.0","id":0,"result":{}}"#),
            Answered::All
        ));
        assert!(matches!(
            failure(c.after_round(&error_answer(version))),
            Failure::Replica(_)
        ));
    }

    #[test]
    fn a_replica_shedding_load_is_asked_again_with_its_state_after_a_growing_wait() {
        let p = Profile::declaring(0);
        let mut c = call(&p, true);
        let waits: Vec<_> = (0..4)
            .map(|_| match c.after_round(&input_required(json!({}))) {
                Next::Backoff(wait) => wait.as_millis(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(waits, [50, 100, 200, 250]);
        let body: Value = serde_json::from_slice(
            &c.body(
                br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{}}"#,
                "debug",
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(body["params"]["requestState"], "s1");
        assert_eq!(
            body["params"]["inputResponses"],
            json!({}),
            "the state only: {body}"
        );
    }

    #[test]
    fn input_past_the_last_round_fails_the_call() {
        let p = Profile::declaring(0);
        let mut c = call(&p, true);
        for _ in 1..MAX_ROUNDS {
            assert!(matches!(
                c.after_round(&input_required(json!({}))),
                Next::Backoff(_)
            ));
        }
        let f = failure(c.after_round(&input_required(json!({}))));
        assert!(matches!(f, Failure::TooManyRounds));
    }

    #[test]
    fn an_error_answer_ends_the_call_and_the_other_questions_are_cancelled() {
        let p = Profile::declaring(ELICITATION | ELICITATION_FORM);
        let mut c = call(&p, true);
        asked(c.after_round(&input_required(json!({"a": elicit(), "b": elicit()}))));
        let answered = c.answer(
            1,
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"x"}}"#,
        );
        let Answered::Error(ending) = answered else {
            panic!("expected the call to end: {answered:?}")
        };
        assert_eq!(
            ending.reason(),
            "another question of this call was answered with an error"
        );
        assert_eq!(c.take_pending().len(), 1);
        let Ending::Failed(f) = ending else { panic!() };
        assert!(
            f.error().get().contains(r#""inputKey":"b""#),
            "{}",
            f.error().get()
        );
    }

    #[test]
    fn each_failure_has_its_label_and_the_clients_error() {
        let error = |f: &Failure| -> Value { serde_json::from_str(f.error().get()).unwrap() };
        let internal = error::INTERNAL_ERROR;
        let answered = || Failure::ClientError {
            key: "k".into(),
            method: None,
            error: json!({"code": -1}),
        };
        let round = || Failure::Round {
            round: 3,
            why: RoundFailure::NoReplica,
        };
        let unaskable = || Failure::Unaskable {
            key: "k".into(),
            why: "undeclared".into(),
        };
        let cases: Vec<(Failure, End, i64, &str)> = vec![
            (
                Failure::Refused,
                End::Refused,
                internal,
                "too many bridged calls",
            ),
            (
                Failure::Untranslatable("x".into()),
                End::Error,
                internal,
                "bridge this call: x",
            ),
            (
                round(),
                End::Error,
                internal,
                "no healthy replica speaking 2026-07-28",
            ),
            (
                Failure::Unreadable("no JSON-RPC".into()),
                End::Error,
                internal,
                "no JSON-RPC",
            ),
            (
                Failure::Replica(translate::error(-32001, "busy", None)),
                End::Error,
                -32001,
                "busy",
            ),
            (
                Failure::TooManyRounds,
                End::Error,
                internal,
                "more than 10 rounds",
            ),
            (unaskable(), End::Error, internal, "undeclared"),
            (
                answered(),
                End::Error,
                internal,
                "answered input \"k\" with an error",
            ),
            (
                Failure::TimedOut {
                    after: Duration::from_secs(300),
                },
                End::Timeout,
                error::REQUEST_TIMEOUT,
                "within 300 s",
            ),
            (
                Failure::Ended("the session ended"),
                End::Error,
                internal,
                "the session ended",
            ),
        ];
        for (failure, end, code, message) in cases {
            let e = error(&failure);
            assert_eq!(failure.end(), end, "{failure:?}");
            assert_eq!(e["code"], code, "{failure:?}");
            let said = e["message"].as_str().unwrap();
            assert!(said.contains(message), "{failure:?}: {e}");
        }
        assert_eq!(error(&round())["data"]["round"], 3);
        let failed = Failure::Round {
            round: 2,
            why: RoundFailure::Failed {
                replica: "r2".into(),
                failure: crate::answer::Failure::TimedOut,
            },
        };
        let said = error(&failed)["message"].as_str().unwrap().to_owned();
        assert!(
            said.starts_with("the replica r2 failed this round: "),
            "{said}"
        );
        assert!(
            said.len() > "the replica r2 failed this round: ".len(),
            "{said}"
        );
        assert_eq!(error(&unaskable())["data"]["inputKey"], "k");
        assert_eq!(error(&answered())["data"]["clientError"]["code"], -1);
        assert!(matches!(Call::stopped(Event::Cancel), Ending::Cancelled));
        let ended = Call::stopped(Event::End("the session ended"));
        assert_eq!(ended.reason(), "the session ended");
    }
}
