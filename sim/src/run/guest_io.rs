//! What a guest's workload hands its frontends after a demand-done: an `io` batch's I/Os
//! to blkfront, and its streams' frames to netfront and I/Os to blkfront
//! (`guest/senders.rs`), as core inputs in a fixed order.
//!
//! # Invariants
//! - A batch's I/Os reach blkfront in the order the model built them, the last one
//!   flagged `last` (blkfront pushes the ring and notifies once for the batch).
//! - The guest's console lines (its block driver's probe line, I/O errors) go out before
//!   the I/Os they announce.

use hypervisor_model::event::CoreInput;
use hypervisor_model::ids::VcpuRef;
use hypervisor_model::io::vbd::GuestIo;

use super::World;

impl World<'_> {
    /// `vcpu`'s streams send the frames and submit the I/Os its last demand-done made.
    pub(crate) fn stream_send(&mut self, host: u16, vcpu: VcpuRef) {
        let guests = &mut self.hosts[usize::from(host)].sim.guests;
        let sends = guests.take_stream_frames(vcpu);
        let submissions = guests.take_stream_submissions(vcpu);
        for (devid, peer, frames) in sends {
            self.net_send_frames(host, vcpu, devid, &peer, frames);
        }
        for (vdev, ios) in submissions {
            self.blk_submit(host, vcpu, vdev, ios);
        }
    }

    /// `vcpu`'s guest hands blkfront `ios` on vbd `vdev`, after its console lines.
    pub(crate) fn blk_submit(
        &mut self,
        host: u16,
        vcpu: VcpuRef,
        vdev: u32,
        mut ios: Vec<GuestIo>,
    ) {
        self.console_flush(host, vcpu);
        let count = ios.len();
        for (index, io) in ios.drain(..).enumerate() {
            let last = index + 1 == count;
            let input = CoreInput::BlkSubmit {
                vcpu,
                vdev,
                io,
                last,
            };
            // Not dropped afterwards: a `BlkSubmit` owns no heap data, and skipping its
            // drop saves a call of `CoreInput`'s out-of-line drop glue per I/O (as
            // `World::deliver_plain` does for the run loop's inputs).
            self.deliver(host, &std::mem::ManuallyDrop::new(input));
        }
        let guests = &mut self.hosts[usize::from(host)].sim.guests;
        guests.reuse_submission_buffer(vcpu, ios);
    }
}
