//! The scenario as `xensim shrink` edits it: the reducible items of the TOML document
//! (`[[domain]]`, `[[at]]`, `[[expect]]`, `[sim] duration`, each inline xl.cfg's `vcpus`) and
//! the rendering of a [`Plan`] (which of them stay) back to TOML with `toml_edit`, so the
//! comments and layout of what stays are kept.
//!
//! # Invariants
//! - Rendering starts from the original document every time: a plan is a pure description.
//! - An `[[at]]` entry or `[[expect]]` that names a dropped domain is dropped with it (an xl
//!   command or a metric path on a domain that no longer exists says nothing about the
//!   failure); so is an entry or a domain start that the shortened duration no longer
//!   reaches. Everything else stays unless the plan drops it.
//!
//! Left out: domains whose xl.cfg is a separate file (`config = ...`) keep their vCPU count
//! (the shrinker writes one file), as do domains with `vcpu_workloads` (its length must equal
//! `vcpus`).

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, Value};

use crate::scenario::values::parse_duration;

/// One `[[domain]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainItem {
    /// Its `name`.
    pub name: String,
    /// Its `start`, ns.
    pub start_ns: u64,
    /// `vcpus` of its inline xl.cfg, when the shrinker may lower it.
    pub vcpus: Option<u32>,
}

/// One `[[at]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtItem {
    /// Its `time`, ns.
    pub time_ns: u64,
    /// `xl = "..."`, `xenstore = "..."` or `fault`, for reports.
    pub label: String,
    /// The xl command line, if it is one (the key of an `expect_rc` failure).
    pub xl: Option<String>,
    /// Domains it names: xl words equal to a domain name, a fault's `domain`.
    pub domains: Vec<String>,
}

/// The reducible parts of a scenario document.
#[derive(Debug, Clone)]
pub struct Items {
    /// The parsed document, as read.
    pub doc: DocumentMut,
    /// `[[domain]]` in file order.
    pub domains: Vec<DomainItem>,
    /// `[[at]]` in file order.
    pub ats: Vec<AtItem>,
    /// `[[expect]]` metric paths in file order.
    pub expects: Vec<String>,
    /// `[sim] duration`, ns.
    pub duration_ns: u64,
    /// `[sim] warmup`, ns.
    pub warmup_ns: u64,
}

/// Which items stay. Lengths match [`Items`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Per `[[domain]]`: kept.
    pub domains: Vec<bool>,
    /// Per `[[at]]`: kept.
    pub ats: Vec<bool>,
    /// Per `[[expect]]`: kept.
    pub expects: Vec<bool>,
    /// `[sim] duration`, ns.
    pub duration_ns: u64,
    /// Per `[[domain]]`: its vCPU count when lowered.
    pub vcpus: Vec<Option<u32>>,
    /// `[sim] seed`.
    pub seed: u64,
}

fn tables<'d>(doc: &'d DocumentMut, key: &str) -> Vec<&'d Table> {
    doc.get(key)
        .and_then(Item::as_array_of_tables)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn duration_of(item: Option<&Item>) -> Option<u64> {
    match item?.as_value()? {
        Value::String(s) => parse_duration(s.value()).ok(),
        Value::Integer(i) => u64::try_from(*i.value()).ok(),
        _ => None,
    }
}

fn str_of<'t>(table: &'t Table, key: &str) -> Option<&'t str> {
    table.get(key).and_then(Item::as_str)
}

/// The line index and value of `vcpus = N` in xl.cfg text.
fn vcpus_line(xl_text: &str) -> Option<(usize, u32)> {
    xl_text.lines().enumerate().find_map(|(index, line)| {
        let (key, value) = line.split_once('=')?;
        if key.trim() != "vcpus" {
            return None;
        }
        let value = value.split('#').next().unwrap_or("").trim();
        Some((index, value.parse().ok()?))
    })
}

fn domain_item(table: &Table) -> DomainItem {
    let lowerable = table.get("vcpu_workloads").is_none();
    DomainItem {
        name: str_of(table, "name").unwrap_or("").to_string(),
        start_ns: duration_of(table.get("start")).unwrap_or(0),
        vcpus: str_of(table, "xl")
            .filter(|_| lowerable)
            .and_then(vcpus_line)
            .map(|(_, n)| n),
    }
}

fn at_item(table: &Table, domain_names: &[String]) -> AtItem {
    let time_ns = duration_of(table.get("time")).unwrap_or(0);
    let xl = str_of(table, "xl").map(str::to_string);
    let mut domains: Vec<String> = Vec::new();
    let label = if let Some(command) = &xl {
        domains.extend(
            command
                .split_whitespace()
                .filter(|w| domain_names.iter().any(|n| n == w))
                .map(str::to_string),
        );
        format!("xl = {command:?}")
    } else if let Some(command) = str_of(table, "xenstore") {
        format!("xenstore = {command:?}")
    } else {
        let fault = table.get("fault").and_then(Item::as_inline_table);
        if let Some(name) = fault.and_then(|f| f.get("domain")).and_then(Value::as_str) {
            domains.push(name.to_string());
        }
        let kind = fault.and_then(|f| f.get("kind")).and_then(Value::as_str);
        format!("fault {}", kind.unwrap_or("?"))
    };
    AtItem {
        time_ns,
        label,
        xl,
        domains,
    }
}

impl Items {
    /// The items of scenario `text`, or the TOML parse error.
    pub fn parse(text: &str) -> Result<Items, toml_edit::TomlError> {
        let doc: DocumentMut = text.parse()?;
        let domains: Vec<DomainItem> = tables(&doc, "domain")
            .into_iter()
            .map(domain_item)
            .collect();
        let names: Vec<String> = domains.iter().map(|d| d.name.clone()).collect();
        let ats = tables(&doc, "at")
            .into_iter()
            .map(|t| at_item(t, &names))
            .collect();
        let expects = tables(&doc, "expect")
            .into_iter()
            .map(|t| str_of(t, "metric").unwrap_or("").to_string())
            .collect();
        let sim = doc.get("sim").and_then(Item::as_table);
        let duration_ns = sim
            .and_then(|s| duration_of(s.get("duration")))
            .unwrap_or(0);
        let warmup_ns = sim.and_then(|s| duration_of(s.get("warmup"))).unwrap_or(0);
        Ok(Items {
            doc,
            domains,
            ats,
            expects,
            duration_ns,
            warmup_ns,
        })
    }

    /// True if the scenario names xl.cfg files by path: a `[[domain]] config` or an
    /// `[[at]] xl = "create PATH"`.
    pub fn names_config_files(&self) -> bool {
        let config_key = tables(&self.doc, "domain")
            .iter()
            .any(|t| t.get("config").is_some());
        let creates = self.ats.iter().any(|at| {
            at.xl
                .as_deref()
                .is_some_and(|c| c.trim_start().starts_with("create"))
        });
        config_key || creates
    }

    /// The plan that keeps everything, with `seed`.
    pub fn keep_all(&self, seed: u64) -> Plan {
        Plan {
            domains: vec![true; self.domains.len()],
            ats: vec![true; self.ats.len()],
            expects: vec![true; self.expects.len()],
            duration_ns: self.duration_ns,
            vcpus: vec![None; self.domains.len()],
            seed,
        }
    }

    /// `plan` with the drops it implies: entries naming a dropped domain, entries and domain
    /// starts at or after the duration.
    pub fn effective(&self, plan: &Plan) -> Plan {
        let mut out = plan.clone();
        for (keep, d) in out.domains.iter_mut().zip(&self.domains) {
            *keep = *keep && d.start_ns < plan.duration_ns;
        }
        let dropped: Vec<&str> = self
            .domains
            .iter()
            .zip(&out.domains)
            .filter(|(_, keep)| !**keep)
            .map(|(d, _)| d.name.as_str())
            .collect();
        for (keep, at) in out.ats.iter_mut().zip(&self.ats) {
            let names_dropped = at.domains.iter().any(|n| dropped.contains(&n.as_str()));
            *keep = *keep && !names_dropped && at.time_ns < plan.duration_ns;
        }
        for (keep, metric) in out.expects.iter_mut().zip(&self.expects) {
            let names_dropped = dropped
                .iter()
                .any(|n| metric.starts_with(&format!("domain.{n}.")));
            *keep = *keep && !names_dropped;
        }
        out
    }

    /// The TOML text of `plan` (after [`Items::effective`]).
    pub fn render(&self, plan: &Plan) -> String {
        let plan = self.effective(plan);
        let mut doc = self.doc.clone();
        retain(&mut doc, "domain", &plan.domains);
        retain(&mut doc, "at", &plan.ats);
        retain(&mut doc, "expect", &plan.expects);
        set_sim(&mut doc, &plan);
        lower_vcpus(&mut doc, &plan);
        doc.to_string()
    }
}

/// Keeps entry `i` of the array of tables `key` iff `keep[i]`; removes the key when empty.
fn retain(doc: &mut DocumentMut, key: &str, keep: &[bool]) {
    let Some(array) = doc.get_mut(key).and_then(Item::as_array_of_tables_mut) else {
        return;
    };
    for index in (0..keep.len()).rev() {
        if !keep[index] && index < array.len() {
            array.remove(index);
        }
    }
    if array.is_empty() {
        doc.remove(key);
    }
}

/// Replaces `table[key]` by `value`, keeping the old value's comments and spacing.
fn replace_value(table: &mut Table, key: &str, mut value: Value) {
    if let Some(old) = table.get(key).and_then(Item::as_value) {
        *value.decor_mut() = old.decor().clone();
    }
    table.insert(key, Item::Value(value));
}

fn set_sim(doc: &mut DocumentMut, plan: &Plan) {
    let Some(sim) = doc.get_mut("sim").and_then(Item::as_table_mut) else {
        return;
    };
    let seed =
        i64::try_from(plan.seed).map_or_else(|_| Value::from(plan.seed.to_string()), Value::from);
    replace_value(sim, "seed", seed);
    replace_value(
        sim,
        "duration",
        Value::from(duration_text(plan.duration_ns)),
    );
}

fn lower_vcpus(doc: &mut DocumentMut, plan: &Plan) {
    let Some(domains) = doc.get_mut("domain").and_then(Item::as_array_of_tables_mut) else {
        return;
    };
    let kept: Vec<Option<u32>> = plan
        .vcpus
        .iter()
        .zip(&plan.domains)
        .filter(|(_, keep)| **keep)
        .map(|(vcpus, _)| *vcpus)
        .collect();
    for (table, vcpus) in domains.iter_mut().zip(kept) {
        let (Some(vcpus), Some(text)) = (vcpus, str_of(table, "xl")) else {
            continue;
        };
        let Some((line_index, _)) = vcpus_line(text) else {
            continue;
        };
        let lines: Vec<String> = text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i == line_index {
                    format!("vcpus = {vcpus}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        let mut new_text = lines.join("\n");
        if text.ends_with('\n') {
            new_text.push('\n');
        }
        replace_value(table, "xl", Value::from(new_text));
    }
}

/// A duration in the largest unit that divides it (`"125ms"`, `"2s"`, `"1500us"`).
pub fn duration_text(ns: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "us")];
    for (factor, unit) in UNITS {
        if ns >= factor && ns.is_multiple_of(factor) {
            return format!("{}{unit}", ns / factor);
        }
    }
    format!("{ns}ns")
}

/// An array of tables' length (0 if absent).
pub fn count(doc: &DocumentMut, key: &str) -> usize {
    doc.get(key)
        .and_then(Item::as_array_of_tables)
        .map_or(0, ArrayOfTables::len)
}

#[cfg(test)]
mod tests {
    use super::{duration_text, Items};

    const SCENARIO: &str = r#"# top comment
[sim]
seed = 3
duration = "2s"   # two seconds
warmup = "100ms"

[host.h0]
topology = { sockets = 1, cores_per_socket = 4 }
memory = "8GiB"

# the victim
[[domain]]
name = "a"
xl = """
name = "a"
vcpus = 4
"""

# the bystander
[[domain]]
name = "b"
xl = """
name = "b"
vcpus = 2
"""

[[at]]
time = "1s"
xl = "pause b"

[[expect]]
metric = "domain.b.vcpus.0.running_ns"
max = 1
"#;

    #[test]
    fn dropping_a_domain_drops_its_comment_at_entries_and_expectations() {
        let items = Items::parse(SCENARIO).expect("parses");
        let mut plan = items.keep_all(3);
        plan.domains[1] = false;

        let text = items.render(&plan);

        assert!(!text.contains("bystander"), "{text}");
        assert!(!text.contains("pause b"), "{text}");
        assert!(!text.contains("[[expect]]"), "{text}");
        assert!(text.contains("# the victim"), "{text}");
        assert!(text.contains("# top comment"), "{text}");
    }

    #[test]
    fn halved_duration_keeps_its_comment_and_lowered_vcpus_stay_multiline() {
        let items = Items::parse(SCENARIO).expect("parses");
        let mut plan = items.keep_all(9);
        plan.duration_ns = 1_000_000_000;
        plan.vcpus[0] = Some(1);

        let text = items.render(&plan);

        assert!(text.contains("duration = \"1s\"   # two seconds"), "{text}");
        assert!(text.contains("seed = 9"), "{text}");
        assert!(text.contains("vcpus = 1\n"), "{text}");
        // The 1 s entry is no longer reached: time must stay below the duration.
        assert!(!text.contains("pause b"), "{text}");
    }

    #[test]
    fn items_read_names_times_and_vcpus() {
        let items = Items::parse(SCENARIO).expect("parses");

        assert_eq!(items.domains[0].vcpus, Some(4));
        assert_eq!(items.ats[0].time_ns, 1_000_000_000);
        assert_eq!(items.ats[0].domains, vec!["b".to_string()]);
        assert_eq!(items.warmup_ns, 100_000_000);
    }

    #[test]
    fn duration_text_uses_the_largest_exact_unit() {
        assert_eq!(duration_text(125_000_000), "125ms");
        assert_eq!(duration_text(2_000_000_000), "2s");
        assert_eq!(duration_text(1_500), "1500ns");
    }
}
