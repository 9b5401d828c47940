//! Prints example samples of each built-in task and the distribution of their
//! lengths in pretokenizer chunks (a lower bound on BPE tokens, reached when
//! every word is one token; digits are always one token each):
//! `cargo run -p tasks --example samples [-- N]`.

use tasks::rand::SeedableRng;
use tasks::{generate, ChaCha8Rng, Split, TaskKind};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for kind in TaskKind::BUILTIN {
        for _ in 0..3 {
            let p = generate(kind, &mut rng, Split::Train);
            println!(
                "<bos>{}<think>{}</think><answer>{}</answer><eos>",
                p.problem, p.think, p.answer
            );
        }
        let mut lens: Vec<usize> = (0..n)
            .map(|_| tasks::sample_chunks(&generate(kind, &mut rng, Split::Train)))
            .collect();
        lens.sort_unstable();
        let mean = lens.iter().sum::<usize>() as f64 / n as f64;
        println!(
            "{kind}: chunks incl. 6 specials: min {} mean {mean:.1} p50 {} p95 {} max {}\n",
            lens[0],
            lens[n / 2],
            lens[n * 95 / 100],
            lens[n - 1]
        );
    }
}
