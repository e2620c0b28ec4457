//! Counting and reporting: a latency histogram (microseconds, 3 significant digits), outcomes by
//! kind, and which replica answered (`X-Served-By`).

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::scenario::Outcome;

pub struct Stats {
    pub latency: Histogram<u64>,
    pub outcomes: BTreeMap<Outcome, u64>,
    pub served_by: BTreeMap<String, u64>,
    /// When each replica answered first and last (UNIX time, seconds): how soon a new replica
    /// took traffic, and when a removed one stopped.
    pub seen: BTreeMap<String, (f64, f64)>,
    /// Tries sent again after a connection failed before any response (`--retries`).
    pub retried: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            outcomes: BTreeMap::new(),
            served_by: BTreeMap::new(),
            seen: BTreeMap::new(),
            retried: 0,
        }
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Stats {
    pub fn record(&mut self, latency: Duration, outcome: Outcome, served_by: Option<&str>) {
        let _ = self.latency.record((latency.as_micros() as u64).max(1));
        *self.outcomes.entry(outcome).or_default() += 1;
        if let Some(replica) = served_by {
            let now = unix_now();
            match self.served_by.get_mut(replica) {
                Some(count) => {
                    *count += 1;
                    self.seen.get_mut(replica).expect("seen with its count").1 = now;
                }
                None => {
                    self.served_by.insert(replica.to_owned(), 1);
                    self.seen.insert(replica.to_owned(), (now, now));
                }
            }
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        let _ = self.latency.add(&other.latency);
        for (k, v) in &other.outcomes {
            *self.outcomes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.served_by {
            *self.served_by.entry(k.clone()).or_default() += v;
        }
        for (k, &(first, last)) in &other.seen {
            let seen = self.seen.entry(k.clone()).or_insert((first, last));
            *seen = (seen.0.min(first), seen.1.max(last));
        }
        self.retried += other.retried;
    }

    pub fn requests(&self) -> u64 {
        self.outcomes.values().sum()
    }

    pub fn ok(&self) -> u64 {
        self.outcomes.get(&Outcome::Ok).copied().unwrap_or(0)
    }

    pub fn errors(&self) -> u64 {
        self.requests() - self.ok()
    }

    /// The report as JSON (`--json`), with the run's parameters.
    pub fn to_json(&self, run: Value, elapsed: Duration) -> Value {
        let h = &self.latency;
        let at = |q: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q)
            }
        };
        let errors: BTreeMap<String, u64> = self
            .outcomes
            .iter()
            .filter(|(k, _)| **k != Outcome::Ok)
            .map(|(k, v)| (k.label(), *v))
            .collect();
        json!({
            "run": run,
            "elapsed_s": elapsed.as_secs_f64(),
            "requests": self.requests(),
            "ok": self.ok(),
            "errors": self.errors(),
            "errors_by_kind": errors,
            "throughput_rps": self.requests() as f64 / elapsed.as_secs_f64().max(1e-9),
            "ok_rps": self.ok() as f64 / elapsed.as_secs_f64().max(1e-9),
            "latency_us": {
                "min": if h.is_empty() { 0 } else { h.min() },
                "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "p999": at(0.999),
                "max": if h.is_empty() { 0 } else { h.max() },
                "mean": h.mean(),
            },
            "served_by": self.served_by,
            "first_seen_unix_s": self.seen.iter().map(|(k, v)| (k.clone(), v.0)).collect::<BTreeMap<_, _>>(),
            "last_seen_unix_s": self.seen.iter().map(|(k, v)| (k.clone(), v.1)).collect::<BTreeMap<_, _>>(),
            "retried": self.retried,
        })
    }
}

fn ms(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{:.3} ms", us as f64 / 1000.0)
    }
}

/// The report for people.
pub fn text(report: &Value) -> String {
    let l = &report["latency_us"];
    let u = |k: &str| l[k].as_u64().unwrap_or(0);
    let mut out = format!(
        "{} over {:.1} s: {} requests, {:.0} req/s ({} ok, {} errors)\nlatency  min {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}\n",
        report["run"]["scenario"].as_str().unwrap_or("?"),
        report["elapsed_s"].as_f64().unwrap_or(0.0),
        report["requests"],
        report["throughput_rps"].as_f64().unwrap_or(0.0),
        report["ok"],
        report["errors"],
        ms(u("min")),
        ms(u("p50")),
        ms(u("p90")),
        ms(u("p99")),
        ms(u("p999")),
        ms(u("max")),
    );
    if let Some(errors) = report["errors_by_kind"]
        .as_object()
        .filter(|e| !e.is_empty())
    {
        let list: Vec<String> = errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!("errors   {}\n", list.join(", ")));
    }
    if let Some(retried) = report["retried"].as_u64().filter(|&r| r > 0) {
        out.push_str(&format!(
            "retried  {retried} tries after a connection failed before any response\n"
        ));
    }
    if let Some(served) = report["served_by"].as_object().filter(|s| !s.is_empty()) {
        let total: u64 = served.values().filter_map(Value::as_u64).sum();
        let list: Vec<String> = served
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k} {} ({:.1} %)",
                    v,
                    100.0 * v.as_u64().unwrap_or(0) as f64 / total.max(1) as f64
                )
            })
            .collect();
        out.push_str(&format!("replicas {}\n", list.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_never_successes() {
        let mut s = Stats::default();
        s.record(Duration::from_micros(100), Outcome::Ok, Some("r1"));
        s.record(
            Duration::from_micros(300),
            Outcome::JsonRpc(-32602),
            Some("r2"),
        );
        s.record(Duration::from_micros(200), Outcome::Timeout, None);
        let r = s.to_json(json!({"scenario":"stateless"}), Duration::from_secs(1));
        assert_eq!(
            (
                r["requests"].as_u64(),
                r["ok"].as_u64(),
                r["errors"].as_u64()
            ),
            (Some(3), Some(1), Some(2))
        );
        assert_eq!(r["errors_by_kind"]["jsonrpc_-32602"], 1);
        assert_eq!(r["served_by"]["r1"], 1);
        assert!(
            r["first_seen_unix_s"]["r1"].as_f64().unwrap()
                <= r["last_seen_unix_s"]["r1"].as_f64().unwrap()
        );
        assert_eq!(r["retried"], 0);
        assert!(
            text(&r).contains("errors   jsonrpc_-32602 1, timeout 1"),
            "{}",
            text(&r)
        );
    }
}
