#!/usr/bin/env bash
# CPU seconds of every process of one `eventroll run` (driver, hub, recorders, workers),
# read from /proc every 0.2 s until the run exits. Extra arguments are overrides:
#   tools/cpu_per_process.sh                                   # all recorders, 9000 episodes
#   tools/cpu_per_process.sh runner.record_trajectory=false recording.stats=false
# Prints "pid:seconds" in start order (driver, hub, recorders in the order of
# recording.py, workers), then the run's steps line.
set -euo pipefail
run_dir=$(mktemp -d)/run
eventroll run runner.n_episodes="${EPISODES:-9000}" seeding.env_base_seed=1 \
    seeding.agent_base_seed=2 hydra.run.dir="$run_dir" "$@" > "$run_dir.out" 2>&1 &
driver=$!
declare -A ticks
while kill -0 "$driver" 2>/dev/null; do
    for pid in "$driver" $(pgrep -P "$driver" || true); do
        if read -r -a stat < "/proc/$pid/stat" 2>/dev/null; then
            ticks[$pid]=$(( stat[13] + stat[14] ))
        fi
    done
    sleep 0.2
done
hz=$(getconf CLK_TCK)
for pid in $(printf '%s\n' "${!ticks[@]}" | sort -n); do
    printf '%s:%ss ' "$pid" "$(echo "scale=2; ${ticks[$pid]} / $hz" | bc)"
done
echo
grep "steps  " "$run_dir.out" || tail -3 "$run_dir.out"
rm -rf "$(dirname "$run_dir")"
