#!/usr/bin/env bash
# Makes a private CA and certificates for TLS between smon-aggregator and smon-agent (and for
# the dashboard's own HTTPS, if wanted), with openssl.
#
#   deploy/tls/make-certs.sh [-d DIR] [-n CA_NAME] ca
#   deploy/tls/make-certs.sh [-d DIR] agent NAME [SAN ...]      # server cert for an agent
#   deploy/tls/make-certs.sh [-d DIR] client NAME               # client cert (the aggregator)
#   deploy/tls/make-certs.sh [-d DIR] server NAME [SAN ...]     # HTTPS cert for the dashboard
#
# SANs are DNS names or IP addresses (default: NAME). Files land in DIR (default ./smon-tls):
# ca.pem/ca.key, NAME.pem/NAME.key. Keys are EC P-256, mode 0600; certificates last 825 days
# (the CA 10 years). Agent certificates also allow client use, so an agent can present its own
# certificate where a CA-signed client certificate is needed. Keep ca.key offline.
#
# Then, on each agent (config_node.json):
#   "monitor": {"tls": {"cert": "/etc/smon/tls/NAME.pem", "key": "/etc/smon/tls/NAME.key",
#                       "client_ca": "/etc/smon/tls/ca.pem"}}      # client_ca: mutual TLS
# and on the aggregator (config_app.json), per cluster or per host:
#   "tls": {"ca": "/etc/smon/tls/ca.pem", "cert": "/etc/smon/tls/aggregator.pem",
#           "key": "/etc/smon/tls/aggregator.key"}
set -euo pipefail

dir=./smon-tls
ca_name="smon private CA"
while getopts "d:n:h" opt; do
    case $opt in
        d) dir=$OPTARG ;;
        n) ca_name=$OPTARG ;;
        *) sed -n '2,22p' "$0"; exit 64 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { sed -n '2,22p' "$0" >&2; exit 64; }
command -v openssl >/dev/null || { echo "make-certs.sh: openssl is not installed" >&2; exit 69; }
kind=$1; shift
mkdir -p "$dir"
umask 077

san_list() {
    local name=$1; shift
    local out="" s
    [ $# -eq 0 ] && set -- "$name"
    for s in "$@"; do
        if [[ $s =~ ^[0-9.]+$ || $s == *:* ]]; then out+="IP:$s,"; else out+="DNS:$s,"; fi
    done
    echo "${out%,}"
}

issue() { # issue NAME EKU [SAN ...]
    local name=$1 eku=$2; shift 2
    [[ $name =~ ^[A-Za-z0-9._-]+$ ]] || { echo "make-certs.sh: bad name '$name'" >&2; exit 64; }
    [ -f "$dir/ca.pem" ] && [ -f "$dir/ca.key" ] || { echo "make-certs.sh: no CA in $dir: run '$0 -d $dir ca' first" >&2; exit 66; }
    local ext
    ext=$(mktemp)
    trap 'rm -f "$ext"' RETURN
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
        "$eku" "$(san_list "$name" "$@")" >"$ext"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$dir/$name.key" -subj "/CN=$name" -out "$dir/$name.csr" 2>/dev/null
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 825 -sha256 -extfile "$ext" -out "$dir/$name.pem" 2>/dev/null
    rm -f "$dir/$name.csr"
    chmod 600 "$dir/$name.key"
    chmod 644 "$dir/$name.pem"
    echo "$dir/$name.pem, $dir/$name.key"
}

case $kind in
    ca)
        if [ -f "$dir/ca.key" ]; then echo "make-certs.sh: $dir/ca.key exists; not overwriting" >&2; exit 73; fi
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -sha256 \
            -keyout "$dir/ca.key" -subj "/CN=$ca_name" -out "$dir/ca.pem" \
            -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        chmod 600 "$dir/ca.key"
        chmod 644 "$dir/ca.pem"
        echo "$dir/ca.pem (keep $dir/ca.key offline)"
        ;;
    agent) [ $# -ge 1 ] || exit 64; name=$1; shift; issue "$name" serverAuth,clientAuth "$@" ;;
    server) [ $# -ge 1 ] || exit 64; name=$1; shift; issue "$name" serverAuth "$@" ;;
    client) [ $# -eq 1 ] || exit 64; issue "$1" clientAuth ;;
    *) echo "make-certs.sh: unknown kind '$kind' (ca, agent, client, server)" >&2; exit 64 ;;
esac
