//! Blobs with a valid checksum whose header announces huge sizes (the
//! GGUF-reader CVE class): each is refused by `Model::from_blob` without a
//! single heap allocation, so no caller ever gets to plan or allocate for it.

use runtime::blob::{self, MAX_SEQ_LEN};
use runtime::format::{Blob, MoeConfig, TensorRecord, BLOB_CRC};
use runtime::{testing, BlobError, DType, KvDType, Model};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts the allocations of the current thread while armed (tests run in
/// parallel threads).
struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    let _ = ARMED.try_with(|a| {
        if a.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note();
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note();
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static A: Counting = Counting;

/// `Model::from_blob(bytes)`'s error, asserting it allocated nothing.
fn refused(bytes: &[u8]) -> BlobError {
    COUNT.with(|c| c.set(0));
    ARMED.with(|a| a.set(true));
    let r = Model::from_blob(bytes).map(|_| ());
    ARMED.with(|a| a.set(false));
    let n = COUNT.with(|c| c.get());
    assert_eq!(n, 0, "{n} allocations while reading a hostile blob");
    r.expect_err("a blob announcing huge sizes was accepted")
}

/// A postcard document with its CRC, as a writer would produce it.
fn seal(b: &Blob<'_>) -> Vec<u8> {
    let mut out = postcard::to_allocvec(b).unwrap();
    let crc = BLOB_CRC.checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn base() -> Vec<u8> {
    testing::random_blob(&testing::tiny_config(), DType::Q8, 32, 1).unwrap()
}

#[test]
fn the_untouched_blob_loads() {
    let bytes = base();
    Model::from_blob(&bytes).unwrap();
    // And re-sealing it gives the same bytes: the cases below differ from a
    // real blob only in what they announce.
    assert_eq!(seal(&blob::parse(&bytes).unwrap()), bytes);
}

#[test]
fn a_huge_context_is_refused_before_anything_is_planned() {
    let bytes = base();
    let mut b = blob::parse(&bytes).unwrap();
    for ctx in [MAX_SEQ_LEN + 1, 1 << 24, u32::MAX] {
        b.config.max_seq_len = ctx;
        // What a caller would have allocated for it.
        let plan = runtime::plan(&b.config, ctx as usize, KvDType::F32);
        assert!(plan.total_bytes > 80 << 20, "{plan:?}");
        let e = refused(&seal(&b));
        assert!(
            matches!(
                e,
                BlobError::Unsupported {
                    what: "max context",
                    ..
                } | BlobError::BadConfig { .. }
            ),
            "{e:?}"
        );
    }
    // The limit itself is still a valid context.
    b.config.max_seq_len = MAX_SEQ_LEN;
    Model::from_blob(&seal(&b)).unwrap();
}

/// A named change to a blob's header.
type HeaderEdit = (&'static str, fn(&mut runtime::ModelConfig));

#[test]
fn huge_dimensions_with_small_tensors_are_refused() {
    let bytes = base();
    let b = blob::parse(&bytes).unwrap();
    let cases: [HeaderEdit; 8] = [
        ("dim", |c| c.dim = 1 << 24),
        ("dim max", |c| c.dim = u32::MAX),
        ("hidden", |c| c.hidden_dim = 1 << 24),
        ("vocab", |c| c.vocab_size = 1 << 24),
        ("layers", |c| c.n_layers = u32::MAX),
        ("heads", |c| {
            c.n_heads = 1 << 20;
            c.n_kv_heads = 1 << 20;
        }),
        ("experts", |c| {
            c.moe = Some(MoeConfig {
                n_experts: u32::MAX,
                top_k: 1,
                layer_mask: 1,
            })
        }),
        ("experts in range", |c| {
            c.moe = Some(MoeConfig {
                n_experts: 64,
                top_k: 64,
                layer_mask: u64::MAX >> 59,
            })
        }),
    ];
    for (name, f) in cases {
        let mut bad = b;
        f(&mut bad.config);
        let e = refused(&seal(&bad));
        eprintln!("{name}: {e}");
    }
}

#[test]
fn huge_counts_and_lengths_are_refused() {
    let bytes = base();
    let b = blob::parse(&bytes).unwrap();
    // More tensor records announced than there are.
    let mut bad = b;
    bad.tensor_count = u32::MAX;
    refused(&seal(&bad));

    // A record announcing a huge matrix over a few bytes of data.
    let first: TensorRecord<'_> = blob::TensorRecords::new(&b).next().unwrap().unwrap();
    for (rows, cols) in [
        (u32::MAX, u32::MAX),
        (1 << 24, 1 << 24),
        (first.rows, u32::MAX),
    ] {
        let rec = TensorRecord {
            rows,
            cols,
            ..first
        };
        let mut table = postcard::to_allocvec(&rec).unwrap();
        let rest = blob::TensorRecords::new(&b);
        let mut rest = rest;
        rest.next();
        table.extend_from_slice(rest.remaining_bytes());
        let bad = Blob {
            tensors: &table,
            ..b
        };
        refused(&seal(&bad));
    }

    // Length prefixes (postcard varints) announcing up to 2^64 bytes: the
    // tensor table itself, and the merge table of the tokenizer.
    let empty = Blob {
        tensors: &[],
        tensor_count: 0,
        ..b
    };
    let mut doc = postcard::to_allocvec(&empty).unwrap();
    assert_eq!(
        doc.pop(),
        Some(0),
        "the empty table's length is the last byte"
    );
    for len in [u64::MAX, 1 << 62, 1 << 40, bytes.len() as u64] {
        let mut d = doc.clone();
        let mut v = len;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                d.push(byte);
                break;
            }
            d.push(byte | 0x80);
        }
        let crc = BLOB_CRC.checksum(&d);
        d.extend_from_slice(&crc.to_le_bytes());
        refused(&d);
    }
}

#[test]
fn truncated_and_tiny_inputs_are_refused() {
    let bytes = base();
    for n in [0, 1, 8, 12, 13, 64, bytes.len() / 2, bytes.len() - 1] {
        let mut t = bytes[..n].to_vec();
        if t.len() >= 4 {
            let s = t.len() - 4;
            let crc = BLOB_CRC.checksum(&t[..s]);
            t[s..].copy_from_slice(&crc.to_le_bytes());
        }
        refused(&t);
    }
}
