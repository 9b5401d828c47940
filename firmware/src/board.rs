//! What differs between QEMU and real boards: the defmt transport (chosen by
//! the linked crate), the cycle counter and how the program ends; plus the
//! exit codes, panic and fault handlers every board shares.

use core::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use cortex_m::peripheral::{syst::SystClkSource, DCB, DWT, SCB, SYST};
use cortex_m_rt::{exception, ExceptionFrame};

// The defmt global logger: semihosting under QEMU, RTT on real boards.
#[cfg(not(feature = "qemu"))]
use defmt_rtt as _;
#[cfg(feature = "qemu")]
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
    /// A fault build ran past the fault it provokes: the overflow or the bad
    /// access went unnoticed.
    #[cfg(any(feature = "fault-stack-overflow", feature = "fault-bad-access"))]
    pub const NO_FAULT: i32 = 7;
}

/// The RP2350's boot ROM runs a flash image only if it finds a block of
/// image metadata in its first 4 KiB: this is the minimal one of the RP2350
/// datasheet ("Minimum viable image metadata", 5.9.5.1), an IMAGE_DEF item
/// and nothing else. memory/rp2350.x puts `.start_block` right after the
/// vector table. Without it the boot ROM would ignore the image (and fall
/// back to USB boot).
#[cfg(feature = "board-rp2350")]
#[link_section = ".start_block"]
#[used]
static IMAGE_DEF: [u32; 5] = [
    // PICOBIN_BLOCK_MARKER_START
    0xffff_ded3,
    // Item IMAGE_TYPE (0x42), one word; flags 0x1021: executable, Secure,
    // Arm, RP2350.
    0x1021_0142,
    // Item LAST (0xff): the items before it are one word in all.
    0x0000_01ff,
    // Offset of the next block: 0, a loop of this block alone.
    0x0000_0000,
    // PICOBIN_BLOCK_MARKER_END
    0xab12_3579,
];

/// SysTick wraps counted by its exception: the counter is only 24 bits.
static SYSTICK_WRAPS: AtomicU32 = AtomicU32::new(0);
const SYSTICK_RELOAD: u32 = 0x00FF_FFFF;

/// QEMU's SysTick runs at 25 MHz of virtual time and `-icount shift=0`
/// retires one instruction per nanosecond: 40 instructions per tick.
#[cfg(feature = "qemu")]
const UNITS_PER_TICK: u64 = 40;
#[cfg(feature = "qemu")]
pub const COUNT_UNIT: &str = "instructions";
#[cfg(not(feature = "qemu"))]
pub const COUNT_UNIT: &str = "cycles";

/// A free-running 64-bit counter of instructions (QEMU) or core cycles (boards).
pub struct Counter {
    #[cfg(not(feature = "qemu"))]
    high: u32,
    #[cfg(not(feature = "qemu"))]
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
        #[cfg(not(feature = "qemu"))]
        {
            Self {
                high: 0,
                last: DWT::cycle_count(),
            }
        }
        #[cfg(feature = "qemu")]
        {
            Self {}
        }
    }

    /// Instructions since start (QEMU).
    #[cfg(feature = "qemu")]
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
    #[cfg(not(feature = "qemu"))]
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
    #[cfg(not(feature = "qemu"))]
    if !DCB::is_debugger_attached() {
        loop {
            cortex_m::asm::wfi();
        }
    }
    semihosting::process::exit(code)
}

/// Makes the address space below QEMU's SRAM fault, as the reserved space
/// below the real boards' RAM does. QEMU's mps2-an386 answers
/// 0x0101_0000..0x2000_0000 as an unimplemented device (reads 0, writes
/// ignored), so flip-link's stack would run off RAM without a fault; one
/// no-access MPU region over 0x1000_0000..0x2000_0000 (nothing lives there)
/// turns such an access into a MemManage fault, escalated to HardFault. The
/// rest of the map stays as it was (PRIVDEFENA).
///
/// Armv7-M only (PMSAv7: RBAR/RASR). On Armv8-M (Cortex-M33) the MPU is
/// PMSAv8 (RBAR/RLAR and MAIR), whose regions cannot deny privileged
/// access, and the core has a stack guard of its own instead: cortex-m-rt's
/// reset handler sets MSPLIM to the end of the stack (feature `set-msplim`,
/// firmware/Cargo.toml), so a push below it is a stack-overflow UsageFault
/// (STKOF, escalated to HardFault) whatever memory lies below RAM.
#[cfg(all(feature = "qemu", not(thinkling_armv8m)))]
pub fn guard_below_ram(mpu: cortex_m::peripheral::MPU) {
    const BASE: u32 = 0x1000_0000;
    // RASR: XN, AP = no access, SIZE = log2(256 MiB) - 1, ENABLE.
    const RASR: u32 = (1 << 28) | (27 << 1) | 1;
    // CTRL: PRIVDEFENA, ENABLE (HFNMIENA off: the HardFault handler runs
    // without the MPU).
    const CTRL: u32 = (1 << 2) | 1;
    // SAFETY: region 0 only adds a no-access region where no memory is; the
    // barriers make it apply before the next access.
    unsafe {
        mpu.rnr.write(0);
        mpu.rbar.write(BASE);
        mpu.rasr.write(RASR);
        mpu.ctrl.write(CTRL);
    }
    cortex_m::asm::dsb();
    cortex_m::asm::isb();
}

/// Paints the stack's free room, so that [`stack_high_water`] can tell how
/// deep the stack went.
const STACK_PAINT: u32 = 0x5A5A_5A5A;

extern "C" {
    // cortex-m-rt: the lowest address the stack may use. With flip-link it is
    // the bottom of RAM (the static data sits above the stack, so an overflow
    // runs off RAM and faults); without it, the end of the static data.
    static mut _stack_end: u32;
    // cortex-m-rt: the initial stack pointer: just below the static data with
    // flip-link, the top of RAM without it.
    static _stack_start: u32;
    // cortex-m-rt: the static data in RAM is [__sdata, __sheap) in both
    // layouts (.data, .bss, .uninit).
    static __sdata: u32;
    static __sheap: u32;
}

/// The lowest address the stack may use.
pub fn stack_end() -> usize {
    core::ptr::addr_of_mut!(_stack_end) as usize
}

fn stack_start() -> usize {
    core::ptr::addr_of!(_stack_start) as usize
}

pub fn paint_stack() {
    let bottom = core::ptr::addr_of_mut!(_stack_end);
    // Leave the live frames of this call and its caller untouched.
    let top = (cortex_m::register::msp::read() as usize).saturating_sub(256) as *mut u32;
    let mut p = bottom;
    while p < top {
        // SAFETY: [_stack_end, sp - 256) is the stack's own free room: no
        // object lives there.
        unsafe {
            p.write_volatile(STACK_PAINT);
            p = p.add(1);
        }
    }
}

/// Bytes of stack used so far (deepest point), from the paint left intact.
pub fn stack_high_water() -> usize {
    let (bottom, top) = (stack_end(), stack_start());
    let mut p = bottom;
    // SAFETY: reads of plain RAM words inside the stack's room.
    while p < top && unsafe { (p as *const u32).read_volatile() } == STACK_PAINT {
        p += 4;
    }
    top - p
}

/// Bytes of RAM the static data occupies (.data, .bss and .uninit).
pub fn static_bytes() -> usize {
    core::ptr::addr_of!(__sheap) as usize - core::ptr::addr_of!(__sdata) as usize
}

/// The exit code of the first failure being reported: a fault or panic
/// while one is reported (a fault inside a defmt frame makes the handler's
/// own log call panic, "taken reentrantly") ends the program with it at once
/// instead of recursing.
static FAILING: AtomicI32 = AtomicI32::new(0);

/// Ends the program with `code` at once if a failure is already being
/// reported, else marks this one as being reported.
fn enter_failure(code: i32) {
    if let Err(first) = FAILING.compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst) {
        exit(first)
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    enter_failure(exit_code::PANIC);
    defmt::error!("panic: {}", defmt::Display2Format(info));
    exit(exit_code::PANIC)
}

// The HardFault vector. The stack pointer may be what faulted (an overflow
// leaves it below the bottom of RAM with flip-link), and any push there
// faults again, which locks the core up. So before any Rust code runs it
// switches MSP to the top of the stack's room (the program never resumes)
// and passes the stack pointer of the fault to `hard_fault`. This replaces
// cortex-m-rt's trampoline, which would call the handler on the faulting
// stack.
core::arch::global_asm!(
    ".section .HardFault.user, \"ax\"",
    ".global HardFault",
    ".type HardFault, %function",
    ".thumb_func",
    "HardFault:",
    // EXC_RETURN bit 2: the frame is on PSP rather than MSP.
    "  tst lr, #4",
    "  ite eq",
    "  mrseq r0, MSP",
    "  mrsne r0, PSP",
    "  movw r1, :lower16:_stack_start",
    "  movt r1, :upper16:_stack_start",
    "  msr MSP, r1",
    "  b {handler}",
    ".size HardFault, . - HardFault",
    handler = sym hard_fault,
);

/// CFSR bits: BFAR / MMFAR hold the faulting data address.
const BFARVALID: u32 = 1 << 15;
const MMARVALID: u32 = 1 << 7;
/// CFSR bit of Armv8-M: a stack pointer update below MSPLIM (the stack
/// limit the reset handler sets on Cortex-M33).
const STKOF: u32 = 1 << 20;
/// Size of the basic exception frame (r0-r3, r12, lr, pc, xPSR).
const FRAME_BYTES: usize = 32;

/// Reports a HardFault (on a fresh stack, see the vector above) and exits.
/// `sp` is the stack pointer after the exception entry pushed (or tried to
/// push) its frame.
unsafe extern "C" fn hard_fault(sp: u32) -> ! {
    enter_failure(exit_code::HARD_FAULT);
    let (bottom, top) = (stack_end(), stack_start());
    let at = sp as usize;
    // SAFETY: a read of the System Control Block's fault status register.
    let stkof = cfg!(thinkling_armv8m) && unsafe { (*SCB::PTR).cfsr.read() } & STKOF != 0;
    if stkof {
        // The limit stopped the stack at its end: sp is at or above it.
        defmt::error!(
            "HardFault: stack overflow: the stack limit (MSPLIM) stopped sp {=u32:#010x} at the end of the stack {=usize:#010x} ({=usize} bytes of stack)",
            sp,
            bottom,
            top - bottom
        );
    } else if at < bottom {
        defmt::error!(
            "HardFault: stack overflow: sp {=u32:#010x} is {=usize} bytes below the end of the stack {=usize:#010x} ({=usize} bytes of stack)",
            sp,
            bottom - at,
            bottom,
            top - bottom
        );
    } else if at + FRAME_BYTES > top {
        defmt::error!(
            "HardFault with sp {=u32:#010x} outside the stack [{=usize:#010x}, {=usize:#010x})",
            sp,
            bottom,
            top
        );
    } else {
        // SAFETY: the frame lies inside the stack's room, where the
        // exception entry wrote it.
        let frame = unsafe { &*(at as *const ExceptionFrame) };
        defmt::error!(
            "HardFault at pc {=u32:#010x}, lr {=u32:#010x}",
            frame.pc(),
            frame.lr()
        );
    }
    // SAFETY: reads of the System Control Block's fault status registers.
    let scb = unsafe { &*SCB::PTR };
    let (cfsr, hfsr) = (scb.cfsr.read(), scb.hfsr.read());
    if cfsr & BFARVALID != 0 {
        defmt::error!(
            "fault status: CFSR {=u32:#010x}, HFSR {=u32:#010x}, bus fault at address {=u32:#010x}",
            cfsr,
            hfsr,
            scb.bfar.read()
        );
    } else if cfsr & MMARVALID != 0 {
        defmt::error!(
            "fault status: CFSR {=u32:#010x}, HFSR {=u32:#010x}, memory management fault at address {=u32:#010x}",
            cfsr,
            hfsr,
            scb.mmfar.read()
        );
    } else {
        defmt::error!(
            "fault status: CFSR {=u32:#010x}, HFSR {=u32:#010x}",
            cfsr,
            hfsr
        );
    }
    exit(exit_code::HARD_FAULT)
}
