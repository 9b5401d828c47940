#!/usr/bin/env bash
# Training throughput of `trainer bench` against eager PyTorch on the same
# model and step (forward, backward, clip, AdamW; f32; 2 threads), both
# shapes, three interleaved rounds; prints the medians and the ratio.
#
#   bench/run.sh                 # STEPS=5 ROUNDS=3 THREADS=2 by default
#   VENV=/path/to/venv bench/run.sh
#   TRAINER=/path/to/other/trainer bench/run.sh
#
# The PyTorch side lives in its own virtualenv (default bench/.venv, created
# on first use). Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-5}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
VENV=${VENV:-bench/.venv}

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    # CPU wheels when their index is reachable, else the default (larger) wheels.
    "$VENV/bin/pip" install -q torch numpy --index-url https://download.pytorch.org/whl/cpu \
        || "$VENV/bin/pip" install -q torch numpy
fi

# TRAINER=path/to/trainer compares another build (skips the build here).
if [ -z "${TRAINER:-}" ]; then
    cargo build --release -p trainer
    TRAINER=target/release/trainer
fi
export OMP_NUM_THREADS=$THREADS

declare -A RESULTS
for round in $(seq "$ROUNDS"); do
    for shape in a b c; do
        rust=$("$TRAINER" bench --shape "$shape" --steps "$STEPS" --threads "$THREADS" \
            | sed -n 's/.*: \([0-9.]*\) tokens\/s.*/\1/p')
        torch=$("$VENV/bin/python" bench/torch_step.py --shape "$shape" --steps "$STEPS" \
            --threads "$THREADS" 2>/dev/null | sed -n 's/.*: \([0-9.]*\) tokens\/s.*/\1/p')
        echo "round $round shape ${shape^^}: trainer $rust tokens/s, PyTorch $torch tokens/s"
        RESULTS[$shape.rust]+="$rust "
        RESULTS[$shape.torch]+="$torch "
    done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
echo
echo "medians of $ROUNDS rounds, $STEPS timed steps each, $THREADS threads:"
for shape in a b c; do
    r=$(echo "${RESULTS[$shape.rust]}" | median)
    t=$(echo "${RESULTS[$shape.torch]}" | median)
    awk -v s="${shape^^}" -v r="$r" -v t="$t" \
        'BEGIN {printf "shape %s: trainer %.0f tokens/s, PyTorch %.0f tokens/s, ratio %.2f\n", s, r, t, r / t}'
done
