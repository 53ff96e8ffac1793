#!/bin/bash
# Agent CPU at 1 Hz with N docker-shaped cgroups (each with a sleeping process) vs none.
# usage: scripts/bench-containers.sh AGENT_BIN N SECONDS [nocg]   (as root; v1 or v2 cgroups)
# (BENCHMARKS.md, "Containers"; nocg: the N processes without cgroups, the control case)
set -u
AGENT=$1; N=$2; SECS=${3:-60}
W=$(mktemp -d)
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then HIER=(/sys/fs/cgroup); else
  HIER=(); for c in cpuacct memory pids blkio; do [ -d /sys/fs/cgroup/$c ] && HIER+=(/sys/fs/cgroup/$c); done; fi
PIDS=(); DIRS=()
for i in $(seq 1 $N); do
  id=$(printf 'be%062x' $i)
  sleep 3600 & p=$!; PIDS+=($p)
  [ "${4:-}" = nocg ] || for h in "${HIER[@]}"; do mkdir -p $h/docker/$id; echo $p > $h/docker/$id/cgroup.procs; DIRS+=($h/docker/$id); done
done
GP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
echo 'smon-bench-token-0123456789abcdef' > $W/token; chmod 600 $W/token
cat > $W/config_node.json <<J
{"server":{"web":false},
 "monitor":{"mode":"node","interval_ms":1000,"grpc_listen":"127.0.0.1:$GP","token_file":"token","gpu":"off",
  "containers":{"enabled":true}},"log":{"level":"warn"}}
J
$AGENT -c $W/config_node.json --no-supervise & A=$!
sleep 3
# One client watching the summary at 1 Hz, as the aggregator does.
$AGENT query --addr 127.0.0.1:$GP --token-file $W/token --watch --json > /dev/null 2>&1 & Q=$!
sleep 5  # warm-up
t0=$(awk '{print $14+$15}' /proc/$A/stat); s0=$(date +%s.%N)
sleep $SECS
t1=$(awk '{print $14+$15}' /proc/$A/stat); s1=$(date +%s.%N)
HZ=$(getconf CLK_TCK)
python3 -c "print('containers=$N agent_cpu_percent_of_one_core=%.3f over %.0f s' % (($t1-$t0)/$HZ*100/($s1-$s0), $s1-$s0))"
$AGENT query --addr 127.0.0.1:$GP --token-file $W/token --json 2>/dev/null | python3 -c 'import json,sys; s=json.load(sys.stdin); print("listed count:", s.get("containers",{}).get("count"), "collect_us:", s.get("collect_us"))'
kill $Q $A; wait $A 2>/dev/null
kill ${PIDS[@]} 2>/dev/null; wait 2>/dev/null
for d in "${DIRS[@]}"; do rmdir $d 2>/dev/null || (sleep 0.1; rmdir $d); done
for h in "${HIER[@]}"; do rmdir $h/docker 2>/dev/null; done
rm -rf $W
