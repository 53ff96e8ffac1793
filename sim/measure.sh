#!/usr/bin/env bash
# Measures smon-sim's own CPU and memory with the real aggregator polling every agent.
#
#   cargo build --release -p smon-sim -p smon-aggregator
#   sim/measure.sh 1000          # agents; optional: seconds to measure (default 60)
#   sim/measure.sh 10000 60
#
# Starts the simulator on 127.90.0.1.. (port 50051), writes the aggregator config, starts the
# aggregator on it (its REST API on a free loopback port), waits until every host is
# `up`, then reads both processes' CPU time (utime + stime from /proc/PID/stat) and peak and
# current RSS over the window. Needs python3 for the JSON and the free port.
set -euo pipefail

agents=${1:?usage: measure.sh AGENTS [SECONDS]}
secs=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release
work=$(mktemp -d)
trap 'kill $agg $sim 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin/smon-sim" --agents "$agents" --first-addr 127.90.0.1 --port 50051 \
  --write-config "$work/agg.json" >"$work/sim.out" 2>"$work/sim.err" &
sim=$!
for _ in $(seq 600); do grep -q '^ready' "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
grep '^ready' "$work/sim.out" || { cat "$work/sim.err"; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$work/agg.json" "$port" <<'EOF'
import json, sys
p, port = sys.argv[1], int(sys.argv[2])
c = json.load(open(p))
c["server"]["port"] = port
c["log"]["level"] = "warn"
json.dump(c, open(p, "w"))
EOF
"$bin/smon-aggregator" --no-supervise --config "$work/agg.json" >/dev/null 2>"$work/agg.err" &
agg=$!

t0=$(date +%s)
while :; do
  up=$(curl -s "http://127.0.0.1:$port/api/v1/hosts" |
    python3 -c 'import json,sys; print(sum(h["status"]=="up" for h in json.load(sys.stdin)))' 2>/dev/null || echo 0)
  [ "$up" -ge "$agents" ] && break
  [ $(( $(date +%s) - t0 )) -gt 300 ] && { echo "only $up of $agents up after 300 s"; tail "$work/agg.err"; exit 1; }
  sleep 2
done
echo "all $agents hosts up after $(( $(date +%s) - t0 )) s; settling 10 s, measuring ${secs} s"
sleep 10

tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
s0=$(cpu $sim); a0=$(cpu $agg)
sleep "$secs"
s1=$(cpu $sim); a1=$(cpu $agg)
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$sim/status")
python3 - <<EOF
tck, secs = $tck, $secs
print(f"smon-sim        agents=$agents cpu={($s1-$s0)/tck/secs*100:.1f}% of one core  rss={$(rss $sim)/1024:.0f} MiB (peak {$hwm/1024:.0f} MiB)")
print(f"smon-aggregator agents=$agents cpu={($a1-$a0)/tck/secs*100:.1f}% of one core  rss={$(rss $agg)/1024:.0f} MiB")
EOF
up=$(curl -s "http://127.0.0.1:$port/api/v1/hosts" |
  python3 -c 'import json,sys; print(sum(h["status"]=="up" for h in json.load(sys.stdin)))')
echo "hosts up at the end: $up of $agents"
