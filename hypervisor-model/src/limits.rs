//! Xen's limits, each with the source it comes from. Every table and queue in the core is
//! bounded by one of these; going past it returns the error Xen returns.

/// First reserved domain id, `DOMID_FIRST_RESERVED` (xen/include/public/xen.h).
pub const DOMID_FIRST_RESERVED: u16 = 0x7FF0;
/// Highest domain id the allocator hands out: `DOMID_FIRST_RESERVED - 1` (xen/common/domid.c).
pub const DOMID_MAX_ALLOC: u16 = DOMID_FIRST_RESERVED - 1;
/// Most pCPUs a host may have. Xen's x86 Kconfig caps `NR_CPUS` at 4095 (xen/arch/x86/Kconfig).
pub const NR_CPUS: u32 = 4095;
/// Most vCPUs per domain, `HVM_MAX_VCPUS` (xen/include/public/hvm/hvm_info_table.h).
pub const MAX_VIRT_CPUS: u32 = 128;
/// Most cpupools per pCPU: `cpupool_create` refuses a new pool with `-ENOSPC` once
/// `n_cpupools >= 2 * nr_cpu_ids` (xen/common/sched/cpupool.c).
pub const POOLS_PER_CPU_MAX: u32 = 2;
/// Highest pool id `cpupool_create` hands out before wrapping (`CPUPOOLID_NONE - 1`).
pub const POOL_ID_MAX: u32 = u32::MAX - 1;
/// Bytes in the hypervisor console ring, `conring_size` default 16 KiB
/// (xen/drivers/char/console.c, `_CONRING_SIZE`).
pub const CONRING_BYTES_DEFAULT: usize = 16 * 1024;
/// Largest console ring xensim accepts (`conring_size` is capped by Xen at 2^31).
pub const CONRING_BYTES_MAX: usize = 1 << 26;
/// Page size (`PAGE_SIZE`, xen/include/asm-x86/page.h).
pub const PAGE_BYTES: u64 = 4096;
/// Longest domain name libxl accepts in `c_info.name` (xenstore node value; xensim's bound).
pub const DOMAIN_NAME_BYTES_MAX: usize = 64;

const _: () = assert!(DOMID_MAX_ALLOC < DOMID_FIRST_RESERVED);
const _: () = assert!(CONRING_BYTES_DEFAULT <= CONRING_BYTES_MAX);
