//! Where core inputs and core events go: the recorder (hash and trace file), the readable
//! decision log, and the metrics collector.

use hypervisor_model::event::CoreInput;
use hypervisor_model::hypervisor::boot::BootConfig;
use hypervisor_model::trace::TraceEvent;

use super::decisions;
use super::HostRuntime;
use crate::record::Recorder;
use crate::scenario::model::Scenario;

/// All consumers of the record stream.
#[derive(Debug)]
pub struct Sinks {
    /// Hash, trace file, replay comparison.
    pub recorder: Recorder,
    host_names: Vec<String>,
    decisions: Option<String>,
}

/// What the sinks gathered by the end of a run.
#[derive(Debug, Default)]
pub struct SinksReport {
    /// The decision log, if it was kept.
    pub decision_log: Option<String>,
}

impl Sinks {
    /// Sinks for a run of `scenario`.
    pub fn new(recorder: Recorder, host_names: Vec<String>, decision_log: bool, _scenario: &Scenario) -> Sinks {
        Sinks { recorder, host_names, decisions: decision_log.then(String::new) }
    }

    /// A host is about to boot with `config`.
    pub fn host_booting(&mut self, _host: u16, _config: &BootConfig) {}

    fn host_name(&self, host: u16) -> &str {
        self.host_names.get(usize::from(host)).map_or("?", String::as_str)
    }

    /// A core input at `time_ns`.
    pub fn input(&mut self, host: u16, time_ns: u64, input: &CoreInput) {
        self.recorder.input(host, time_ns, input);
        if let Some(log) = &mut self.decisions {
            let name = self.host_names.get(usize::from(host)).map_or("?", String::as_str);
            decisions::input_line(log, name, time_ns, input);
        }
    }

    /// A core event at `time_ns`.
    pub fn event(&mut self, host: u16, time_ns: u64, event: &TraceEvent) {
        self.recorder.event(host, time_ns, event);
        if self.decisions.is_some() {
            let name = self.host_name(host).to_string();
            if let Some(log) = &mut self.decisions {
                decisions::event_line(log, &name, time_ns, event);
            }
        }
    }

    /// Ends the run: the recorder (to finish) and the report.
    pub fn finish(self, _end_ns: u64, _hosts: &[HostRuntime]) -> (Recorder, SinksReport) {
        (self.recorder, SinksReport { decision_log: self.decisions })
    }
}
