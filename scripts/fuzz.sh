#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer) of the parsers that take outside input: the redactor,
# the utmp reader, the /proc readers (stat, mountinfo, diskstats) and the config loaders.
#
#   scripts/fuzz.sh [-t SECONDS] [--all] [--ci] [--merge] [TARGET...]
#
#   -t SECONDS  how long each target runs (default 300)
#   --all       every target: adds the config loaders (config_node, config_app), whose build
#               takes the daemons' crates (minutes more)
#   --ci        what CI runs: the light targets, each a fixed 20,000 inputs from seed 1 after
#               replaying its corpus (deterministic: CI never goes red on a new, random find;
#               exploring is for the long local runs)
#   --merge     fold what the run found into the committed corpus (fuzz/corpus/TARGET),
#               minimised; commit it with the fix of any crash
#   TARGET      one or more of: redact utmp proc_stat mountinfo diskstats config_node config_app
#
# No cargo-fuzz needed: it builds fuzz/ with the flags `cargo fuzz` uses (SanitizerCoverage,
# --cfg fuzzing, debug assertions and overflow checks) on the pinned stable toolchain, for the
# host target so build scripts and proc macros stay uninstrumented. With cargo-fuzz installed,
# `cd fuzz && cargo fuzz run redact` works on the same layout. SANITIZER=address adds
# AddressSanitizer (a nightly flag, allowed on stable by RUSTC_BOOTSTRAP=1); the code is safe
# Rust, so it mostly guards the C and unsafe code below it.
#
# A crash stops the run with the input saved as fuzz/artifacts/TARGET/crash-*; reproduce it
# with `fuzz/target/<host>/release/TARGET fuzz/artifacts/TARGET/crash-...`, fix it, and add a
# named regression test next to the parser (and the input to the corpus).
set -euo pipefail
cd "$(dirname "$0")/.."

light=(redact utmp proc_stat mountinfo diskstats)
heavy=(config_node config_app)
seconds=300
merge=0
ci=0
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        -t) seconds="$2"; shift 2 ;;
        --all) targets+=("${light[@]}" "${heavy[@]}"); shift ;;
        --ci) ci=1; seconds=60; shift ;;
        --merge) merge=1; shift ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 64 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${light[@]}")

features=()
for t in "${targets[@]}"; do
    case " ${light[*]} ${heavy[*]} " in
        *" $t "*) ;;
        *) echo "fuzz.sh: unknown target $t (one of: ${light[*]} ${heavy[*]})" >&2; exit 64 ;;
    esac
    case " ${heavy[*]} " in *" $t "*) features=(--features daemons) ;; esac
done

host=$(rustc -vV | sed -n 's/^host: //p')
flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth"
flags+=" --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
if [ "${SANITIZER:-}" = address ]; then
    flags+=" -Zsanitizer=address"
    export RUSTC_BOOTSTRAP=1
fi
# The web UI is not part of any target, but the aggregator's crate embeds it.
export SMON_SKIP_UI_BUILD=${SMON_SKIP_UI_BUILD:-1}

echo "fuzz: building ${targets[*]} ($host)"
# Not --locked: fuzz/Cargo.lock pins what it has, and the daemons' crates may have gained a
# dependency since it was last written (cargo then adds it, keeping the other pins).
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
RUSTFLAGS="$flags" cargo build --manifest-path fuzz/Cargo.toml --release \
    --target "$host" "${features[@]}" "${bins[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" "$work/$t"
    echo "fuzz: $t for ${seconds}s"
    # New inputs go to the scratch directory (first); the committed corpus is read only.
    limit=(-max_total_time="$seconds")
    [ "$ci" = 1 ] && limit+=(-seed=1 -runs=20000)
    (cd "$work" && "$OLDPWD/fuzz/target/$host/release/$t" "${limit[@]}" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$OLDPWD/fuzz/artifacts/$t/" "$work/$t" "$OLDPWD/fuzz/corpus/$t")
    if [ "$merge" = 1 ]; then
        "fuzz/target/$host/release/$t" -merge=1 "fuzz/corpus/$t" "$work/$t" 2>&1 | tail -1
    fi
done
echo "fuzz: ok (${targets[*]}, ${seconds}s each)"
