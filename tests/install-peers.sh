#!/usr/bin/env bash
# Installs the real peers the interop tests talk to, only where they are missing:
#   - Debian coturn (turnutils_uclient / turnutils_peer, and turnserver as the reference server),
#     chromium, openssl, python3-venv, nodejs/npm
#   - podman + runc (and binutils, musl-tools) for the container image and its tests
#   - puppeteer-core in tests/js (never a browser download: Debian's chromium is used)
#   - matrix-synapse (and podman-compose) in a venv at tests/.venv
# Idempotent and quiet; any failure stops the script with the failing command's output.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# Runs a command quietly; on failure prints what it said and exits non-zero.
quiet() {
    if ! "$@" >"$log" 2>&1; then
        echo "install-peers: FAILED: $*" >&2
        tail -n 60 "$log" >&2
        exit 1
    fi
}

sudo_if_needed() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# --- Debian packages --------------------------------------------------------------------------
need_apt=()
command -v turnutils_uclient >/dev/null 2>&1 || need_apt+=(coturn)
command -v turnutils_peer >/dev/null 2>&1 || need_apt+=(coturn)
[ -x /usr/bin/turnserver ] || need_apt+=(coturn)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then need_apt+=(python3-venv); fi
# The container image (docker/build.sh, tests/tests/container.rs): podman with the runc
# runtime (crun fails on these machines' cgroups), readelf to check the binary is static,
# musl-gcc for ring when rustup has the musl target (build.sh falls back to static glibc).
command -v podman >/dev/null 2>&1 || need_apt+=(podman)
command -v runc >/dev/null 2>&1 || need_apt+=(runc)
command -v readelf >/dev/null 2>&1 || need_apt+=(binutils)
command -v musl-gcc >/dev/null 2>&1 || need_apt+=(musl-tools)
if [ "${#need_apt[@]}" -gt 0 ]; then
    # Deduplicate while keeping order.
    mapfile -t need_apt < <(printf '%s\n' "${need_apt[@]}" | awk '!seen[$0]++')
    echo "install-peers: apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    quiet sudo_if_needed apt-get update
    quiet sudo_if_needed apt-get install -y --no-install-recommends "${need_apt[@]}"
    # Debian's coturn package enables a system service on install; the tests start their own.
    if command -v systemctl >/dev/null 2>&1; then
        sudo_if_needed systemctl disable --now coturn >/dev/null 2>&1 || true
    fi
fi

# --- puppeteer-core (no browser download) -----------------------------------------------------
if [ ! -f "$here/js/node_modules/puppeteer-core/package.json" ] \
    || [ ! -f "$here/js/node_modules/livekit-client/package.json" ] \
    || [ ! -f "$here/js/node_modules/livekit-client-2-21/package.json" ]; then
    echo "install-peers: npm install (tests/js)"
    export PUPPETEER_SKIP_DOWNLOAD=1 PUPPETEER_SKIP_CHROMIUM_DOWNLOAD=1
    (cd "$here/js" && quiet npm install --no-audit --no-fund --loglevel=error)
fi

# --- Synapse in a venv ------------------------------------------------------------------------
venv="$here/.venv"
if ! "$venv/bin/python" -c 'import synapse' >/dev/null 2>&1; then
    echo "install-peers: pip install matrix-synapse into tests/.venv"
    [ -x "$venv/bin/python" ] || quiet python3 -m venv "$venv"
    quiet "$venv/bin/python" -m pip install --quiet --upgrade pip
    quiet "$venv/bin/python" -m pip install --quiet 'matrix-synapse==1.163.2'
fi
# podman-compose runs docker/compose/*.yml in tests/tests/container.rs.
if [ ! -x "$venv/bin/podman-compose" ]; then
    echo "install-peers: pip install podman-compose into tests/.venv"
    quiet "$venv/bin/python" -m pip install --quiet 'podman-compose==1.6.0'
fi

# --- LiveKit's Python SDKs (server API client + native rtc SDK) in the same venv --------------
if ! "$venv/bin/python" -c 'import livekit.api, livekit.rtc' >/dev/null 2>&1; then
    echo "install-peers: pip install livekit livekit-api into tests/.venv"
    [ -x "$venv/bin/python" ] || quiet python3 -m venv "$venv"
    quiet "$venv/bin/python" -m pip install --quiet 'livekit==1.2.1' 'livekit-api==1.2.2'
fi

echo "install-peers: ok (coturn $(dpkg-query -W -f='${Version}' coturn 2>/dev/null || echo '?'), $(/usr/bin/chromium --version 2>/dev/null | grep -o 'Chromium [0-9.]*' || echo 'chromium ?'), puppeteer-core $(node -p "require('$here/js/node_modules/puppeteer-core/package.json').version"), synapse $("$venv/bin/python" -c 'import synapse; print(synapse.__version__)'))"
