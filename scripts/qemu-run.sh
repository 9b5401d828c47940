#!/usr/bin/env bash
# Cargo runner for the firmware: runs an ELF on QEMU's mps2-an386 (Cortex-M4F)
# and decodes its defmt log. The exit status is the firmware's own (semihosting
# exit), 124 when it hangs past THINKLING_QEMU_TIMEOUT seconds.
#
#   scripts/qemu-run.sh path/to/elf [defmt-print options...]   (default: --log-format '{L} {s}')
#
# -icount shift=0 makes the guest retire exactly one instruction per virtual
# nanosecond, so SysTick (25 MHz) counts instructions deterministically.
set -euo pipefail
elf="${1:?usage: qemu-run.sh ELF [defmt-print options]}"
shift
for tool in qemu-system-arm defmt-print; do
  command -v "$tool" >/dev/null || { echo "qemu-run.sh: $tool not found (see firmware/README.md)" >&2; exit 127; }
done
# One line per message unless the caller picks a defmt-print format.
[ $# -gt 0 ] || set -- --log-format "{L} {s}"
# </dev/null: QEMU would otherwise put the terminal in raw mode.
timeout "${THINKLING_QEMU_TIMEOUT:-300}" \
  qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic -monitor none -serial none \
  -icount shift=0 -semihosting-config enable=on,target=native -kernel "$elf" </dev/null |
  defmt-print -e "$elf" "$@"
