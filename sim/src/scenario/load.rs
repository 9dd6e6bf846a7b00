//! The scenario loader: TOML text → validated [`Scenario`] (`specs/scenario.md` §2–§9).
//!
//! Reads `[sim]`, hosts (`host.rs`), `[fabric]`, `[costs]`, `[[domain]]` with their xl.cfg
//! (`xlcfg_map.rs`), the `[[at]]` timeline and `[[expect]]`, then runs the cross-checks of
//! §9. All errors are collected; nothing is returned unless there are none.
//!
//! # Invariants
//! - Every error is located in the file it comes from (inline xl.cfg: inside the TOML).
//! - The timeline is sorted by time, stable (equal times keep file order).

use std::path::Path;

use hypervisor_model::sched::params::VcpuParams;

use super::diag::{Diags, LoadError, Loc, Severity, TextOrigin};
use super::host::{costs, parse_host, LoadedHost};
use super::model::{
    DomainSpec, Expect, FabricSpec, LinkOverride, LinkSpec, NetPeer, Scenario, SimSpec,
    WorkloadSpec,
};
use super::schema::check_metric_path;
use super::tree::{conv, parse_document, Kind, Node, Tbl};
use super::unsupported::{self, Feature};
use super::workload::{dist, parse_workload, MemorySlot};
use super::xlcfg_map::{load_xl_cfg, XlCfgSource};
use super::LoadOptions;

struct Loader<'a> {
    d: Diags,
    base_dir: &'a Path,
    file_index: usize,
}

/// Loads scenario text; see [`super::load_str`].
pub fn load(
    file_name: &str,
    text: &str,
    base_dir: &Path,
    opts: &LoadOptions,
) -> Result<Scenario, LoadError> {
    let d = Diags::new(opts.strict);
    let file_index = d.add_source(file_name, text);
    let loader = Loader {
        d,
        base_dir,
        file_index,
    };
    let scenario = match parse_document(text) {
        Ok(root) => loader.scenario(file_name, &root, opts),
        Err((offset, message)) => {
            let loc = Loc {
                file_index,
                offset_bytes: offset,
            };
            loader.d.error(loc, format!("TOML syntax: {message}"));
            None
        }
    };
    match scenario {
        Some(s) if loader.d.error_count() == 0 => Ok(s),
        _ => Err(LoadError::Invalid {
            file_name: file_name.to_string(),
            rendered: loader.d.rendered(Severity::Error),
        }),
    }
}

impl Loader<'_> {
    fn scenario(&self, file_name: &str, root: &Node, opts: &LoadOptions) -> Option<Scenario> {
        let d = &self.d;
        let top = Tbl::new(d, self.file_index, root, "[top level]", "");
        let sim = match top.get("sim") {
            Some(node) => self.sim(node, opts),
            None => {
                d.error(top.here(), "[sim]: missing required table");
                None
            }
        };
        let hosts = self.hosts(&top);
        let names: Vec<&str> = hosts.iter().map(|h| h.spec.name.as_str()).collect();
        let fabric = self.fabric(&top, &names);
        let costs = top
            .sub(d, "costs")
            .map(|c| costs(d, &c))
            .unwrap_or_default();
        let domains = self.domains(&top, &hosts);
        let duration_ns = sim.as_ref().map_or(u64::MAX, |s| s.duration_ns);
        let (timeline, create_configs) =
            super::timeline::timeline(d, self.file_index, self.base_dir, &top, &hosts, duration_ns);
        let expects = self.expects(&top);
        top.finish(d);
        Some(Scenario {
            file_name: file_name.to_string(),
            sources: d.sources(),
            sim: sim?,
            hosts: hosts.into_iter().map(|h| h.spec).collect(),
            domains,
            timeline,
            expects,
            warnings: d.rendered(Severity::Warning),
            create_configs,
            fabric,
            costs,
        })
    }

    fn sim(&self, node: &Node, opts: &LoadOptions) -> Option<SimSpec> {
        let d = &self.d;
        let t = Tbl::new(d, self.file_index, node, "[sim]", "");
        let seed = t.req(d, "seed", conv::u64_);
        let duration_ns = t.req(d, "duration", conv::duration);
        let warmup_ns = t.opt(d, "warmup", conv::duration).unwrap_or(0);
        let check = t.opt(d, "check", conv::bool_).unwrap_or(false);
        let percentile_method = t
            .opt(d, "percentile_method", |n| {
                match conv::string(n).as_deref() {
                    Ok(m @ ("nearest_rank" | "hdr_3sd")) => Ok(m.to_string()),
                    _ => Err("\"nearest_rank\" or \"hdr_3sd\"".to_string()),
                }
            })
            .unwrap_or_else(|| "nearest_rank".to_string());
        let trace = t.sub(d, "trace");
        let path = |key: &str| -> Option<std::path::PathBuf> {
            let tr = trace.as_ref()?;
            tr.opt(d, key, conv::string).map(|p| self.base_dir.join(p))
        };
        if percentile_method == "hdr_3sd" {
            let at = t
                .get("percentile_method")
                .map_or_else(|| t.here(), |n| t.loc(n.offset));
            let key = t.path("percentile_method");
            unsupported::check(d, at, &key, Feature::PercentileHdr);
        }
        let (trace_file, perfetto_file) = (path("file"), path("perfetto"));
        let mut perfetto_window_ns = None;
        let mut perfetto_counters = vec!["runq".into(), "free_memory".into(), "balloon".into()];
        let mut decision_log = false;
        if let Some(tr) = &trace {
            perfetto_window_ns = tr.opt(d, "perfetto_window", |n| match &n.kind {
                Kind::Array(items) if items.len() == 2 => {
                    let lo = conv::duration(&items[0])?;
                    let hi = conv::duration(&items[1])?;
                    if lo < hi {
                        Ok((lo, hi))
                    } else {
                        Err("[start, end] with start < end".to_string())
                    }
                }
                _ => Err("[duration, duration]".to_string()),
            });
            if let Some(list) = tr.opt(d, "perfetto_counters", |n| match &n.kind {
                Kind::Array(items) => items
                    .iter()
                    .map(|i| match conv::string(i).as_deref() {
                        Ok(c @ ("runq" | "free_memory" | "balloon")) => Ok(c.to_string()),
                        _ => Err("a list of \"runq\", \"free_memory\", \"balloon\"".into()),
                    })
                    .collect(),
                _ => Err("a list of \"runq\", \"free_memory\", \"balloon\"".to_string()),
            }) {
                perfetto_counters = list;
            }
            decision_log = tr.opt(d, "decision_log", conv::bool_).unwrap_or(false);
        }
        if let Some(tr) = trace {
            tr.finish(d);
        }
        if let (Some(0), Some(node)) = (duration_ns, t.get("duration")) {
            t.error_at(d, node, "duration", "expected a duration > 0, found 0");
        }
        if let (Some(duration), Some(node)) = (duration_ns, t.get("warmup")) {
            if warmup_ns >= duration {
                let message = format!("warmup ({warmup_ns} ns) must be < duration ({duration} ns)");
                t.error_at(d, node, "warmup", &message);
            }
        }
        t.finish(d);
        Some(SimSpec {
            seed: opts.seed_override.or(seed)?,
            duration_ns: duration_ns.filter(|v| *v > 0)?,
            warmup_ns,
            check,
            trace_file,
            decision_log,
            percentile_method,
            perfetto_file,
            perfetto_window_ns,
            perfetto_counters,
        })
    }

    fn hosts(&self, top: &Tbl<'_>) -> Vec<LoadedHost> {
        let d = &self.d;
        let Some(t) = top.sub(d, "host") else {
            d.error(top.here(), "[host.<name>]: at least one host is required");
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut entries: Vec<_> = t.entries().iter().collect();
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        for entry in entries {
            t.get(&entry.key);
            if !super::values::is_name(&entry.key) {
                let message = format!(
                    "[host.{}]: host names must be {}",
                    entry.key,
                    super::values::NAME_EXPECTED
                );
                d.error(t.loc(entry.key_offset), message);
                continue;
            }
            if let Some(host) = parse_host(d, self.file_index, &entry.key, &entry.value) {
                out.push(host);
            }
        }
        if t.entries().is_empty() {
            d.error(t.here(), "[host.<name>]: at least one host is required");
        }
        t.finish(d);
        out
    }

    fn link(&self, t: &Tbl<'_>, base: &LinkSpec) -> LinkSpec {
        let d = &self.d;
        LinkSpec {
            latency: t.opt(d, "latency", dist).unwrap_or(base.latency),
            bandwidth_bytes_per_s: t
                .opt(d, "bandwidth", conv::rate)
                .unwrap_or(base.bandwidth_bytes_per_s),
            loss_ppm: t.opt(d, "loss_ppm", conv::ppm).unwrap_or(base.loss_ppm),
            mtu_bytes: t.opt(d, "mtu", conv::u32_).unwrap_or(base.mtu_bytes),
        }
    }

    fn fabric(&self, top: &Tbl<'_>, hosts: &[&str]) -> Option<FabricSpec> {
        let d = &self.d;
        let Some(t) = top.sub(d, "fabric") else {
            if hosts.len() >= 2 {
                d.error(
                    top.here(),
                    "[fabric]: required when there are two or more hosts",
                );
            }
            return None;
        };
        if hosts.len() < 2 {
            d.error(t.here(), "[fabric]: only allowed with two or more hosts");
        }
        let builtin = LinkSpec {
            latency: super::model::Dist::Const(5_000),
            bandwidth_bytes_per_s: 1_250_000_000,
            loss_ppm: 0,
            mtu_bytes: 1500,
        };
        let default_link = match t.sub(d, "default_link") {
            Some(l) => {
                let link = self.link(&l, &builtin);
                l.finish(d);
                link
            }
            None => builtin,
        };
        let mut links = Vec::new();
        for (index, item) in t.array(d, "links").unwrap_or(&[]).iter().enumerate() {
            let l = Tbl::new(
                d,
                self.file_index,
                item,
                "[fabric]",
                &format!("links[{index}]."),
            );
            let host = |key: &str| -> Option<usize> {
                let name = l.req(d, key, conv::name)?;
                let found = hosts.iter().position(|h| *h == name);
                if found.is_none() {
                    if let Some(node) = l.get(key) {
                        l.error_at(d, node, key, &format!("no host named {name:?}"));
                    }
                }
                found
            };
            let (a, b) = (host("a"), host("b"));
            let link = self.link(&l, &default_link);
            if let (Some(a), Some(b)) = (a, b) {
                if a == b {
                    d.error(
                        l.here(),
                        format!("{}: a link joins two different hosts", l.path("b")),
                    );
                }
                links.push(LinkOverride {
                    a_host_index: a,
                    b_host_index: b,
                    link,
                });
            }
            l.finish(d);
        }
        t.finish(d);
        Some(FabricSpec {
            default_link,
            links,
        })
    }

    fn xl_text(
        &self,
        t: &Tbl<'_>,
        key: &str,
        prefix: String,
        host: &LoadedHost,
        name: Option<String>,
    ) -> Option<(
        super::model::SourceFile,
        hypervisor_model::toolstack::config::DomainConfig,
    )> {
        let d = &self.d;
        let node = t.get(key)?;
        let Kind::Str(text, origin) = &node.kind else {
            t.error_at(
                d,
                node,
                key,
                &format!("expected a string, found {}", node.describe()),
            );
            return None;
        };
        let (source_name, source_text, origin, prefix) = if key == "config" {
            let path = self.base_dir.join(text);
            let body = match std::fs::read_to_string(&path) {
                Ok(body) => body,
                Err(e) => {
                    t.error_at(d, node, key, &format!("cannot read xl.cfg {text:?}: {e}"));
                    return None;
                }
            };
            let index = d.add_source(text, &body);
            (text.clone(), body, TextOrigin::file(index), String::new())
        } else {
            let origin = TextOrigin {
                file_index: self.file_index,
                base_offset_bytes: if origin.exact {
                    origin.content_offset
                } else {
                    node.offset
                },
                exact: origin.exact,
            };
            (
                format!("{}.cfg", name.clone().unwrap_or_default()),
                text.clone(),
                origin,
                prefix,
            )
        };
        let src = XlCfgSource {
            text: &source_text,
            origin,
            prefix,
            expected_name: name,
        };
        let cfg = load_xl_cfg(d, &src, &host.cpus)?;
        Some((
            super::model::SourceFile {
                name: source_name,
                text: source_text,
            },
            cfg,
        ))
    }

    fn domains(&self, top: &Tbl<'_>, hosts: &[LoadedHost]) -> Vec<DomainSpec> {
        let d = &self.d;
        let mut out: Vec<DomainSpec> = Vec::new();
        let mut peer_locs: Vec<Loc> = Vec::new();
        for (index, item) in top.array(d, "domain").unwrap_or(&[]).iter().enumerate() {
            let peek = Tbl::new(d, self.file_index, item, "[[domain]]", "");
            let label = peek.get("name").and_then(|n| conv::name(n).ok());
            let context = format!(
                "[[domain]] {}",
                label.clone().unwrap_or_else(|| format!("#{}", index + 1))
            );
            let t = Tbl::new(&Diags::new(false), self.file_index, item, &context, "");
            let name = t.req(d, "name", conv::name);
            if let (Some(name), Some(node)) = (&name, t.get("name")) {
                if out.iter().any(|o| &o.name == name) {
                    t.error_at(
                        d,
                        node,
                        "name",
                        &format!("domain name {name:?} is already used"),
                    );
                }
            }
            let host_index = super::timeline::host_ref(&self.d, &t, hosts);
            let start_ns = t.opt(d, "start", conv::duration).unwrap_or(0);
            let paused = t.opt(d, "paused", conv::bool_).unwrap_or(false);
            let mut memory = MemorySlot::default();
            let workload = match t.get("workload") {
                Some(node) => {
                    parse_workload(d, self.file_index, node, &context, "workload.", &mut memory)
                }
                None => Some(WorkloadSpec::Idle {
                    tick: None,
                    tick_work: super::model::Dist::Const(2_000),
                }),
            };
            let per_vcpu: Option<Vec<Option<WorkloadSpec>>> =
                t.array(d, "vcpu_workloads").map(|items| {
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, n)| {
                            parse_workload(
                                d,
                                self.file_index,
                                n,
                                &context,
                                &format!("vcpu_workloads[{i}]."),
                                &mut memory,
                            )
                        })
                        .collect()
                });
            let rtds = t.get("rtds").and_then(|node| {
                let r = Tbl::new(d, self.file_index, node, &context, "rtds.");
                let whole_us = |key: &str| {
                    let ns = r.req(d, key, conv::duration)?;
                    let us = u32::try_from(ns / 1_000).ok().filter(|_| ns % 1_000 == 0);
                    if us.is_none() {
                        if let Some(n) = r.get(key) {
                            r.error_at(d, n, key, "expected a whole number of µs below 2^32 µs");
                        }
                    }
                    us
                };
                let period_us = whole_us("period");
                let budget_us = whole_us("budget");
                // Every new rtds vCPU has extratime on (rt_alloc_udata).
                let extratime = r.opt(d, "extratime", conv::bool_).unwrap_or(true);
                r.finish(d);
                Some(VcpuParams {
                    period_us: period_us?,
                    budget_us: budget_us?,
                    extratime,
                })
            });
            let (has_config, has_xl) = (t.has("config"), t.has("xl"));
            if has_config == has_xl {
                d.error(
                    t.here(),
                    format!(
                        "{}: exactly one of `config` (a path) or `xl` (inline text) is required",
                        t.path("config")
                    ),
                );
            }
            let prefix = format!("{context} xl: ");
            let host = host_index.and_then(|i| hosts.get(i));
            let loaded = match (host, has_config, has_xl) {
                (Some(host), true, false) => self.xl_text(&t, "config", prefix, host, name.clone()),
                (Some(host), false, true) => self.xl_text(&t, "xl", prefix, host, name.clone()),
                _ => None,
            };
            // Mark the keys the checks above read through `peek`'s twin.
            t.finish(d);
            let (Some(name), Some(host_index), Some((source, config)), Some(workload)) =
                (name, host_index, loaded, workload)
            else {
                continue;
            };
            self.pool_exists(&t, &hosts[host_index], &config);
            if rtds.is_some() {
                self.pool_is_rtds(&t, &hosts[host_index], &config);
            }
            let max = usize::try_from(config.max_vcpus).unwrap_or(0);
            let vcpu_workloads = match per_vcpu {
                Some(list) => {
                    let vcpus = usize::try_from(config.vcpus).unwrap_or(0);
                    if list.len() != vcpus && list.len() != max {
                        if let Some(node) = t.get("vcpu_workloads") {
                            let message = format!(
                                "expected one workload per vCPU ({vcpus}), found {}",
                                list.len()
                            );
                            t.error_at(d, node, "vcpu_workloads", &message);
                        }
                        continue;
                    }
                    let Some(mut list) = list.into_iter().collect::<Option<Vec<_>>>() else {
                        continue;
                    };
                    list.resize(
                        max,
                        WorkloadSpec::Idle {
                            tick: None,
                            tick_work: super::model::Dist::Const(2_000),
                        },
                    );
                    list
                }
                None => vec![workload; max],
            };
            let mut vcpu_workloads = vcpu_workloads;
            let vdevs: Vec<String> = config.disks.iter().map(|k| k.vdev.clone()).collect();
            let vifs = config.vifs.len();
            let checked = super::workload::resolve_vbds(&mut vcpu_workloads, &vdevs)
                .and_then(|()| super::workload::check_vifs(&vcpu_workloads, vifs));
            if let Err(message) = checked {
                let node = t.get("workload").or_else(|| t.get("vcpu_workloads"));
                match node {
                    Some(node) => t.error_at(d, node, "workload", &message),
                    None => d.error(t.here(), message),
                }
                continue;
            }
            let workload_node = t.get("workload").or_else(|| t.get("vcpu_workloads"));
            peer_locs.push(workload_node.map_or(t.here(), |n| t.loc(n.offset)));
            out.push(DomainSpec {
                name,
                host_index,
                config_path: source.name,
                config,
                start_ns,
                paused,
                vcpu_workloads,
                os: memory.os(),
                memory: memory.into_memory(),
                rtds,
            });
        }
        self.net_peers_exist(&out, &peer_locs);
        out
    }

    /// Every `net.peer` that names a domain names one of the scenario's (errors at the
    /// domain's `workload`).
    fn net_peers_exist(&self, domains: &[DomainSpec], locs: &[Loc]) {
        for (domain, loc) in domains.iter().zip(locs) {
            for net in domain.vcpu_workloads.iter().flat_map(WorkloadSpec::nets) {
                let NetPeer::Domain(peer) = &net.peer else {
                    continue;
                };
                if !domains.iter().any(|d| &d.name == peer) {
                    let message = format!(
                        "domain {:?}: workload net.peer {peer:?} is not a domain of the scenario",
                        domain.name
                    );
                    self.d.error(*loc, message);
                }
            }
        }
    }

    fn pool_exists(
        &self,
        t: &Tbl<'_>,
        host: &LoadedHost,
        config: &hypervisor_model::toolstack::config::DomainConfig,
    ) {
        if let Some(pool) = &config.pool {
            let known = pool == "Pool-0" || host.spec.cpupools.iter().any(|p| &p.name == pool);
            if !known {
                let message = format!(
                    "xl.cfg pool {pool:?} is not a cpupool of host {:?}",
                    host.spec.name
                );
                self.d
                    .error(t.here(), format!("{}: {message}", t.path("config")));
            }
        }
    }

    /// `[[domain]] rtds` needs the domain's pool to run rtds (xl sched-rtds would find no
    /// rtds domain otherwise).
    fn pool_is_rtds(
        &self,
        t: &Tbl<'_>,
        host: &LoadedHost,
        config: &hypervisor_model::toolstack::config::DomainConfig,
    ) {
        let pool = config.pool.as_deref().unwrap_or("Pool-0");
        let sched = if pool == "Pool-0" {
            Some(host.spec.scheduler)
        } else {
            host.spec
                .cpupools
                .iter()
                .find(|p| p.name == pool)
                .map(|p| p.scheduler)
        };
        if let Some(sched) = sched.filter(|s| *s != super::model::SchedName::Rtds) {
            let at = t.get("rtds").map_or(t.here(), |n| t.loc(n.offset));
            self.d.error(
                at,
                format!(
                    "{}: the domain's cpupool {pool:?} runs {}, not rtds",
                    t.path("rtds"),
                    sched.as_str()
                ),
            );
        }
    }

    fn expects(&self, top: &Tbl<'_>) -> Vec<Expect> {
        let d = &self.d;
        let mut out = Vec::new();
        for (index, item) in top.array(d, "expect").unwrap_or(&[]).iter().enumerate() {
            let t = Tbl::new(
                d,
                self.file_index,
                item,
                &format!("[[expect]] #{}", index + 1),
                "",
            );
            let metric = t.req(d, "metric", conv::string);
            if let (Some(metric), Some(node)) = (&metric, t.get("metric")) {
                if let Err(message) = check_metric_path(metric) {
                    t.error_at(d, node, "metric", &format!("{message} (metrics.md §4.1)"));
                }
            }
            let min = t.opt(d, "min", conv::i64_);
            let max = t.opt(d, "max", conv::i64_);
            let eq = t.opt(d, "eq", conv::i64_);
            let allow_null = t.opt(d, "allow_null", conv::bool_).unwrap_or(false);
            if !t.has("min") && !t.has("max") && !t.has("eq") {
                d.error(
                    t.here(),
                    format!(
                        "{}: at least one of min, max, eq is required",
                        t.path("metric")
                    ),
                );
            }
            t.finish(d);
            if let Some(metric) = metric {
                out.push(Expect {
                    metric,
                    min,
                    max,
                    eq,
                    allow_null,
                });
            }
        }
        out
    }
}
