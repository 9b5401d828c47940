#!/usr/bin/env bash
# Cargo runner for the firmware: runs an ELF on QEMU's mps2-an386 (Cortex-M4F)
# or mps2-an505 (Cortex-M33) and decodes its defmt log. The exit status is the
# firmware's own (semihosting exit), 124 when it hangs past
# THINKLING_QEMU_TIMEOUT seconds.
#
#   scripts/qemu-run.sh [--machine mps2-an386|mps2-an505] path/to/elf [defmt-print options...]
#   (default machine: mps2-an505 for an ELF under a thumbv8m.main target dir,
#   else mps2-an386; default defmt-print options: --log-format '{L} {s}')
#
# -icount shift=0 makes the guest retire exactly one instruction per virtual
# nanosecond, so SysTick (25 MHz) counts instructions deterministically.
set -euo pipefail
machine=
if [ "${1:-}" = --machine ]; then
  machine="${2:?--machine needs mps2-an386 or mps2-an505}"
  shift 2
fi
elf="${1:?usage: qemu-run.sh [--machine M] ELF [defmt-print options]}"
shift
if [ -z "$machine" ]; then
  case "$elf" in
    */thumbv8m.main-*/*) machine=mps2-an505 ;;
    *) machine=mps2-an386 ;;
  esac
fi
case "$machine" in
  mps2-an386) cpu=cortex-m4 ;;
  mps2-an505) cpu=cortex-m33 ;;
  *) echo "qemu-run.sh: unknown machine $machine (mps2-an386 or mps2-an505)" >&2; exit 2 ;;
esac
for tool in qemu-system-arm defmt-print; do
  command -v "$tool" >/dev/null || { echo "qemu-run.sh: $tool not found (see firmware/README.md)" >&2; exit 127; }
done
# One line per message unless the caller picks a defmt-print format.
[ $# -gt 0 ] || set -- --log-format "{L} {s}"
# </dev/null: QEMU would otherwise put the terminal in raw mode.
timeout "${THINKLING_QEMU_TIMEOUT:-300}" \
  qemu-system-arm -machine "$machine" -cpu "$cpu" -nographic -monitor none -serial none \
  -icount shift=0 -semihosting-config enable=on,target=native -kernel "$elf" </dev/null |
  defmt-print -e "$elf" "$@"
