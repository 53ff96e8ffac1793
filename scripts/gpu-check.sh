#!/usr/bin/env bash
# Compares what smon-agent reports about NVIDIA GPUs with nvidia-smi, on a real GPU host, and
# prints a verdict per line (ok / FAIL / skip) and an overall one. It runs the agent the way
# the systemd unit does: deploy/systemd/smon-agent.service with the drop-in
# deploy/systemd/gpu.conf, as the user smon (a transient copy of the unit under /run, started
# as a oneshot that prints one sample with --once --json). Where systemd is not PID 1 (a
# container) it falls back to setpriv as smon, and says that the sandbox was not applied.
#
# Usage (as root, from the repository root):
#   scripts/gpu-check.sh [path/to/smon-agent]    (default: target/release/smon-agent)
# Load for the utilisation and process checks: python3 with torch (CUDA), or gpu-burn in PATH;
# without either, those lines are skipped, not passed.
# Exit status: 0 all checked lines ok, 1 a line failed, 2 the check could not run.
set -euo pipefail

die() {
    echo "gpu-check: $*" >&2
    exit 2
}

cd "$(dirname "$0")/.."
command -v nvidia-smi >/dev/null 2>&1 \
    || die "nvidia-smi not found: this check needs a host with an NVIDIA GPU and its driver"
nvidia-smi -L >/dev/null 2>&1 \
    || die "nvidia-smi finds no GPU: $(nvidia-smi -L 2>&1 | head -n 1)"
[ "$(id -u)" = 0 ] || die "run as root: it installs a transient unit and runs the agent as smon"
command -v python3 >/dev/null 2>&1 || die "python3 is needed to compare the readings"

agent_src=${1:-target/release/smon-agent}
[ -x "$agent_src" ] || die "$agent_src is not an executable (cargo build --release -p smon-agent)"
getent passwd smon >/dev/null \
    || adduser --system --group --no-create-home --home /var/lib/smon smon >/dev/null 2>&1 \
    || useradd --system --user-group --no-create-home --home-dir /var/lib/smon \
        --shell /usr/sbin/nologin smon \
    || die "cannot create the user smon"

work=$(mktemp -d /run/smon-gpu-check.XXXXXX)
unit=smon-gpu-check
loads=()
cleanup() {
    for p in "${loads[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "/run/systemd/system/$unit.service" "/run/systemd/system/$unit.service.d"
    if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
chmod 0755 "$work"
install -m 0755 "$agent_src" "$work/smon-agent"

for mode in auto off; do
    cat >"$work/config-$mode.json" <<EOF
{ "monitor": { "mode": "node", "interval_ms": 1000, "grpc_listen": "127.0.0.1:50051",
  "auth": "none", "gpu": "$mode" } }
EOF
done
chmod 0644 "$work"/config-*.json

# run_agent MODE OUT: one sample as JSON in OUT; the agent's CPU time (ns) on stdout.
run_agent() {
    local mode=$1 out=$2
    if [ -d /run/systemd/system ]; then
        sed -e "s#^ExecStart=.*#ExecStart=$work/smon-agent --config $work/config-$mode.json --once --json#" \
            -e 's/^Type=notify/Type=oneshot/' \
            -e '/^WatchdogSec=/d' -e '/^NotifyAccess=/d' -e '/^Restart/d' \
            deploy/systemd/smon-agent.service >"/run/systemd/system/$unit.service"
        mkdir -p "/run/systemd/system/$unit.service.d"
        cp deploy/systemd/gpu.conf "/run/systemd/system/$unit.service.d/gpu.conf"
        printf '[Service]\nStandardOutput=truncate:%s\n' "$out" \
            >"/run/systemd/system/$unit.service.d/check.conf"
        systemctl daemon-reload
        if ! systemctl start "$unit.service"; then
            journalctl -u "$unit.service" -n 30 --no-pager >&2 || true
            die "the agent failed under the unit (gpu=$mode); its journal is above"
        fi
        systemctl show -p CPUUsageNSec --value "$unit.service"
    else
        echo "note: systemd is not PID 1: agent run with setpriv as smon, WITHOUT the unit's sandbox or gpu.conf" >&2
        local t0 t1
        t0=$(date +%s%N)
        setpriv --reuid=smon --regid=smon --init-groups \
            "$work/smon-agent" --config "$work/config-$mode.json" --once --json >"$out"
        t1=$(date +%s%N)
        echo "wall:$((t1 - t0))"
    fi
}

# Load generators (GPU 0 only): each prints nothing and runs until killed.
start_load() {
    local seconds=$1 mem_mib=$2
    if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        CUDA_VISIBLE_DEVICES=0 python3 - "$seconds" "$mem_mib" <<'EOF' &
import sys, time, torch
end = time.time() + float(sys.argv[1])
keep = torch.empty(int(sys.argv[2]) * 1024 * 1024, dtype=torch.uint8, device="cuda")
a = torch.randn(4096, 4096, device="cuda")
while time.time() < end:
    a = a @ a
    a = a / a.norm()
    torch.cuda.synchronize()
EOF
        loads+=("$!")
    elif command -v gpu-burn >/dev/null 2>&1; then
        CUDA_VISIBLE_DEVICES=0 gpu-burn "$seconds" >/dev/null 2>&1 &
        loads+=("$!")
    else
        return 1
    fi
}

echo "== driver and GPUs"
nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n 1 | sed 's/^/driver: /'
nvidia-smi --query-gpu=index,uuid,name,pci.bus_id,persistence_mode,mig.mode.current,driver_version \
    --format=csv,noheader >"$work/ident.csv"
nvidia-smi --query-gpu=index,memory.total,memory.reserved,memory.used,memory.free \
    --format=csv,noheader,nounits >"$work/mem.csv"
nvidia-smi --query-gpu=index,power.draw,enforced.power.limit,temperature.gpu,pstate,fan.speed \
    --format=csv,noheader,nounits >"$work/power.csv"
nvidia-smi --query-gpu=index,clocks.sm,temperature.memory,ecc.errors.corrected.volatile.total,ecc.errors.uncorrected.volatile.total \
    --format=csv,noheader,nounits >"$work/health.csv"
cpu_off=$(run_agent off "$work/off.json")
cpu_idle=$(run_agent auto "$work/idle.json")

# HostInfo (driver and CUDA versions, the GPU list) through the agent's single-host web view:
# the agent runs for a few seconds, public read-only on loopback, and its REST API is read.
nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -n 1 >"$work/cuda.txt"
cat >"$work/config-web.json" <<EOF
{ "monitor": { "mode": "node", "interval_ms": 500, "grpc_listen": "127.0.0.1:50052",
  "auth": "none", "gpu": "auto" },
  "server": { "web": true, "host": "127.0.0.1", "port": 18081, "auth": { "public_read_only": true } } }
EOF
chmod 0644 "$work/config-web.json"
setpriv --reuid=smon --regid=smon --init-groups \
    "$work/smon-agent" --no-supervise --config "$work/config-web.json" >/dev/null 2>"$work/web.log" &
web_pid=$!
loads+=("$web_pid")
python3 - "$work" <<'EOF' || echo "note: the web view did not answer: $(tail -n 5 "$work/web.log")" >&2
import json, sys, time, urllib.request
work = sys.argv[1]
base = "http://127.0.0.1:18081"
hosts = []
for _ in range(100):
    try:
        hosts = json.load(urllib.request.urlopen(base + "/api/v1/hosts", timeout=2))
        if hosts and hosts[0].get("status") == "up":
            break
    except Exception:
        pass
    time.sleep(0.2)
h = json.load(urllib.request.urlopen(base + "/api/v1/hosts/" + hosts[0]["id"], timeout=5))
with open(f"{work}/info.json", "w") as f:
    json.dump(h.get("info") or {}, f)
with open(f"{work}/metrics.txt", "w") as f:
    f.write(urllib.request.urlopen(base + "/metrics", timeout=5).read().decode())
EOF
kill "$web_pid" 2>/dev/null || true

loaded=no
if start_load 40 1024 && start_load 40 512 && start_load 40 256; then
    loaded=yes
    sleep 15
    nvidia-smi --query-gpu=index,utilization.gpu --format=csv,noheader,nounits >"$work/util-smi.csv"
    run_agent auto "$work/load.json" >/dev/null
    nvidia-smi --query-gpu=index,utilization.gpu --format=csv,noheader,nounits >"$work/util-smi2.csv"
    nvidia-smi --query-compute-apps=gpu_uuid,pid,process_name,used_memory \
        --format=csv,noheader,nounits >"$work/apps.csv"
    run_agent auto "$work/load2.json" >/dev/null
    nvidia-smi --query-compute-apps=gpu_uuid,pid,process_name,used_memory \
        --format=csv,noheader,nounits >"$work/apps2.csv"
fi

python3 - "$work" "$loaded" "$cpu_off" "$cpu_idle" <<'EOF'
import json, subprocess, sys
work, loaded, cpu_off, cpu_idle = sys.argv[1:5]
failed = 0

def line(ok, what):
    global failed
    if ok is None:
        print(f"skip  {what}")
        return
    print(f"{'ok  ' if ok else 'FAIL'}  {what}")
    failed += 0 if ok else 1

def rows(name):
    with open(f"{work}/{name}") as f:
        return [[c.strip() for c in l.split(",")] for l in f if l.strip()]

def snap(name):
    with open(f"{work}/{name}") as f:
        return json.load(f)

def num(s):
    try:
        return float(s)
    except ValueError:
        return None

idle = snap("idle.json")
gpus = {g["index"]: g for g in idle.get("gpus", [])}
line(not [e for e in idle.get("errors", []) if e.startswith("gpus:")],
     f"no GPU errors in the sample: {[e for e in idle.get('errors', []) if e.startswith('gpus:')]}")
for i, uuid, name, bus, pm, mig, drv in rows("ident.csv"):
    g = gpus.get(int(i))
    if g is None:
        line(False, f"GPU {i}: reported by nvidia-smi, missing from the agent")
        continue
    line(g["uuid"] == uuid, f"GPU {i}: uuid {g['uuid']} vs {uuid}")
    line(g["name"] == name, f"GPU {i}: name {g['name']!r} vs {name!r}")
    line(g.get("pci_bus_id", "").upper() == bus.upper(), f"GPU {i}: pci bus id {g.get('pci_bus_id')} vs {bus}")
    want_pm = {"Enabled": True, "Disabled": False}.get(pm)
    line(g.get("persistence_mode") == want_pm, f"GPU {i}: persistence mode {g.get('persistence_mode')} vs {pm}")
    want_mig = {"Enabled": True, "Disabled": False}.get(mig)
    line(g.get("mig_mode") == want_mig, f"GPU {i}: MIG mode {g.get('mig_mode')} vs {mig}")
    line(not g.get("error"), f"GPU {i}: no error ({g.get('error')!r}); driver {drv}")

MIB = 1024 * 1024
for i, total, reserved, used, free in rows("mem.csv"):
    g = gpus.get(int(i), {})
    t, u = g.get("memory_total_bytes"), g.get("memory_used_bytes")
    line(t is not None and abs(t / MIB - float(total)) <= 1, f"GPU {i}: memory total {t and t // MIB} MiB vs {total}")
    # nvidia-smi's used leaves out the reserved memory; NVML's v1 memory info counts it in.
    ok = u is not None and (abs(u / MIB - float(used)) <= 1 or abs(u / MIB - float(used) - float(reserved or 0)) <= 1)
    line(ok, f"GPU {i}: memory used {u and u // MIB} MiB vs {used} (+{reserved} reserved)")

for i, draw, limit, temp, pstate, fan in rows("power.csv"):
    g = gpus.get(int(i), {})
    p, l = g.get("power_mw"), g.get("power_limit_mw")
    d = num(draw)
    line(None if d is None else (p is not None and abs(p / 1000 - d) <= max(0.05 * d, 1)),
         f"GPU {i}: power {p and p / 1000:.1f} W vs {draw} (±5 %)" if p else f"GPU {i}: power absent vs {draw}")
    line(l is not None and num(limit) is not None and abs(l / 1000 - float(limit)) <= 1, f"GPU {i}: power limit {l} mW vs {limit} W")
    line(g.get("temperature_celsius") is not None and abs(g["temperature_celsius"] - float(temp)) <= 2,
         f"GPU {i}: temperature {g.get('temperature_celsius')} vs {temp}")
    line(pstate == f"P{g.get('performance_state')}", f"GPU {i}: P-state P{g.get('performance_state')} vs {pstate}")
    f = g.get("fan_percent")
    if num(fan) is None:
        line(f is None, f"GPU {i}: fan {fan} must be absent (agent: {f})")
    else:
        line(f is not None and abs(f - float(fan)) <= 5, f"GPU {i}: fan {f} % vs {fan}")

# Health signals (an [N/A] of nvidia-smi must be absent in the agent's sample).
def same_or_absent(i, what, mine, theirs, tol):
    t = num(theirs)
    if t is None:
        line(mine is None, f"GPU {i}: {what} {theirs} must be absent (agent: {mine})")
    else:
        line(mine is not None and abs(mine - t) <= tol(t), f"GPU {i}: {what} {mine} vs {theirs}")

for i, sm, memtemp, ecc_c, ecc_u in rows("health.csv"):
    g = gpus.get(int(i), {})
    same_or_absent(i, "SM clock (MHz, ±15 %)", g.get("sm_clock_mhz"), sm, lambda t: max(0.15 * t, 50))
    same_or_absent(i, "memory temperature", g.get("memory_temperature_celsius"), memtemp, lambda t: 3)
    same_or_absent(i, "ECC corrected (volatile)", g.get("ecc_corrected_errors"), ecc_c, lambda t: 0)
    same_or_absent(i, "ECC uncorrected (volatile)", g.get("ecc_uncorrected_errors"), ecc_u, lambda t: 0)
    # The Xid watch comes up on its own thread, perhaps after a --once run's only reading.
    x = g.get("xid_errors")
    line(None if x is None else True,
         f"GPU {i}: Xid events watched ({x} since the agent started; last {g.get('last_xid')})"
         if x is not None else f"GPU {i}: Xid watch not up in a one-shot run (xid_errors absent)")

if loaded == "yes":
    load = snap("load.json")
    lg = {g["index"]: g for g in load.get("gpus", [])}
    before = {int(r[0]): num(r[1]) for r in rows("util-smi.csv")}
    after = {int(r[0]): num(r[1]) for r in rows("util-smi2.csv")}
    for i, g in lg.items():
        u = g.get("utilization_percent")
        if g.get("mig_mode"):
            line(u is None, f"GPU {i}: MIG: utilisation absent ({u})")
            continue
        lo = min(before.get(i) or 0, after.get(i) or 0) - 10
        hi = max(before.get(i) or 0, after.get(i) or 0) + 10
        line(u is not None and lo <= u <= hi, f"GPU {i}: utilisation {u} within [{lo}, {hi}] (nvidia-smi before/after)")
        if i != 0:
            line(u is not None, f"GPU {i}: idle utilisation reported as a number ({u}), not absent")
    load2 = snap("load2.json")
    agent = {(g["uuid"], p["pid"]): p for g in load2.get("gpus", []) for p in g.get("processes", [])}
    smi = {(r[0], int(r[1])): r for r in rows("apps2.csv")}
    line(set(agent) == set(smi), f"compute processes: agent {sorted(agent)} vs nvidia-smi {sorted(smi)}")
    for key, p in agent.items():
        user = subprocess.run(["ps", "-o", "user=", "-p", str(key[1])], capture_output=True, text=True).stdout.strip()
        line(p.get("user") == user, f"pid {key[1]}: user {p.get('user')!r} vs ps {user!r}")
        r = smi.get(key)
        if r and num(r[3]) is not None and p.get("memory_used_bytes") is not None:
            line(abs(p["memory_used_bytes"] / MIB - float(r[3])) <= 1, f"pid {key[1]}: GPU memory {p['memory_used_bytes'] // MIB} vs {r[3]} MiB")
    line(len(agent) >= 3, f"several processes on GPU 0 ({len(agent)})")
else:
    line(None, "utilisation under load and process lists: no load generator (python3 with torch, or gpu-burn)")

import os
if os.path.exists(f"{work}/info.json"):
    info = snap("info.json")
    drv = rows("ident.csv")[0][6]
    line(info.get("gpu_driver_version") == drv, f"HostInfo: GPU driver {info.get('gpu_driver_version')!r} vs {drv!r}")
    with open(f"{work}/cuda.txt") as f:
        cuda = f.read().strip()
    line(None if not cuda else info.get("cuda_driver_version") == cuda,
         f"HostInfo: CUDA driver version {info.get('cuda_driver_version')!r} vs nvidia-smi's {cuda!r}")
    line(bool(info.get("gpu_names")), f"HostInfo: GPUs listed ({info.get('gpu_names')})")
    with open(f"{work}/metrics.txt") as f:
        metrics = f.read()
    line(f'gpu_driver="{drv}"' in metrics, "/metrics: smon_host_info carries gpu_driver")
else:
    line(False, "HostInfo: the agent's web view did not answer (see the note above)")

off = snap("off.json")
print(f"cost: collect_us gpu=off {off['collect_us']}, gpu=auto {idle['collect_us']} (GPUs are read on their own thread, not in collect_us)")
print(f"cost: agent CPU for one --once run: gpu=off {cpu_off}, gpu=auto {cpu_idle} (ns, systemd CPUUsageNSec; 'wall:' = wall time without systemd)")
print(f"verdict: {'PASS' if failed == 0 else f'FAIL ({failed} lines)'}")
sys.exit(1 if failed else 0)
EOF
