#!/usr/bin/env bash
# Runs everything: installs the real peers (in the background, during fmt, clippy and the
# first build), unit + interop tests, fuzz smoke runs and quick benchmarks. This is what CI
# runs (.ci/run) and what the README calls "run everything".
#
# Skips, for fast local iteration (all steps run by default):
#   SKIP_INSTALL=1   don't run tests/install-peers.sh
#   SKIP_LINT=1      no cargo fmt --check / clippy
#   SKIP_TEST=1      no cargo test
#   SKIP_FUZZ=1      no fuzz smoke runs        FUZZ_SECS=15  seconds per fuzz target
#   SKIP_BENCH=1     no quick benchmarks
#   SKIP_VS_COTURN=1 no short side-by-side load run against coturn
# SWITCHYARD_INTEROP=1 is exported, so a missing peer fails the interop tests instead of
# skipping them. SWITCHYARD_TEST_SERVER=coturn runs the interop tests against coturn.
# Uses the default target dir (or CARGO_TARGET_DIR if set): the interop tests look for the
# switchyard binary next to themselves.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

started=$SECONDS
step() { printf '\n==> [%4ss] %s\n' "$((SECONDS - started))" "$*"; }
on() { [ "${!1:-0}" != 1 ]; }

export SWITCHYARD_INTEROP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Installing the peers is mostly downloads; it runs in the background while the first
# compilations (fmt, clippy, the switchyard binary) use the CPU, and is waited for before
# anything that needs a peer (the images need podman, the tests everything).
peers_pid=
peers_log="$(mktemp)"
trap 'rm -f "$peers_log"' EXIT
if on SKIP_INSTALL; then
    step "install peers (in the background)"
    bash tests/install-peers.sh >"$peers_log" 2>&1 &
    peers_pid=$!
fi
peers_ready() {
    [ -n "$peers_pid" ] || return 0
    step "waiting for install peers"
    local rc=0
    wait "$peers_pid" || rc=$?
    peers_pid=
    cat "$peers_log"
    if [ "$rc" != 0 ]; then
        echo "tests/install-peers.sh failed (exit $rc)"
        exit "$rc"
    fi
}

if on SKIP_LINT; then
    step "cargo fmt --check"
    cargo fmt --all --check
    step "cargo clippy"
    cargo clippy --workspace --all-targets -- -D warnings
fi

if on SKIP_TEST; then
    # cargo test does not build another package's binary; the interop tests run this one.
    step "cargo build -p switchyard --profile ci"
    cargo build -p switchyard --profile ci
    # tests/tests/container.rs runs the image; a nested cargo build inside `cargo test`
    # would wait on its lock, so the static binary and the image are built here.
    peers_ready
    step "container images (docker/build.sh: turn, livekit)"
    bash docker/build.sh
    FLAVOUR=livekit bash docker/build.sh
    step "cargo test --workspace --profile ci"
    cargo test --workspace --profile ci
fi

peers_ready

if on SKIP_FUZZ; then
    step "fuzz smoke runs (${FUZZ_SECS:-15} s each)"
    if ! cargo fuzz --version >/dev/null 2>&1; then
        step "cargo install cargo-fuzz --locked"
        cargo install cargo-fuzz --locked
    fi
    # cargo-fuzz needs nightly -Z flags. Use the nightly toolchain when rustup has one;
    # otherwise the stable toolchain with RUSTC_BOOTSTRAP=1 (its rust-std ships the ASan
    # runtime), since this machine cannot download another toolchain.
    if rustup run nightly rustc --version >/dev/null 2>&1; then
        fuzz=(cargo +nightly fuzz)
    else
        echo "no nightly toolchain: fuzzing with stable + RUSTC_BOOTSTRAP=1"
        export RUSTC_BOOTSTRAP=1
        fuzz=(cargo fuzz)
    fi
    targets=(stun_parse channel_data turn_server turn_config livekit_signal livekit_token livekit_config)
    # Smoke runs use unoptimised (`--dev`) builds, still with ASan and coverage: the livekit
    # targets pull in the whole SFU stack, whose optimised sanitizer build alone would take
    # most of CI's budget. Real fuzzing: `cargo fuzz run <target>` without --dev.
    step "cargo fuzz build --dev"
    "${fuzz[@]}" build --dev
    for t in "${targets[@]}"; do
        step "fuzz $t"
        log="$(mktemp)"
        if ! "${fuzz[@]}" run --dev "$t" -- -max_total_time="${FUZZ_SECS:-15}" -print_final_stats=1 >"$log" 2>&1; then
            tail -n 80 "$log"
            echo "fuzz target $t failed (crash input saved under fuzz/artifacts/$t)"
            exit 1
        fi
        grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || tail -n 3 "$log"
        rm -f "$log"
    done
fi

if on SKIP_BENCH; then
    # The `ci` profile (release code, no LTO) reuses the test build's dependencies; the
    # `bench` profile would compile them all again for a quick run.
    step "cargo bench -p switchyard-benches --profile ci (quick)"
    cargo bench -p switchyard-benches --profile ci -- --quick --warm-up-time 1 --measurement-time 2
fi

if on SKIP_VS_COTURN; then
    # The side-by-side load comparison in its short form (the full one: bash benches/vs-coturn.sh).
    step "benches/vs-coturn.sh (QUICK=1)"
    QUICK=1 PROFILE=ci bash benches/vs-coturn.sh
    # The SFU under synthetic LiveKit participants (the full one: bash benches/sfu-load.sh).
    step "benches/sfu-load.sh (QUICK=1)"
    QUICK=1 PROFILE=ci bash benches/sfu-load.sh
fi

step "all done"
