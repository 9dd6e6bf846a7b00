//! `xl list -l`: each domain's libxl configuration as JSON, written the way yajl's
//! beautifying generator writes it.
//!
//! Follows tools/xl/xl_info.c (`list_domains_details`, `printf_info_one_json`),
//! tools/libs/light/gentypes.py (`libxl_C_type_gen_json`: a field is written only when it
//! differs from its IDL default), tools/libs/light/libxl_domain.c
//! (`retrieve_domain_configuration_end`), tools/libs/light/libxl_mem.c
//! (`libxl__get_memory_target`), tools/helpers/init-dom-json.c (dom0's stub config) and
//! yajl's `yajl_gen.c` (separators, four-space indent, the blank line inside an empty
//! map or array, the final newline that `puts` doubles).
//!
//! # Invariants
//! - Keys appear in libxl IDL order; fields at their IDL default are left out.
//!
//! xensim differs: a guest's object carries only the fields the core models (name, type,
//! UUID, pool, vCPUs, memory, scheduler, kernel, `on_*` actions). Real libxl stores the
//! whole defaulted configuration and prints many more keys and the device arrays.

use hypervisor_model::domain::Domain;
use hypervisor_model::hypervisor::Hypervisor;
use hypervisor_model::toolstack::config::{GuestType, ShutdownAction};

use super::list::uuid_string;
use super::xl_name;

/// KiB per 4 KiB page.
const KIB_PER_PAGE: u64 = 4;

/// `LIBXL_MEMKB_DEFAULT` (`~0ULL`): dom0's stub config leaves `video_memkb` at it.
const LIBXL_MEMKB_DEFAULT: u64 = u64::MAX;

/// `b_info.sched_params` as `libxl_domain_sched_params_get` fills it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SchedParamsJson {
    /// `libxl_scheduler_to_string` of the pool's scheduler (`"credit2"`, `"null"`).
    pub sched: String,
    /// Weight, for credit and credit2 (`None` = left at the default, not printed).
    pub weight: Option<u32>,
    /// Cap, for credit and credit2.
    pub cap: Option<u32>,
}

/// The parts of `libxl_domain_config` xensim prints for one domain.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DomainConfigJson {
    /// Domain id.
    pub domid: u32,
    /// `c_info.type` and the `b_info` union key (`"pv"`, `"pvh"`, `"hvm"`).
    pub guest_type: GuestType,
    /// `c_info.name`.
    pub name: String,
    /// `c_info.uuid` (omitted when all zero).
    pub uuid: [u8; 16],
    /// `c_info.pool_name`, if the configuration named one.
    pub pool_name: Option<String>,
    /// `b_info.max_vcpus` (0 = omitted, as in dom0's stub config).
    pub max_vcpus: u32,
    /// `b_info.avail_vcpus`: online vCPU indexes (empty = omitted).
    pub avail_vcpus: Vec<u32>,
    /// `b_info.max_memkb`.
    pub max_memkb: u64,
    /// `b_info.target_memkb`.
    pub target_memkb: u64,
    /// `b_info.sched_params`.
    pub sched: SchedParamsJson,
    /// `b_info.kernel`.
    pub kernel: Option<String>,
    /// `on_poweroff`, `on_reboot`, `on_watchdog`, `on_crash`, `on_soft_reset`.
    pub actions: [ShutdownAction; 5],
}

/// The body of `xl list -l` for `domains`.
pub(crate) fn list_long(hv: &Hypervisor, domains: &[&Domain]) -> String {
    let configs: Vec<DomainConfigJson> = domains.iter().map(|d| domain_config(hv, d)).collect();
    list_long_json(&configs)
}

/// `list_domains_details` in JSON mode: an array of `printf_info_one_json` objects,
/// yajl's final newline, and the newline `puts` adds.
pub fn list_long_json(configs: &[DomainConfigJson]) -> String {
    let mut gen = YajlGen::default();
    gen.array_open();
    for config in configs {
        write_domain(&mut gen, config);
    }
    gen.array_close();
    let mut out = gen.finish();
    out.push('\n');
    out
}

/// What `libxl_retrieve_domain_configuration` returns for `domain`.
pub fn domain_config(hv: &Hypervisor, domain: &Domain) -> DomainConfigJson {
    let sched = sched_params(hv, domain);
    let name = String::from(xl_name(domain).unwrap_or(""));
    let avail_vcpus = (0u32..)
        .zip(&domain.vcpus)
        .filter(|(_, vcpu)| vcpu.is_online())
        .map(|(index, _)| index)
        .collect();
    match &domain.config {
        // dom0: init-dom-json.c stored a stub config with every field at its default,
        // and the type is PV (or PVH for an HVM-container dom0).
        None => DomainConfigJson {
            domid: u32::from(domain.id.raw()),
            guest_type: if domain.guest_type == GuestType::Pv {
                GuestType::Pv
            } else {
                GuestType::Pvh
            },
            name,
            uuid: domain.uuid,
            pool_name: None,
            max_vcpus: 0,
            avail_vcpus: Vec::new(),
            // The dom0 kernel writes memory/static-max and memory/target at boot.
            max_memkb: domain.max_pages.saturating_mul(KIB_PER_PAGE),
            target_memkb: retrieved_target_memkb(
                domain.tot_pages.saturating_mul(KIB_PER_PAGE),
                LIBXL_MEMKB_DEFAULT,
                0,
            ),
            sched,
            kernel: None,
            actions: [ShutdownAction::Destroy; 5],
        },
        Some(cfg) => DomainConfigJson {
            domid: u32::from(domain.id.raw()),
            guest_type: cfg.guest_type,
            name,
            uuid: domain.uuid,
            pool_name: cfg.pool.clone(),
            max_vcpus: cfg.max_vcpus,
            avail_vcpus,
            max_memkb: cfg.max_memory_kib,
            // libxl__build_post wrote target = target_memkb - fudge; retrieval adds the
            // same fudge back, so the configured memory comes out unchanged.
            target_memkb: cfg.memory_kib,
            sched,
            kernel: cfg.kernel.clone(),
            actions: [
                cfg.on_poweroff,
                cfg.on_reboot,
                cfg.on_watchdog,
                cfg.on_crash,
                cfg.on_soft_reset,
            ],
        },
    }
}

/// `target_memkb` as `retrieve_domain_configuration_end` computes it: the xenstore
/// `memory/target` plus `libxl__get_targetmem_fudge` of the *stored* build info (its
/// `video_memkb`, plus `LIBXL_MAXMEM_CONSTANT` for HVM with maxmem above memory), in u64
/// arithmetic. dom0's stub leaves `video_memkb` at `LIBXL_MEMKB_DEFAULT` (`~0`), so its
/// target comes out one KiB below xenstore's (1048575 for 1048576 in the reference).
fn retrieved_target_memkb(xs_target_kib: u64, video_memkb: u64, hvm_fudge_kib: u64) -> u64 {
    xs_target_kib
        .wrapping_add(video_memkb)
        .wrapping_add(hvm_fudge_kib)
}

/// `libxl_domain_sched_params_get`: credit and credit2 report weight and cap; null and
/// the others report no per-domain parameter.
fn sched_params(hv: &Hypervisor, domain: &Domain) -> SchedParamsJson {
    let sched = hv
        .pools()
        .find(|pool| pool.id == domain.pool)
        .map_or("unknown", |pool| pool.sched.opt_name());
    let weighted = matches!(sched, "credit" | "credit2");
    SchedParamsJson {
        sched: String::from(sched),
        weight: weighted.then_some(domain.weight),
        cap: weighted.then_some(domain.cap),
    }
}

fn write_domain(gen: &mut YajlGen, config: &DomainConfigJson) {
    gen.map_open();
    gen.string("domid");
    gen.integer(u64::from(config.domid));
    gen.string("config");
    gen.map_open();
    write_c_info(gen, config);
    write_b_info(gen, config);
    let keys = [
        "on_poweroff",
        "on_reboot",
        "on_watchdog",
        "on_crash",
        "on_soft_reset",
    ];
    for (key, action) in keys.iter().zip(config.actions) {
        // LIBXL_ACTION_ON_SHUTDOWN_DESTROY is the IDL default and is not written.
        if action != ShutdownAction::Destroy {
            gen.string(key);
            gen.string(action_name(action));
        }
    }
    gen.map_close();
    gen.map_close();
}

fn write_c_info(gen: &mut YajlGen, config: &DomainConfigJson) {
    gen.string("c_info");
    gen.map_open();
    gen.string("type");
    gen.string(config.guest_type.as_str());
    gen.string("name");
    gen.string(&config.name);
    if config.uuid != [0; 16] {
        gen.string("uuid");
        gen.string(&uuid_string(&config.uuid));
    }
    if let Some(pool) = &config.pool_name {
        gen.string("pool_name");
        gen.string(pool);
    }
    gen.map_close();
}

fn write_b_info(gen: &mut YajlGen, config: &DomainConfigJson) {
    gen.string("b_info");
    gen.map_open();
    if config.max_vcpus != 0 {
        gen.string("max_vcpus");
        gen.integer(u64::from(config.max_vcpus));
    }
    if !config.avail_vcpus.is_empty() {
        gen.string("avail_vcpus");
        gen.array_open();
        for index in &config.avail_vcpus {
            gen.integer(u64::from(*index));
        }
        gen.array_close();
    }
    gen.string("max_memkb");
    gen.integer(config.max_memkb);
    gen.string("target_memkb");
    gen.integer(config.target_memkb);
    write_sched_params(gen, &config.sched);
    if let Some(kernel) = &config.kernel {
        gen.string("kernel");
        gen.string(kernel);
    }
    // The keyed union `u` is written as "type.<kind>"; every field here is default.
    gen.string(&format!("type.{}", config.guest_type.as_str()));
    gen.map_open();
    gen.map_close();
    for arch in ["arch_arm", "arch_x86"] {
        gen.string(arch);
        gen.map_open();
        gen.map_close();
    }
    gen.map_close();
}

fn write_sched_params(gen: &mut YajlGen, sched: &SchedParamsJson) {
    gen.string("sched_params");
    gen.map_open();
    gen.string("sched");
    gen.string(&sched.sched);
    if let Some(weight) = sched.weight {
        gen.string("weight");
        gen.integer(u64::from(weight));
    }
    if let Some(cap) = sched.cap {
        gen.string("cap");
        gen.integer(u64::from(cap));
    }
    gen.map_close();
}

/// `libxl_action_on_shutdown_to_string`.
fn action_name(action: ShutdownAction) -> &'static str {
    match action {
        ShutdownAction::Destroy => "destroy",
        ShutdownAction::Restart => "restart",
        ShutdownAction::RenameRestart => "restart_rename",
        ShutdownAction::Preserve => "preserve",
        ShutdownAction::CoredumpDestroy => "coredump_destroy",
        ShutdownAction::CoredumpRestart => "coredump_restart",
        ShutdownAction::SoftReset => "soft_reset",
    }
}

/// yajl's generator states (`yajl_gen_state`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum GenState {
    Start,
    MapStart,
    MapKey,
    MapVal,
    ArrayStart,
    InArray,
    Complete,
}

/// A yajl generator with `yajl_gen_beautify` and a four-space indent, as
/// `libxl_yajl_gen_alloc` configures it. Bounded by construction: nesting follows the
/// calls above, which are at most five deep.
#[derive(Debug)]
struct YajlGen {
    out: String,
    states: Vec<GenState>,
}

impl Default for YajlGen {
    fn default() -> YajlGen {
        YajlGen {
            out: String::new(),
            states: vec![GenState::Start],
        }
    }
}

impl YajlGen {
    fn state(&self) -> GenState {
        *self.states.last().expect("yajl state stack is never empty")
    }

    fn set_state(&mut self, state: GenState) {
        if let Some(top) = self.states.last_mut() {
            *top = state;
        }
    }

    /// `INSERT_SEP` then `INSERT_WHITESPACE`.
    fn before_value(&mut self) {
        match self.state() {
            GenState::MapKey | GenState::InArray => self.out.push_str(",\n"),
            GenState::MapVal => self.out.push_str(": "),
            _ => {}
        }
        if self.state() != GenState::MapVal {
            self.indent();
        }
    }

    fn indent(&mut self) {
        for _ in 1..self.states.len() {
            self.out.push_str("    ");
        }
    }

    /// `APPENDED_ATOM` then `FINAL_NEWLINE`.
    fn after_value(&mut self) {
        let next = match self.state() {
            GenState::Start => GenState::Complete,
            GenState::MapStart | GenState::MapKey => GenState::MapVal,
            GenState::MapVal => GenState::MapKey,
            GenState::ArrayStart => GenState::InArray,
            other => other,
        };
        self.set_state(next);
        if self.states.len() == 1 && next == GenState::Complete {
            self.out.push('\n');
        }
    }

    fn open(&mut self, bracket: char, state: GenState) {
        self.before_value();
        self.states.push(state);
        assert!(self.states.len() <= 16, "JSON nesting is bounded");
        self.out.push(bracket);
        self.out.push('\n');
    }

    fn close(&mut self, bracket: char) {
        assert!(self.states.len() > 1, "close without open");
        self.states.pop();
        self.out.push('\n');
        let at = self.state();
        // yajl_gen_*_close: the newline, then APPENDED_ATOM, INSERT_WHITESPACE, bracket.
        let next = match at {
            GenState::Start => GenState::Complete,
            GenState::MapStart | GenState::MapKey => GenState::MapVal,
            GenState::MapVal => GenState::MapKey,
            GenState::ArrayStart => GenState::InArray,
            other => other,
        };
        self.set_state(next);
        if next != GenState::MapVal {
            self.indent();
        }
        self.out.push(bracket);
        if self.states.len() == 1 && next == GenState::Complete {
            self.out.push('\n');
        }
    }

    fn map_open(&mut self) {
        self.open('{', GenState::MapStart);
    }

    fn map_close(&mut self) {
        self.close('}');
    }

    fn array_open(&mut self) {
        self.open('[', GenState::ArrayStart);
    }

    fn array_close(&mut self) {
        self.close(']');
    }

    fn string(&mut self, text: &str) {
        self.before_value();
        self.out.push('"');
        escape_into(&mut self.out, text);
        self.out.push('"');
        self.after_value();
    }

    fn integer(&mut self, value: u64) {
        self.before_value();
        self.out.push_str(&value.to_string());
        self.after_value();
    }

    fn finish(self) -> String {
        assert_eq!(self.states.len(), 1, "unclosed JSON container");
        self.out
    }
}

/// `yajl_string_encode` without `yajl_gen_escape_solidus`.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u00{:02X}", u32::from(c))),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{escape_into, retrieved_target_memkb, YajlGen, LIBXL_MEMKB_DEFAULT};

    #[test]
    fn retrieved_target_memkb_dom0_stub_is_one_below_xenstore() {
        // 1048576 KiB in xenstore plus ~0 wraps to 1048575, as the reference shows.
        assert_eq!(
            retrieved_target_memkb(1_048_576, LIBXL_MEMKB_DEFAULT, 0),
            1_048_575
        );
    }

    #[test]
    fn yajl_empty_map_in_map_has_blank_line() {
        let mut gen = YajlGen::default();
        gen.map_open();
        gen.string("a");
        gen.map_open();
        gen.map_close();
        gen.map_close();
        assert_eq!(gen.finish(), "{\n    \"a\": {\n\n    }\n}\n");
    }

    #[test]
    fn yajl_array_of_integers_one_per_line() {
        let mut gen = YajlGen::default();
        gen.array_open();
        gen.integer(0);
        gen.integer(1);
        gen.array_close();
        assert_eq!(gen.finish(), "[\n    0,\n    1\n]\n");
    }

    #[test]
    fn escape_into_control_byte_uses_uppercase_hex() {
        let mut out = String::new();
        escape_into(&mut out, "a\"\u{1}");
        assert_eq!(out, "a\\\"\\u0001");
    }
}
