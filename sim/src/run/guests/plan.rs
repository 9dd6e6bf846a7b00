//! The events a guest slot plans in the run loop's queue: its wake, the end of a service
//! segment, the end of a model's run. Each carries the generation that keeps it live.

use hypervisor_model::ids::VcpuRef;

use crate::clock::EventQueue;
use crate::run::{SimEvent, HEAP_DEMAND_DONE};

/// Plans `v`'s wake at `at_ns` (in the heap), valid while its wake generation is
/// `generation`.
#[inline]
pub(super) fn push_guest_wake(
    queue: &mut EventQueue<SimEvent>,
    at_ns: u64,
    host: u16,
    v: VcpuRef,
    generation: u64,
) {
    let event = SimEvent::GuestWake {
        host,
        vcpu: v,
        generation,
    };
    queue.push(at_ns, event);
}

/// Plans the demand-done event of `v`'s service segment at `at_ns` (its oldest item done),
/// valid while its run generation is `generation`. Always in the heap, even when due now.
#[inline]
pub(super) fn push_service_done(
    queue: &mut EventQueue<SimEvent>,
    at_ns: u64,
    host: u16,
    v: VcpuRef,
    generation: u64,
) {
    let event = SimEvent::DemandDone {
        host,
        vcpu: v,
        generation,
    };
    queue.push_to_heap(HEAP_DEMAND_DONE, at_ns, event);
}

/// Plans `v`'s demand-done event at `at_ns`, valid while its run generation is
/// `generation`: a model's run, which may end now.
#[inline]
pub(super) fn push_demand_done(
    queue: &mut EventQueue<SimEvent>,
    at_ns: u64,
    host: u16,
    v: VcpuRef,
    generation: u64,
) {
    // A blocked model's zero-length run mostly pops next (`EventQueue::push_now`).
    if at_ns == queue.now_ns() {
        let event = SimEvent::DemandDone {
            host,
            vcpu: v,
            generation,
        };
        queue.push_now(HEAP_DEMAND_DONE, event);
    } else {
        push_service_done(queue, at_ns, host, v, generation);
    }
}
