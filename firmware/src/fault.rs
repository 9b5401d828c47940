//! Builds that fault on purpose, for the tests of the fault path
//! (tests/firmware.rs): `fault-stack-overflow` needs more stack than the
//! board has, `fault-bad-access` reads an address no memory answers. Either
//! must end in the HardFault handler's message and exit code; a program that
//! gets past its fault logs what went unnoticed and exits with `NO_FAULT`.

use crate::board::{self, exit_code};
use defmt::{error, info};

/// Provokes the fault of the build's feature (the overflow when both are
/// on). It never returns (the fault or `NO_FAULT` ends the program) but is
/// typed `()`, so that the rest of `main` builds without unreachable-code
/// warnings.
pub fn provoke() {
    #[cfg(feature = "fault-stack-overflow")]
    overflow::run();
    #[cfg(not(feature = "fault-stack-overflow"))]
    bad_access::run();
}

#[cfg(feature = "fault-stack-overflow")]
mod overflow {
    use super::*;
    use core::mem::MaybeUninit;
    use core::ptr::addr_of_mut;

    /// How far below the end of its room the recursion takes the stack.
    const OVERSHOOT: usize = 1024;
    /// Stack bytes of each level of the recursion, besides saved registers.
    const FRAME_BYTES: usize = 256;

    /// Static data an overflow lands in when the stack sits above the static
    /// data (linked without flip-link): `.uninit` is the last static section,
    /// right below the stack's end, so it is what an overflow overwrites
    /// first. 4 KiB cover the overshoot, one more level and an exception
    /// frame, so nothing else is hit and the program can tell what happened.
    const SPILL_WORDS: usize = 1024;
    const SPILL_PAINT: u32 = 0xC0FF_EE00;
    #[link_section = ".uninit.thinkling.SPILL"]
    static mut SPILL: [MaybeUninit<u32>; SPILL_WORDS] = [MaybeUninit::uninit(); SPILL_WORDS];

    pub fn run() -> ! {
        let spill = addr_of_mut!(SPILL).cast::<u32>();
        for i in 0..SPILL_WORDS {
            // SAFETY: SPILL is only used here; `i` is in bounds.
            unsafe { spill.add(i).write_volatile(SPILL_PAINT) };
        }
        let end = board::stack_end();
        info!(
            "stack overflow on purpose: recursing to {=usize} bytes below the end of the stack at {=usize:#010x}",
            OVERSHOOT,
            end
        );
        let depth = recurse(end.wrapping_sub(OVERSHOOT), 0);
        let overwritten = (0..SPILL_WORDS)
            // SAFETY: as above.
            .filter(|&i| unsafe { spill.add(i).read_volatile() } != SPILL_PAINT)
            .count()
            * 4;
        error!(
            "stack overflow did not fault: {=u32} levels deep, {=usize} bytes of static data overwritten",
            depth,
            overwritten
        );
        board::exit(exit_code::NO_FAULT)
    }

    /// Recurses until the stack pointer is below `limit`; returns the depth.
    #[inline(never)]
    fn recurse(limit: usize, depth: u32) -> u32 {
        let mut frame = [0u8; FRAME_BYTES];
        frame[0] = depth as u8;
        // The frame must really be written and live across the call below
        // (no tail call), so that each level takes its bytes of stack.
        let frame = core::hint::black_box(&mut frame);
        if (cortex_m::register::msp::read() as usize) < limit {
            return depth;
        }
        recurse(limit, depth + 1) + u32::from(frame[FRAME_BYTES - 1])
    }
}

#[cfg(not(feature = "fault-stack-overflow"))]
mod bad_access {
    use super::*;

    /// An address outside every memory and peripheral of the three boards
    /// (between their SRAM and their peripherals): a read is a bus error.
    const BAD_ADDRESS: usize = 0x3FFF_FFF0;

    pub fn run() -> ! {
        info!("bad access on purpose: reading {=usize:#010x}", BAD_ADDRESS);
        // SAFETY: none: this read is meant to fault.
        let value = unsafe { (BAD_ADDRESS as *const u32).read_volatile() };
        error!(
            "read {=u32:#010x} from {=usize:#010x} without a fault",
            value, BAD_ADDRESS
        );
        board::exit(exit_code::NO_FAULT)
    }
}
