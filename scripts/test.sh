#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, integration tests over real sockets, the real
# binaries (signals, running as `nobody`), several agent processes on 127.0.0.x, and the
# dashboard in a real browser (Debian's chromium driven by playwright-core).
# Installs what the tests need when it is missing (needs root for apt-get): chromium,
# supervisor, prometheus, victoria-metrics (remote write), python3-aiosmtpd and
# prometheus-alertmanager (notification channels), Node.js, nginx (the proxied deployment), openssl (test certificates).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/supervisord ] || missing+=(supervisor)
command -v prometheus >/dev/null || missing+=(prometheus)
command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
command -v node >/dev/null || missing+=(nodejs npm)
command -v setpriv >/dev/null || missing+=(util-linux)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v openssl >/dev/null || missing+=(openssl)
# Notification channels (smon-notify): a real SMTP server and a real Alertmanager.
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(python3-aiosmtpd)
[ -x /usr/bin/prometheus-alertmanager ] || missing+=(prometheus-alertmanager)
if ((${#missing[@]})); then
    echo "test.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The agent's optional single-host history (cargo feature `history`, off by default) is tested
# too: the agent binary the tests run is built with it.
exec cargo test --workspace --locked --features smon-agent/history "$@"
