//! Domains as the store sees them: introduction and release, the special watches
//! `@introduceDomain` / `@releaseDomain`, stub-domain targets, the initial tree, and the
//! `XS_CONTROL` commands.
//!
//! Follows tools/xenstore/xenstored_domain.c of Xen 4.17 (`introduce_domain`,
//! `do_introduce`, `do_release`, `do_resume`, `do_set_target`, `do_is_domain_introduced`,
//! `do_get_domain_path`, `destroy_domain`, `domain_tree_remove`, `check_domains`,
//! `domain_conn_reset`), xenstored_core.c (`setup_structure`) and xenstored_control.c.
//!
//! # Invariants
//! - An introduced domain has exactly one ring connection; a released one has none, and
//!   no watch or transaction of it survives.
//! - Releasing a domain removes every node it owns (4.17 does not keep orphans) and its
//!   entries in the special nodes' lists; entries naming it elsewhere stop counting.
//!
//! Left out: mapping the ring page and binding the event channel (the simulator owns
//! both); `INTRODUCE` of a domain that does not exist cannot fail here.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::access::Caller;
use super::perms::Perm;
use super::tree::Node;
use super::{path, DomainRec, XenStore, XsError, CONTROL_PRINTS_MAX, DOMID_SELF, PRIV_DOMID};
use crate::ids::XsConnId;
use crate::limits::DOMID_FIRST_RESERVED;

impl XenStore {
    /// dom0_init: the store domain's record and ring connection.
    pub(super) fn introduce_master(&mut self) -> XsConnId {
        let conn = self.add_conn(Some(PRIV_DOMID));
        let rec = DomainRec {
            generation: self.generation,
            introduced: true,
            conn: Some(conn),
            shutdown: false,
            nodes_count: 0,
            port: 0,
        };
        self.domains.insert(PRIV_DOMID, rec);
        conn
    }

    /// `setup_structure`: `/`, `/tool`, `/tool/xenstored`, owned by dom0 with no access.
    pub(super) fn setup_structure(&mut self) {
        let perms = alloc::vec![Perm::new(PRIV_DOMID, 0)];
        let mut root = Node::new(perms.clone());
        root.add_child("tool");
        let mut tool = Node::new(perms.clone());
        tool.add_child("xenstored");
        for (p, n) in [
            ("/", root),
            ("/tool", tool),
            ("/tool/xenstored", Node::new(perms)),
        ] {
            let mut n = n;
            n.generation = self.next_generation();
            self.tree.insert(p, n);
            self.domain_rec_or_alloc(PRIV_DOMID).nodes_count += 1;
        }
    }

    /// The record of `domid`, made on first use (`find_or_alloc_existing_domain`).
    pub(super) fn domain_rec_or_alloc(&mut self, domid: u32) -> &mut DomainRec {
        let generation = self.generation;
        self.domains.entry(domid).or_insert(DomainRec {
            generation,
            introduced: false,
            conn: None,
            shutdown: false,
            nodes_count: 0,
            port: 0,
        })
    }

    /// The hypervisor created `domid`: the store may now name it in permissions (the
    /// toolstack writes its home before `INTRODUCE`). Xen's xenstored asks the hypervisor;
    /// the simulator tells the store instead.
    pub fn domain_created(&mut self, domid: u32) {
        self.domain_rec_or_alloc(domid);
    }

    /// `XS_INTRODUCE`: gives `domid` a ring connection (or, for an introduced domain,
    /// rebinds its port) and resets that connection. Returns the connection.
    pub fn introduce_domain(&mut self, domid: u32, port: u32) -> Result<XsConnId, XsError> {
        if port == 0 || domid >= u32::from(DOMID_FIRST_RESERVED) {
            return Err(XsError::Einval);
        }
        let introduced = self.domains.get(&domid).is_some_and(|d| d.introduced);
        let conn = if introduced {
            let d = self.domain_rec_or_alloc(domid);
            d.port = port;
            d.conn.ok_or(XsError::Einval)?
        } else {
            let conn = self.add_conn(Some(domid));
            let d = self.domain_rec_or_alloc(domid);
            d.introduced = true;
            d.conn = Some(conn);
            d.shutdown = false;
            d.port = port;
            if domid != PRIV_DOMID {
                self.fire_watches(&Caller::DAEMON, "@introduceDomain", None, true, None);
            }
            conn
        };
        // `domain_conn_reset`.
        self.drop_conn_state(conn);
        if let Some(k) = self.conns.get_mut(&conn) {
            k.out.clear();
            k.decoder.reset();
            k.ignored = false;
            k.ring_out.clear();
            k.ring_out_used = 0;
            if let Some(page) = k.ring.as_mut() {
                page.reset();
            }
        }
        Ok(conn)
    }

    /// `find_connected_domain`: unknown → `ENOENT`, introduced without a connection →
    /// `EINVAL`.
    fn connected(&self, domid: u32) -> Result<XsConnId, XsError> {
        let d = self.domains.get(&domid).filter(|d| d.introduced);
        let d = d.ok_or(XsError::Enoent)?;
        d.conn.ok_or(XsError::Einval)
    }

    /// `XS_RELEASE`: the domain's connection goes (watches first, then transactions), its
    /// nodes are removed, and `@releaseDomain` fires.
    pub fn release_domain(&mut self, domid: u32) -> Result<(), XsError> {
        if domid == PRIV_DOMID {
            return Err(XsError::Einval);
        }
        let conn = self.connected(domid)?;
        self.drop_conn_state(conn);
        self.conns.remove(&conn);
        self.destroy_domain(domid);
        Ok(())
    }

    /// The domain shut down or crashed: `@releaseDomain` fires once until `RESUME`
    /// (`check_domains`).
    pub fn domain_shutdown(&mut self, domid: u32) {
        let Some(d) = self.domains.get_mut(&domid) else {
            return;
        };
        if d.introduced && !d.shutdown {
            d.shutdown = true;
            self.fire_watches(&Caller::DAEMON, "@releaseDomain", None, true, None);
        }
    }

    /// The domain is dying: as `RELEASE` for an introduced domain; a record that was never
    /// introduced just goes, with its nodes (`check_domains`).
    pub fn domain_destroyed(&mut self, domid: u32) {
        if domid == PRIV_DOMID {
            return;
        }
        if let Some(conn) = self.domains.get(&domid).and_then(|d| d.conn) {
            self.drop_conn_state(conn);
            self.conns.remove(&conn);
        }
        if self.domains.contains_key(&domid) {
            self.destroy_domain(domid);
        }
    }

    /// `destroy_domain`: remove owned nodes, scrub the special lists, fire the release.
    fn destroy_domain(&mut self, domid: u32) {
        let introduced = self.domains.get(&domid).is_some_and(|d| d.introduced);
        self.remove_owned_nodes(domid);
        for list in [&mut self.release_perms, &mut self.introduce_perms] {
            if list[0].domid == domid {
                list[0].domid = PRIV_DOMID;
            }
            let owner = list[0];
            list.retain(|p| p.domid != domid);
            if list.first() != Some(&owner) {
                list.insert(0, owner);
            }
        }
        self.domains.remove(&domid);
        if introduced {
            self.fire_watches(&Caller::DAEMON, "@releaseDomain", None, true, None);
        }
    }

    /// `domain_tree_remove`: a pre-order walk from `/` removing each subtree whose root the
    /// domain owns.
    fn remove_owned_nodes(&mut self, domid: u32) {
        let owned = |xs: &XenStore| xs.domains.get(&domid).map_or(0, |d| d.nodes_count);
        let mut stack = alloc::vec![String::from("/")];
        while let Some(p) = stack.pop() {
            if owned(self) <= 0 {
                break;
            }
            let Some(node) = self.tree.get(&p) else {
                continue;
            };
            if node.owner() == domid && p != "/" {
                // cxenstored logs and continues when one removal fails.
                let _ = self.rm_node(&Caller::DAEMON, &p);
                continue;
            }
            for name in node.children().rev() {
                stack.push(path::child(&p, name));
            }
        }
    }

    /// `XS_RESUME`: the next shutdown reports `@releaseDomain` again.
    pub fn resume_domain(&mut self, domid: u32) -> Result<(), XsError> {
        if domid == PRIV_DOMID {
            return Err(XsError::Einval);
        }
        self.connected(domid)?;
        if let Some(d) = self.domains.get_mut(&domid) {
            d.shutdown = false;
        }
        Ok(())
    }

    /// `XS_SET_TARGET`: `domid` acts with `target`'s rights as well.
    pub fn set_target(&mut self, domid: u32, target: u32) -> Result<(), XsError> {
        let conn = self.connected(domid)?;
        self.connected(target)?;
        if let Some(k) = self.conns.get_mut(&conn) {
            k.target = Some(target);
        }
        Ok(())
    }

    /// `XS_IS_DOMAIN_INTRODUCED` (`DOMID_SELF` is always introduced).
    pub fn is_domain_introduced(&self, domid: u32) -> bool {
        domid == DOMID_SELF || self.domains.get(&domid).is_some_and(|d| d.introduced)
    }

    /// `CONTROL`: `args[0]` is the command.
    pub(super) fn control(&mut self, args: &[&[u8]]) -> Result<Vec<u8>, XsError> {
        let Some((cmd, rest)) = args.split_first() else {
            return Err(XsError::Einval);
        };
        let ok = || b"OK\0".to_vec();
        match (*cmd, rest) {
            (b"check", []) => Ok(ok()),
            (b"log", [b"on"]) => {
                self.log_enabled = true;
                Ok(ok())
            }
            (b"log", [b"off"]) => {
                self.log_enabled = false;
                Ok(ok())
            }
            (b"logfile", [_]) => Ok(ok()),
            (b"print", [text]) => {
                if self.control_prints.len() < CONTROL_PRINTS_MAX {
                    self.control_prints
                        .push(String::from_utf8_lossy(text).into_owned());
                }
                Ok(ok())
            }
            (b"quota", []) => Ok(nul_terminated(self.quota_table())),
            (b"quota", [b"set", name, value]) => self.quota_set(name, value).map(|()| ok()),
            (b"quota", [domid]) => self.quota_of(super::wire::atou(domid)).map(nul_terminated),
            (b"quota-soft", []) => Ok(nul_terminated(format!(
                "Quota settings:\n{:<17}: {:>8} {}\n",
                "memory", self.cfg.quotas.memory_bytes_soft, MEMORY_SOFT_DESCR
            ))),
            (b"help", []) => Ok(nul_terminated(String::from(CONTROL_HELP))),
            _ => Err(XsError::Einval),
        }
    }

    fn quota_rows(&self) -> [(&'static str, u32, &'static str); 9] {
        let q = &self.cfg.quotas;
        [
            ("nodes", q.nodes_count_max, "Nodes per domain"),
            ("watches", q.watches_count_max, "Watches per domain"),
            (
                "transactions",
                q.transactions_count_max,
                "Transactions per domain",
            ),
            (
                "outstanding",
                q.outstanding_count_max,
                "Outstanding requests per domain",
            ),
            (
                "transaction-nodes",
                q.transaction_nodes_count_max,
                TX_NODES_DESCR,
            ),
            ("memory", q.memory_bytes_max, MEMORY_DESCR),
            ("node-size", q.node_bytes_max, "Max. size of a node"),
            ("path-max", q.path_bytes_max, "Max. length of a node path"),
            (
                "permissions",
                q.perms_count_max,
                "Max. number of permissions per node",
            ),
        ]
    }

    fn quota_table(&self) -> String {
        let mut out = String::from("Quota settings:\n");
        for (name, value, descr) in self.quota_rows() {
            out.push_str(&format!("{name:<17}: {value:>8} {descr}\n"));
        }
        out
    }

    fn quota_set(&mut self, name: &[u8], value: &[u8]) -> Result<(), XsError> {
        let v = super::wire::atoi(value);
        let v = u32::try_from(v)
            .ok()
            .filter(|&v| v >= 1)
            .ok_or(XsError::Einval)?;
        let q = &mut self.cfg.quotas;
        let slot = match name {
            b"nodes" => &mut q.nodes_count_max,
            b"watches" => &mut q.watches_count_max,
            b"transactions" => &mut q.transactions_count_max,
            b"outstanding" => &mut q.outstanding_count_max,
            b"transaction-nodes" => &mut q.transaction_nodes_count_max,
            b"memory" => &mut q.memory_bytes_max,
            b"node-size" => &mut q.node_bytes_max,
            b"path-max" => &mut q.path_bytes_max,
            b"permissions" => &mut q.perms_count_max,
            _ => return Err(XsError::Einval),
        };
        *slot = v;
        Ok(())
    }

    /// `domain_get_quota`: the domain's usage (memory is not modelled and reads 0).
    fn quota_of(&self, domid: u32) -> Result<String, XsError> {
        let d = self.domains.get(&domid).ok_or(XsError::Enoent)?;
        let conn = d.conn.and_then(|c| self.conns.get(&c));
        let watches = conn.map_or(0, |k| k.watches.len());
        let txs = conn.map_or(0, |k| k.txs.len());
        let mut out = format!("Domain {domid}:\n");
        let rows = [
            ("nodes", d.nodes_count),
            ("watches", i64::try_from(watches).unwrap_or(i64::MAX)),
            ("transactions", i64::try_from(txs).unwrap_or(i64::MAX)),
            ("outstanding", 0),
            ("memory", 0),
        ];
        for (name, value) in rows {
            out.push_str(&format!("{name:<16}: {value:>8}\n"));
        }
        Ok(out)
    }
}

const TX_NODES_DESCR: &str = "Max. number of accessed nodes per transaction";
const MEMORY_DESCR: &str = "Total Xenstore memory per domain (error level)";
const MEMORY_SOFT_DESCR: &str = "Total Xenstore memory per domain (warning level)";
const CONTROL_HELP: &str = "check\t\nlog\ton|off\nlive-update\t[-c <cmdline>] [-F] \
[-t <timeout>] <file>\n    Default timeout is 60 seconds.\nlogfile\t<file>\nmemreport\t[<file>]\n\
print\t<string>\nquota\t[set <name> <val>|<domid>]\nquota-soft\t[set <name> <val>]\nhelp\t\n";

fn nul_terminated(s: String) -> Vec<u8> {
    let mut v = s.into_bytes();
    v.push(0);
    v
}
