#!/usr/bin/env bash
# CPU seconds of every process of one `eventroll run` (driver, hub, recorders, workers),
# read from /proc every 0.2 s until the run exits. Extra arguments are overrides:
#   tools/cpu_per_process.sh                                   # all recorders, 9000 episodes
#   tools/cpu_per_process.sh runner.record_trajectory=false recording.stats=false
#   SUBSCRIBERS=10 NICE=19 tools/cpu_per_process.sh runner=parallel
# Prints "name:seconds" for every process in start order (the names eventroll gives
# its processes: driver, er-compose, hub, recorders, workers), then the run's steps line.
# With SUBSCRIBERS=N, N live subscribers (eventroll.subscribe, numpy values not decoded)
# attach as soon as the run's bus.json appears, at niceness NICE (default 0), in this
# shell's session, like the run (Linux's autogroups share the CPU between sessions
# whatever their niceness); their CPU seconds while the run lives follow on a line of
# their own, and the run's wall time from its start to its exit.
set -euo pipefail
run_dir=$(mktemp -d)/run
started=$(date +%s.%N)
eventroll run runner.n_episodes="${EPISODES:-9000}" seeding.env_base_seed=1 \
    seeding.agent_base_seed=2 hydra.run.dir="$run_dir" "$@" > "$run_dir.out" 2>&1 &
driver=$!
subscribers=()
if [ "${SUBSCRIBERS:-0}" -gt 0 ]; then
    for _ in $(seq 100); do [ -f "$run_dir/bus.json" ] && break; sleep 0.05; done
    for _ in $(seq "$SUBSCRIBERS"); do
        nice -n "${NICE:-0}" python -c 'import sys
from eventroll.live import subscribe
sum(1 for _ in subscribe(sys.argv[1], arrays=False))' "$run_dir" &
        subscribers+=($!)
    done
fi
declare -A ticks names
while kill -0 "$driver" 2>/dev/null; do
    for pid in "$driver" $(pgrep -P "$driver" || true) "${subscribers[@]}"; do
        if read -r -a stat < "/proc/$pid/stat" 2>/dev/null; then
            ticks[$pid]=$(( stat[13] + stat[14] ))
            names[$pid]=$(tr -d '\n' < "/proc/$pid/comm" 2>/dev/null || echo "?")
        fi
    done
    sleep 0.2
done
ended=$(date +%s.%N)
hz=$(getconf CLK_TCK)
seconds() { echo "scale=2; ${ticks[$1]:-0} / $hz" | bc; }
for pid in $(printf '%s\n' "${!ticks[@]}" | sort -n); do
    [[ " ${subscribers[*]} " == *" $pid "* ]] || printf '%s:%ss ' "${names[$pid]}" "$(seconds "$pid")"
done
echo
if [ ${#subscribers[@]} -gt 0 ]; then
    printf 'subscribers (nice %s), CPU s while the run lived: ' "${NICE:-0}"
    for pid in "${subscribers[@]}"; do printf '%s ' "$(seconds "$pid")"; done
    echo
    wait "${subscribers[@]}"
fi
echo "run wall time: $(echo "$ended - $started" | bc) s"
grep "steps  " "$run_dir.out" || tail -3 "$run_dir.out"
rm -rf "$(dirname "$run_dir")"
