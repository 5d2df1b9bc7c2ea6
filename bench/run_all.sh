#!/usr/bin/env bash
# Every benchmark, in order, into bench/work/results/ (about 50 minutes on 2 cores).
# wrk and the servers share the 2 cores, and other sessions may run tests on this
# machine: the runs are niced to -10 (root) and each wrk run first waits (up to a
# minute) for the machine to be quiet, and records the CPU share others used meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
py=bench/work/venvs/mirror/bin/python
nice=""
[ "$(id -u)" = 0 ] && nice="nice -n -10"
repeat="${REPEAT:-3}"
$nice $py bench/bench_index.py --set base --repeat "$repeat" \
    --servers nginx,pypiserver,devpi,proxpi,ceiling,mirror --quiet 0.3
$nice $py bench/bench_pip.py --runs 5
$nice $py bench/bench_sync.py --runs 3
$nice $py bench/bench_export.py
# the scale set: the mirror against nginx and the best peer of the base run (proxpi);
# pypiserver and devpi take minutes per page there and were never close
$nice $py bench/bench_index.py --set scale --repeat "$repeat" \
    --servers nginx,proxpi,mirror --quiet 0.3
$py bench/bench_index.py --compare base scale
