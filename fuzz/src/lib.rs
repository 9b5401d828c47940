//! Shared pieces of the fuzz targets: a global allocator that counts
//! allocations while armed (the engine must allocate nothing beyond the
//! arena its memory plan announced), the blob → model → session → tokens
//! pipeline, and the trainer's config and tokenizer-file modules, compiled
//! from the trainer's own sources (the trainer crate itself pulls in candle,
//! which this build does not need).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use runtime::format::BLOB_CRC;
use runtime::{KvDType, Model, Sampler, SamplerConfig, Session};

#[path = "../../trainer/src/config.rs"]
#[allow(dead_code)]
pub mod trainer_config;

#[path = "../../trainer/src/bpe.rs"]
#[allow(dead_code)]
pub mod trainer_bpe;

/// Counts allocations made while [`ARMED`], and stops the process on any
/// single allocation over [`MAX_ALLOC`]: no input of a few kilobytes may
/// make a parser or the engine ask for that much (a header announcing huge
/// sizes must be refused before anything is allocated).
pub struct Counting;

pub const MAX_ALLOC: usize = 256 << 20;

fn check(layout: &Layout) {
    if layout.size() > MAX_ALLOC {
        // No formatting machinery: it may allocate.
        let msg = b"fuzz: an allocation over 256 MiB\n";
        unsafe { libc_write(msg) };
        std::process::abort();
    }
}

unsafe fn libc_write(msg: &[u8]) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(msg);
}

static ARMED: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(&layout);
        if ARMED.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(&layout);
        if ARMED.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOC {
            check(&Layout::from_size_align_unchecked(new_size, 1));
        }
        if ARMED.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

/// Runs `f` and returns the number of heap allocations it made.
pub fn allocations_in<R>(f: impl FnOnce() -> R) -> (R, usize) {
    ALLOCS.store(0, Ordering::Relaxed);
    ARMED.store(true, Ordering::Relaxed);
    let r = f();
    ARMED.store(false, Ordering::Relaxed);
    (r, ALLOCS.load(Ordering::Relaxed))
}

/// Replaces the last four bytes with the CRC of the rest, so that a mutated
/// blob passes the checksum and reaches the decoder and the validation.
pub fn fix_crc(data: &mut [u8]) {
    if data.len() >= 4 {
        let split = data.len() - 4;
        let crc = BLOB_CRC.checksum(&data[..split]);
        data[split..].copy_from_slice(&crc.to_le_bytes());
    }
}

/// The harness's own cap on the arena it is willing to give a session (the
/// plan of a valid blob can legitimately be large: a long context).
pub const ARENA_CAP: usize = 64 << 20;

/// Blob → model → memory plan → session → a few tokens, with every check the
/// engine promises: no panic (the fuzzer catches those), and no heap
/// allocation by the engine once the caller has allocated the planned arena.
pub fn run_blob(blob: &[u8], knobs: &[u8]) {
    let Ok(model) = Model::from_blob(blob) else {
        return;
    };
    let knob = |i: usize| knobs.get(i).copied().unwrap_or(0) as usize;
    let c = *model.config();
    let context = (c.max_seq_len as usize).min(8 + knob(0) % 24);
    let kv = match knob(1) % 3 {
        0 => KvDType::F32,
        1 => KvDType::F16,
        _ => KvDType::Q8,
    };
    let batch = knob(2) % 4;
    let plan = runtime::plan_batch(&c, context, kv, batch);
    if plan.total_bytes > ARENA_CAP {
        return;
    }
    let mut arena = vec![0u8; plan.total_bytes];
    let tokenizer = *model.tokenizer();
    let ((), allocs) = allocations_in(|| {
        let Ok(mut session) = Session::with_batch(&model, &mut arena, context, kv, batch) else {
            panic!("a session in the planned arena was refused");
        };
        assert_eq!(session.memory_plan(), plan, "session and plan disagree");
        let mut ids = [0u32; 8];
        let n = tokenizer
            .encode(b"What is 12 plus 3?", &mut ids)
            .unwrap_or(0);
        let mut prompt = [0u32; 9];
        prompt[0] = tokenizer.bos();
        prompt[1..=n].copy_from_slice(&ids[..n]);
        let prompt = &prompt[..(n + 1).min(context)];
        if batch > 0 && prompt.len() <= batch {
            let _ = session.forward_batch(prompt);
        } else {
            let _ = session.prefill(prompt);
        }
        let mut sampler = Sampler::new(SamplerConfig {
            temperature: if knob(3) & 1 == 0 { 0.0 } else { 0.8 },
            top_k: knob(4) as u32 % 8,
            top_p: if knob(5) & 1 == 0 { 1.0 } else { 0.9 },
            seed: knob(6) as u64,
        });
        let mut prev = None;
        for _ in 0..4 {
            if session.pos() >= context {
                break;
            }
            let id = session.sample(&mut sampler);
            tokenizer.decode(prev, id, &mut |_| {});
            prev = Some(id);
            if session.forward(id).is_err() {
                break;
            }
        }
        // Out-of-range ids are errors, never panics.
        let _ = session.forward(c.vocab_size);
        let _ = session.forward(u32::MAX);
        tokenizer.decode(None, u32::MAX, &mut |_| {});
        // A full generation through the public API when the vocab allows.
        if tokenizer.has_reasoning_tokens() {
            let mut text = [0u8; 64];
            let cfg = runtime::GenerateConfig {
                max_new_tokens: 3,
                think_budget: Some(1),
                ..Default::default()
            };
            let _ = runtime::generate(&mut session, "1+1", &cfg, &mut text, &mut |_| {});
        }
    });
    assert_eq!(
        allocs, 0,
        "the engine allocated {allocs} times beyond its arena"
    );
}
