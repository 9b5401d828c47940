#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer (libfuzzer-sys) on the stable
# toolchain: rustc's SanitizerCoverage pass gives libFuzzer its coverage
# (no nightly, no sanitizer runtime). Builds fuzz/, writes the seed corpora
# (real blobs of every weight type, MoE, llama2.c imports, tokenizer tables,
# JSONL, TOML), then runs each target.
#
#   scripts/fuzz.sh                       # every target for 30 s (the test suite's short run)
#   scripts/fuzz.sh --time 600 blob       # one target for 10 minutes
#   scripts/fuzz.sh --runs 10000000 blob  # one target for 10 million executions
#   scripts/fuzz.sh --runs 10000000 --time 3600 blob   # whichever comes first
#
# A crash, a panic, a hang over 1 s, RSS over 2 GiB or a single allocation
# over 256 MiB fails the run; libFuzzer writes the input to
# fuzz/artifacts/TARGET/ (replay: fuzz/target/<host>/release/TARGET FILE).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

TARGETS=(blob tokenizer tokenizer_json jsonl toml_config llama2c)
limit=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) limit+=(-max_total_time="$2"); shift 2 ;;
    --runs) limit+=(-runs="$2"); shift 2 ;;
    --) shift; break ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] && TARGETS=("$@")
[ ${#limit[@]} -gt 0 ] || limit=(-max_total_time=30)

# The seed writer, built without instrumentation (it has no libFuzzer main).
export CARGO_TARGET_DIR="$PWD/target"
cargo build --release --locked -q --bin seeds
rm -rf gen && target/release/seeds gen

# Coverage for libFuzzer from rustc's own LLVM pass; overflow checks and
# debug assertions on (profile.release of fuzz/Cargo.toml); `cfg(fuzzing)`.
# An explicit --target keeps these flags off build scripts and proc macros.
host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing"
cargo build --release --locked -q --target "$host" $(printf -- '--bin %s ' "${TARGETS[@]}")
bin="target/$host/release"

status=0
passed=0
failed=0
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t" "seeds/$t" "gen/$t"
  echo "== fuzz $t ${limit[*]}"
  log="artifacts/$t/last-run.log"
  if "$bin/$t" "corpus/$t" "seeds/$t" "gen/$t" \
      "${limit[@]}" -timeout=1 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1; then
    grep -E "^Done [0-9]+ runs" "$log" | head -1
    passed=$((passed + 1))
  else
    status=1
    failed=$((failed + 1))
    tail -40 "$log"
    echo "fuzz $t FAILED: input in fuzz/artifacts/$t/"
  fi
done
echo "fuzz: $passed passed, $failed failed"
exit $status
