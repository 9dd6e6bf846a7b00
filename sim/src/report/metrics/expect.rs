//! `[[expect]]` evaluation (`specs/scenario.md` §8): metric paths into the run result JSON
//! and the bound checks made on them at the end of a run.
//!
//! ```text
//! path   := scope "." selector { "." segment }
//! scope  := "host" | "domain" | "migration"    (the arrays hosts, domains, migrations)
//! after an array of objects, a segment selects the element whose "name" (for io entries
//! "dev") equals it, else whose "id" (or "index") equals it in decimal; otherwise it is a key.
//! ```
//!
//! # Invariants
//! - Lookup never panics on any path or document; a missing part yields `NotFound`.
//! - A selector may contain dots (a domain named `db.1`): the longest run of segments that
//!   names an element wins.
//!
//! Left out: the load-time check that a path's field names exist in the schema (exit 2); it
//! belongs to the scenario loader.

use serde_json::Value;

use crate::scenario::model::Expect;

/// What a metric path leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// An integer (every JSON integer fits `i128`).
    Integer(i128),
    /// JSON `null`: no samples, undefined ratio, unknown input.
    Null,
    /// Some part of the path names nothing.
    NotFound,
    /// The path leads to a string, array or object.
    NotInteger,
}

/// One failed expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectFailure {
    /// The metric path as written.
    pub metric: String,
    /// `expect failed: <path> = <value>, want <= <bound>` and the like.
    pub message: String,
}

impl std::fmt::Display for ExpectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Follows `path` in the run result JSON `json`.
pub fn lookup(json: &Value, path: &str) -> Lookup {
    let segments: Vec<&str> = path.split('.').collect();
    let Some((scope, rest)) = segments.split_first() else {
        return Lookup::NotFound;
    };
    let array_key = match *scope {
        "host" => "hosts",
        "domain" => "domains",
        "migration" => "migrations",
        _ => return Lookup::NotFound,
    };
    if rest.is_empty() {
        return Lookup::NotFound;
    }
    match json.get(array_key).and_then(|root| walk(root, rest)) {
        None => Lookup::NotFound,
        Some(Value::Null) => Lookup::Null,
        Some(value) => integer(value),
    }
}

fn integer(value: &Value) -> Lookup {
    if let Some(unsigned) = value.as_u64() {
        return Lookup::Integer(i128::from(unsigned));
    }
    match value.as_i64() {
        Some(signed) => Lookup::Integer(i128::from(signed)),
        None => Lookup::NotInteger,
    }
}

/// Follows `segments` from `value`; `None` when some segment names nothing.
fn walk<'a>(value: &'a Value, segments: &[&str]) -> Option<&'a Value> {
    let mut current = value;
    let mut rest = segments;
    while let Some((first, tail)) = rest.split_first() {
        match current {
            Value::Array(items) => {
                let (element, used) = select(items, rest)?;
                current = element;
                rest = &rest[used..];
            }
            Value::Object(map) => {
                current = map.get(*first)?;
                rest = tail;
            }
            _ => return None,
        }
    }
    Some(current)
}

/// The element named by the longest prefix of `segments`, and how many segments it used.
fn select<'a>(items: &'a [Value], segments: &[&str]) -> Option<(&'a Value, usize)> {
    for used in (1..=segments.len()).rev() {
        let selector = segments[..used].join(".");
        if let Some(element) = items.iter().find(|item| names(item, &selector)) {
            return Some((element, used));
        }
    }
    let first = segments.first()?;
    let number: u64 = first.parse().ok()?;
    items
        .iter()
        .find(|item| numbered(item, number))
        .map(|element| (element, 1))
}

fn names(item: &Value, selector: &str) -> bool {
    ["name", "dev"]
        .iter()
        .any(|key| item.get(key).and_then(Value::as_str) == Some(selector))
}

fn numbered(item: &Value, number: u64) -> bool {
    ["id", "index"]
        .iter()
        .any(|key| item.get(key).and_then(Value::as_u64) == Some(number))
}

/// Checks every expectation against `json`; failures come back in `expects` order.
pub fn check_expectations(json: &Value, expects: &[Expect]) -> Vec<ExpectFailure> {
    expects
        .iter()
        .filter_map(|expect| check_one(json, expect))
        .collect()
}

fn check_one(json: &Value, expect: &Expect) -> Option<ExpectFailure> {
    let path = &expect.metric;
    let message = match lookup(json, path) {
        Lookup::Integer(value) => bound_violation(expect, value)
            .map(|want| format!("expect failed: {path} = {value}, want {want}")),
        Lookup::Null if expect.allow_null => None,
        Lookup::NotFound if expect.allow_null => None,
        Lookup::Null => Some(format!("expect failed: {path} is null")),
        Lookup::NotFound => Some(format!("expect failed: {path} not found")),
        Lookup::NotInteger => Some(format!("expect failed: {path} is not an integer")),
    }?;
    Some(ExpectFailure {
        metric: path.clone(),
        message,
    })
}

/// The first bound `value` breaks, rendered (`<= 1000000`); `None` when all hold.
fn bound_violation(expect: &Expect, value: i128) -> Option<String> {
    if let Some(eq) = expect.eq.filter(|&eq| value != i128::from(eq)) {
        return Some(format!("== {eq}"));
    }
    if let Some(min) = expect.min.filter(|&min| value < i128::from(min)) {
        return Some(format!(">= {min}"));
    }
    if let Some(max) = expect.max.filter(|&max| value > i128::from(max)) {
        return Some(format!("<= {max}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::{check_expectations, lookup, Lookup};
    use crate::scenario::model::Expect;

    /// A trimmed metrics document: one host with one pCPU, two domains (one dotted name).
    fn document() -> Value {
        json!({
            "hosts": [{ "name": "h0", "pcpus": [{ "id": 3, "utilization_ppm": 500000 }] }],
            "domains": [
                { "name": "web", "vcpus": [{ "id": 1, "runnable_ns": 42 }],
                  "wakeup_latency_ns": { "p99": 1203000, "p50": null } },
                { "name": "db.1", "running_ns": 7 }
            ],
            "migrations": []
        })
    }

    fn expect(metric: &str, max: Option<i64>, allow_null: bool) -> Expect {
        Expect {
            metric: metric.to_owned(),
            min: None,
            max,
            eq: None,
            allow_null,
        }
    }

    #[test]
    fn lookup_domain_by_name_returns_value() {
        let json = document();

        let found = lookup(&json, "domain.web.wakeup_latency_ns.p99");

        assert_eq!(found, Lookup::Integer(1_203_000));
    }

    #[test]
    fn lookup_array_element_by_id_returns_value() {
        let json = document();

        let pcpu = lookup(&json, "host.h0.pcpus.3.utilization_ppm");
        let vcpu = lookup(&json, "domain.web.vcpus.1.runnable_ns");

        assert_eq!(pcpu, Lookup::Integer(500_000));
        assert_eq!(vcpu, Lookup::Integer(42));
    }

    #[test]
    fn lookup_dotted_domain_name_selects_whole_name() {
        let json = document();

        let found = lookup(&json, "domain.db.1.running_ns");

        assert_eq!(found, Lookup::Integer(7));
    }

    #[test]
    fn lookup_missing_entity_or_scope_returns_not_found() {
        let json = document();

        assert_eq!(lookup(&json, "domain.nope.running_ns"), Lookup::NotFound);
        assert_eq!(lookup(&json, "migration.0.downtime_ns"), Lookup::NotFound);
        assert_eq!(lookup(&json, "vm.web.running_ns"), Lookup::NotFound);
        assert_eq!(lookup(&json, "domain.web"), Lookup::NotInteger);
    }

    #[test]
    fn check_value_above_max_reports_value_and_bound() {
        let json = document();
        let expects = [expect(
            "domain.web.wakeup_latency_ns.p99",
            Some(1_000_000),
            false,
        )];

        let failures = check_expectations(&json, &expects);

        assert_eq!(failures.len(), 1);
        assert_eq!(
            failures[0].message,
            "expect failed: domain.web.wakeup_latency_ns.p99 = 1203000, want <= 1000000"
        );
    }

    #[test]
    fn check_null_without_allow_null_fails_and_with_it_passes() {
        let json = document();
        let strict = [expect("domain.web.wakeup_latency_ns.p50", Some(1), false)];
        let lenient = [expect("domain.web.wakeup_latency_ns.p50", Some(1), true)];

        let strict_failures = check_expectations(&json, &strict);
        let lenient_failures = check_expectations(&json, &lenient);

        assert_eq!(
            strict_failures[0].message,
            "expect failed: domain.web.wakeup_latency_ns.p50 is null"
        );
        assert!(lenient_failures.is_empty());
    }

    #[test]
    fn check_missing_entity_reports_not_found() {
        let json = document();
        let expects = [expect("domain.ghost.running_ns", None, false)];

        let failures = check_expectations(&json, &expects);

        assert_eq!(
            failures[0].message,
            "expect failed: domain.ghost.running_ns not found"
        );
    }

    #[test]
    fn check_min_and_eq_bounds_report_their_operator() {
        let json = document();
        let below_min = Expect {
            min: Some(100),
            ..expect("domain.web.vcpus.1.runnable_ns", None, false)
        };
        let not_equal = Expect {
            eq: Some(41),
            ..expect("domain.web.vcpus.1.runnable_ns", None, false)
        };

        let failures = check_expectations(&json, &[below_min, not_equal]);

        assert_eq!(
            failures[0].message,
            "expect failed: domain.web.vcpus.1.runnable_ns = 42, want >= 100"
        );
        assert_eq!(
            failures[1].message,
            "expect failed: domain.web.vcpus.1.runnable_ns = 42, want == 41"
        );
    }
}
