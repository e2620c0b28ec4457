//! One metrics registry: each subsystem that has something to count registers a [`Source`] at
//! start (`app.rs`), and a scrape asks every source, in the order they registered, to describe
//! its families into one [`Encoder`] — the only code that writes the Prometheus text format
//! (`# HELP`, `# TYPE`, label escaping). A subsystem keeps its own counters (atomics, maps) and
//! formats nothing until a scrape.
//!
//! | piece | what it is |
//! |---|---|
//! | [`Source`] | a subsystem's families, described at each scrape |
//! | [`Registry`] | the sources, registered once; [`Registry::render`] is the scrape |
//! | [`Encoder::family`] | a family's header, then its samples ([`Family::sample`]) |
//! | [`Encoder::counter`], [`Encoder::gauge`] | a family of one unlabelled sample |

use std::{
    fmt::{Display, Write},
    sync::Arc,
    sync::atomic::{AtomicU64, Ordering},
};

/// A family's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Something that has metric families: it describes them at each scrape.
pub trait Source: Send + Sync {
    fn collect(&self, out: &mut Encoder);
}

/// Every source of the process, in registration order.
#[derive(Default, Clone)]
pub struct Registry {
    sources: Vec<Arc<dyn Source>>,
}

impl Registry {
    pub fn register(&mut self, source: Arc<dyn Source>) {
        self.sources.push(source);
    }

    /// The Prometheus text exposition of every registered family.
    pub fn render(&self) -> String {
        let mut out = Encoder::with_capacity(16 << 10);
        for source in &self.sources {
            source.collect(&mut out);
        }
        out.finish()
    }
}

/// One source's families alone (a module's tests).
pub fn render_one(source: &dyn Source) -> String {
    let mut out = Encoder::with_capacity(0);
    source.collect(&mut out);
    out.finish()
}

impl Encoder {
    fn with_capacity(bytes: usize) -> Self {
        Encoder {
            text: String::with_capacity(bytes),
            names: Vec::new(),
        }
    }

    fn finish(mut self) -> String {
        if cfg!(debug_assertions) {
            self.names.sort_unstable();
            assert!(
                self.names.windows(2).all(|w| w[0] != w[1]),
                "a family written twice: {:?}",
                self.names
            );
        }
        self.text
    }
}

/// Where sources write: families and their samples, in the text format.
pub struct Encoder {
    text: String,
    names: Vec<&'static str>,
}

impl Encoder {
    /// Start a family: its help and type; its samples follow.
    pub fn family(&mut self, name: &'static str, kind: Kind, help: &str) -> Family<'_> {
        self.names.push(name);
        let _ = writeln!(
            self.text,
            "# HELP {name} {help}\n# TYPE {name} {}",
            kind.as_str()
        );
        Family {
            text: &mut self.text,
            name,
        }
    }

    /// A counter family of one unlabelled sample.
    pub fn counter(&mut self, name: &'static str, help: &str, value: u64) {
        self.family(name, Kind::Counter, help).sample(&[], value);
    }

    /// A counter family of one sample per value of `label`, each read from its counter.
    pub fn counters<'v>(
        &mut self,
        name: &'static str,
        help: &str,
        label: &str,
        samples: impl IntoIterator<Item = (&'v str, &'v AtomicU64)>,
    ) {
        let mut family = self.family(name, Kind::Counter, help);
        for (value, count) in samples {
            family.sample(&[(label, value)], count.load(Ordering::Relaxed));
        }
    }

    /// A gauge family of one unlabelled sample.
    pub fn gauge(&mut self, name: &'static str, help: &str, value: impl Display) {
        self.family(name, Kind::Gauge, help).sample(&[], value);
    }
}

/// One family's samples.
pub struct Family<'a> {
    text: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    /// A sample: `labels` as (name, value) pairs, values escaped.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Display) {
        self.suffixed("", labels, value);
    }

    /// A sample of a series named after the family (`_bucket`, `_sum`, `_count` of a histogram).
    pub fn suffixed(&mut self, suffix: &str, labels: &[(&str, &str)], value: impl Display) {
        let text = &mut *self.text;
        text.push_str(self.name);
        text.push_str(suffix);
        if !labels.is_empty() {
            text.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                text.push_str(label);
                text.push_str("=\"");
                escape_into(text, v);
                text.push('"');
            }
            text.push('}');
        }
        let _ = writeln!(text, " {value}");
    }
}

/// A label value: backslash, quote and newline escaped.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str(r"\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_written_in_registration_order_with_escaped_labels() {
        struct A;
        impl Source for A {
            fn collect(&self, out: &mut Encoder) {
                out.counter("a_total", "As.", 3);
            }
        }
        struct B;
        impl Source for B {
            fn collect(&self, out: &mut Encoder) {
                let mut family = out.family("b", Kind::Gauge, "Bs by name.");
                family.sample(&[("name", "x\"y\\z\nw"), ("kind", "k")], 1);
                family.suffixed("_count", &[], 2.5);
            }
        }
        let mut registry = Registry::default();
        registry.register(Arc::new(A));
        registry.register(Arc::new(B));
        assert_eq!(
            registry.render(),
            "# HELP a_total As.\n# TYPE a_total counter\na_total 3\n\
             # HELP b Bs by name.\n# TYPE b gauge\nb{name=\"x\\\"y\\\\z\\nw\",kind=\"k\"} 1\n\
             b_count 2.5\n"
        );
    }
}
