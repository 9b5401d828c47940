//! What differs between QEMU and real boards: the defmt transport (chosen by
//! the linked crate), the cycle counter and how the program ends; plus the
//! exit codes, panic and fault handlers every board shares.

use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::{syst::SystClkSource, DCB, DWT, SYST};
use cortex_m_rt::{exception, ExceptionFrame};

// The defmt global logger: semihosting under QEMU, RTT on real boards.
#[cfg(not(feature = "board-qemu"))]
use defmt_rtt as _;
#[cfg(feature = "board-qemu")]
use defmt_semihosting as _;

/// Exit codes (avoiding cargo's own 101 and timeout's 124).
pub mod exit_code {
    pub const OK: i32 = 0;
    /// The embedded blob does not load (corrupt, wrong version, bad shapes...).
    pub const BLOB: i32 = 3;
    /// The session or generation failed (arena, context).
    pub const ENGINE: i32 = 4;
    pub const PANIC: i32 = 5;
    pub const HARD_FAULT: i32 = 6;
}

/// SysTick wraps counted by its exception: the counter is only 24 bits.
static SYSTICK_WRAPS: AtomicU32 = AtomicU32::new(0);
const SYSTICK_RELOAD: u32 = 0x00FF_FFFF;

/// QEMU's SysTick runs at 25 MHz of virtual time and `-icount shift=0`
/// retires one instruction per nanosecond: 40 instructions per tick.
#[cfg(feature = "board-qemu")]
const UNITS_PER_TICK: u64 = 40;
#[cfg(feature = "board-qemu")]
pub const COUNT_UNIT: &str = "instructions";
#[cfg(not(feature = "board-qemu"))]
pub const COUNT_UNIT: &str = "cycles";

/// A free-running 64-bit counter of instructions (QEMU) or core cycles (boards).
pub struct Counter {
    #[cfg(not(feature = "board-qemu"))]
    high: u32,
    #[cfg(not(feature = "board-qemu"))]
    last: u32,
}

impl Counter {
    /// Starts the counter. QEMU's DWT cycle counter always reads 0, so QEMU
    /// uses SysTick; real boards use DWT CYCCNT (exact core cycles).
    pub fn start(mut syst: SYST, mut dcb: DCB, mut dwt: DWT) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(SYSTICK_RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        dcb.enable_trace();
        DWT::unlock();
        dwt.enable_cycle_counter();
        // The peripheral handles drop here; the hardware keeps counting.
        #[cfg(not(feature = "board-qemu"))]
        {
            Self {
                high: 0,
                last: DWT::cycle_count(),
            }
        }
        #[cfg(feature = "board-qemu")]
        {
            Self {}
        }
    }

    /// Instructions since start (QEMU).
    #[cfg(feature = "board-qemu")]
    pub fn now(&mut self) -> u64 {
        loop {
            let wraps = SYSTICK_WRAPS.load(Ordering::SeqCst);
            let current = SYST::get_current();
            // A wrap whose exception is still pending is not in `wraps` yet;
            // a counter read near the reload value happened after that wrap.
            let pending = cortex_m::peripheral::SCB::is_pendst_pending();
            if SYSTICK_WRAPS.load(Ordering::SeqCst) != wraps {
                continue;
            }
            let wraps = u64::from(wraps) + u64::from(pending && current > SYSTICK_RELOAD / 2);
            let ticks =
                wraps * (u64::from(SYSTICK_RELOAD) + 1) + u64::from(SYSTICK_RELOAD - current);
            return ticks * UNITS_PER_TICK;
        }
    }

    /// Core cycles since start (real boards). CYCCNT is 32 bits (9 s at
    /// 480 MHz): it is extended on every read, and it is read at least once
    /// per token, far more often than it wraps.
    #[cfg(not(feature = "board-qemu"))]
    pub fn now(&mut self) -> u64 {
        let c = DWT::cycle_count();
        if c < self.last {
            self.high += 1;
        }
        self.last = c;
        (u64::from(self.high) << 32) | u64::from(c)
    }
}

#[exception]
fn SysTick() {
    SYSTICK_WRAPS.fetch_add(1, Ordering::SeqCst);
}

/// Ends the program with `code`. Under QEMU (and under a debugger such as
/// probe-rs) this is a semihosting exit that becomes the host's exit status;
/// a board running on its own without a debugger would fault on the
/// semihosting trap, so it parks instead.
pub fn exit(code: i32) -> ! {
    #[cfg(not(feature = "board-qemu"))]
    if !DCB::is_debugger_attached() {
        loop {
            cortex_m::asm::wfi();
        }
    }
    semihosting::process::exit(code)
}

/// Paints the free RAM between the static data and the stack pointer, so that
/// [`stack_high_water`] can tell how deep the stack went.
const STACK_PAINT: u32 = 0x5A5A_5A5A;

extern "C" {
    // cortex-m-rt: end of the static data (start of the free RAM).
    static mut __sheap: u32;
    // cortex-m-rt: initial stack pointer (top of RAM).
    static _stack_start: u32;
}

pub fn paint_stack() {
    let bottom = core::ptr::addr_of_mut!(__sheap);
    // Leave the live frames of this call and its caller untouched.
    let top = (cortex_m::register::msp::read() as usize).saturating_sub(256) as *mut u32;
    let mut p = bottom;
    while p < top {
        // SAFETY: [__sheap, sp - 256) is RAM no object lives in: above all
        // statics and below the stack in use.
        unsafe {
            p.write_volatile(STACK_PAINT);
            p = p.add(1);
        }
    }
}

/// Bytes of stack used so far (deepest point), from the paint left intact.
pub fn stack_high_water() -> usize {
    let bottom = core::ptr::addr_of_mut!(__sheap) as usize;
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let mut p = bottom;
    // SAFETY: reads of plain RAM words between the statics and the stack top.
    while p < top && unsafe { (p as *const u32).read_volatile() } == STACK_PAINT {
        p += 4;
    }
    top - p
}

/// Bytes between the end of the static data and the top of RAM (the stack's room).
pub fn stack_room() -> usize {
    core::ptr::addr_of!(_stack_start) as usize - core::ptr::addr_of_mut!(__sheap) as usize
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::error!("panic: {}", defmt::Display2Format(info));
    exit(exit_code::PANIC)
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    defmt::error!(
        "HardFault at pc {=u32:#010x}, lr {=u32:#010x}",
        frame.pc(),
        frame.lr()
    );
    exit(exit_code::HARD_FAULT)
}
