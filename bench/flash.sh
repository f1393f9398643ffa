#!/bin/sh
# Raw flash throughput in a VM on nandsim: package mtd's Writer (read-back
# on and off) and UBI volume updates, against mtd-utils' flash_erase +
# nandwrite and ubiupdatevol run in the same VM on the same image. Prints
# a table of MB/s (docs/BENCHMARKS.md, "Raw flash"); the whole test log
# goes to $LOG (default: a temporary file).
#
#   bench/flash.sh [MiB [rounds]]     default: 32 MiB, 3 rounds
#
# With LIFEBOAT_BENCH_ICOUNT=1 the guest's clock counts instructions
# (QEMU -icount), which makes the numbers independent of the host's load.
#
# Needs qemu-system-x86 and mtd-utils; fetches the pinned kernel once.
set -eu
cd "$(dirname "$0")/.."
LOG="${LOG:-$(mktemp)}"
LIFEBOAT_BENCH=1 LIFEBOAT_BENCH_MB="${1:-32}" LIFEBOAT_BENCH_ROUNDS="${2:-3}" \
	go test -run '^TestVMFlashBench$' -count=1 -timeout 45m -v ./handlers/ubi/ >"$LOG" 2>&1 || {
	tail -40 "$LOG"
	exit 1
}
grep -E '^ +(\||[0-9]+ MiB image on nandsim)' "$LOG" | sed 's/^ *//'
echo "log: $LOG"
