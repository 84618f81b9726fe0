#!/usr/bin/env bash
# Builds an image: a static `switchyard` binary (cargo profile `container`) copied into
# docker/out/<flavour>/, then docker/<flavour>.Dockerfile (FROM scratch) with that directory
# as the build context. See docker/README.md.
#
# Settings (environment):
#   FLAVOUR=turn|livekit           turn (default): the coturn drop-in, built without the SFU;
#                                  livekit: the livekit-server drop-in (the SFU without the
#                                  load generator)
#   IMAGE=switchyard-<flavour>:latest   tag of the image
#   TARGET=auto|musl|gnu           auto: musl when rustup has the target's std and `musl-gcc`
#                                  is installed (Debian: musl-tools), else glibc with crt-static
#   PROFILE=container              cargo profile (release + strip, whole-program LTO; both
#                                  flavours share its dependency build; `ci` builds faster,
#                                  bigger)
#   ENGINE=auto|podman|docker      auto: podman if installed, else docker with a running engine
#   SKIP_IMAGE=1                   build and check the binary only
#   CARGO_TARGET_DIR               honoured as usual
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

flavour="${FLAVOUR:-turn}"
case "$flavour" in
    turn) features=(--no-default-features) ;;
    livekit) features=(--no-default-features --features livekit) ;;
    *) printf 'build.sh: FLAVOUR must be turn or livekit\n' >&2; exit 1 ;;
esac
image="${IMAGE:-switchyard-$flavour:latest}"
profile="${PROFILE:-container}"
arch="$(uname -m)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
out="$root/docker/out/$flavour"

say() { printf 'build.sh: %s\n' "$*"; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

have_musl() {
    local libdir
    libdir="$(rustc --print target-libdir --target "$arch-unknown-linux-musl" 2>/dev/null)" || return 1
    compgen -G "$libdir/libstd-*.rlib" >/dev/null && command -v musl-gcc >/dev/null 2>&1
}

case "${TARGET:-auto}" in
    auto) if have_musl; then kind=musl; else kind=gnu; fi ;;
    musl) have_musl || die "TARGET=musl: needs \`rustup target add $arch-unknown-linux-musl\` and musl-gcc (apt-get install musl-tools)"; kind=musl ;;
    gnu) kind=gnu ;;
    *) die "TARGET must be auto, musl or gnu" ;;
esac

triple="$arch-unknown-linux-$kind"
env_triple="$(printf '%s' "$triple" | tr 'a-z-' 'A-Z_')"
if [ "$kind" = musl ]; then
    # ring compiles C and assembly; musl-gcc points gcc at musl's headers and libc.
    export "CC_$(printf '%s' "$triple" | tr '-' '_')=musl-gcc"
else
    # glibc, linked statically. switchyard resolves no names and looks up no users at run
    # time, so none of glibc's NSS functions (which static glibc cannot load) is reached.
    export "CARGO_TARGET_${env_triple}_RUSTFLAGS=-C target-feature=+crt-static"
fi

# The TURN image carries the relay only (no `livekit` feature: no SFU, no WebRTC stack). Both
# flavours share the dependencies' build; only the switchyard crate differs.
say "cargo build -p switchyard ${features[*]} --profile $profile --target $triple"
started=$SECONDS
cargo build --locked -p switchyard "${features[@]}" --profile "$profile" --target "$triple"
say "binary built in $((SECONDS - started)) s"

bin="$target_dir/$triple/$profile/switchyard"
[ -x "$bin" ] || die "no binary at $bin"
if command -v readelf >/dev/null 2>&1; then
    if readelf -lW "$bin" | grep -q 'program interpreter' || readelf -dW "$bin" | grep -q NEEDED; then
        readelf -dW "$bin" | grep NEEDED >&2 || true
        die "$bin is dynamically linked; an image FROM scratch cannot run it"
    fi
else
    say "readelf not found: static linking not checked"
fi
mkdir -p "$out"
install -m 0755 "$bin" "$out/switchyard"
say "docker/out/$flavour/switchyard: $(stat -c %s "$out/switchyard") bytes ($triple, profile $profile)"

[ "${SKIP_IMAGE:-0}" = 1 ] && exit 0

engine="${ENGINE:-auto}"
if [ "$engine" = auto ]; then
    if command -v podman >/dev/null 2>&1; then
        engine=podman
    elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        engine=docker
    else
        die "neither podman nor a running Docker engine (apt-get install podman runc)"
    fi
fi

say "$engine build -t $image -f docker/$flavour.Dockerfile docker/out/$flavour"
started=$SECONDS
"$engine" build --quiet -t "$image" -f "docker/$flavour.Dockerfile" "$out" >/dev/null
say "image built in $((SECONDS - started)) s: $image, $("$engine" image inspect --format '{{.Size}}' "$image") bytes"
