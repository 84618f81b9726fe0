#!/usr/bin/env bash
# SFU load: `switchyard livekit --dev` on loopback driven by `switchyard loadgen sfu`
# (synthetic LiveKit participants: str0m peers over /rtc, Opus-sized audio and VP8-framed
# simulcast video). Two rooms, one after the other:
#   - livestream: 1 publisher -> 50 subscribe-only participants
#   - meeting:    10 participants who all publish and all subscribe (10 <-> 10)
#   - late joiners: 5 subscribe-only participants joining a running 10 <-> 10 meeting, one
#     per 200 ms (their connect -> first remote packet is "join -> first remote frame")
# Prints, per room: forwarded packets/s (received by all participants), loss, server CPU per
# forwarded packet, forwarded pps per server core (= fwd pps / cores the server used), and
# join (connect -> ICE+DTLS up) and connect -> first remote packet percentiles.
#
#   bash benches/sfu-load.sh            # 15 s windows
#   QUICK=1 bash benches/sfu-load.sh    # 3 s windows, under a minute after the build
#
# Knobs: DUR (window seconds), KBPS_LIVE / KBPS_MEET (top-layer video kbps), SUBS (livestream
# audience), MEET (meeting size), PROFILE (cargo profile), PORT_BASE.
# The load generator shares the machine with the server: its own CPU is printed too, and
# on a 2-core machine it is part of what limits the figures.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then DUR=${DUR:-3}; else DUR=${DUR:-15}; fi
KBPS_LIVE=${KBPS_LIVE:-1500}
KBPS_MEET=${KBPS_MEET:-800}
SUBS=${SUBS:-50}
MEET=${MEET:-10}
PROFILE=${PROFILE:-release}
PORT_BASE=${PORT_BASE:-27880}
HTTP_PORT=$PORT_BASE
TCP_PORT=$((PORT_BASE + 1))
UDP_PORT=$((PORT_BASE + 2))

cargo build --profile "$PROFILE" -p switchyard -q
BIN=target/$PROFILE/switchyard
[ -x "$BIN" ] || BIN=target/release/switchyard

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# --dev: the devkey/secret key pair, which is also the loadgen's default.
RUST_LOG=warn "$BIN" livekit --dev --bind 127.0.0.1 --node-ip 127.0.0.1 \
  --port "$HTTP_PORT" --udp-port "$UDP_PORT" --tcp-port "$TCP_PORT" \
  >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
up=0
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT") 2>/dev/null; then up=1; break; fi
  sleep 0.1
done
if [ "$up" != 1 ]; then echo "switchyard livekit did not come up" >&2; cat "$WORK/server.log" >&2; exit 1; fi

kvget() { # kv-line key
  tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'
}

declare -a ROWS=()
run() { # label room loadgen-args...
  local label=$1 room=$2; shift 2
  echo "== $label: loadgen sfu $*" >&2
  local out
  if ! out=$("$BIN" loadgen sfu --url "ws://127.0.0.1:$HTTP_PORT" --room "$room" \
               --duration "$DUR" --join-rate "${JOIN_RATE:-50}" --server-pid "$SERVER_PID" --kv --quiet "$@" 2>&1); then
    echo "$out" >&2
    echo "loadgen failed for $label; server log tail:" >&2
    tail -20 "$WORK/server.log" >&2
    exit 1
  fi
  grep -v '^kv ' <<<"$out" | sed 's/^/   /' >&2
  local kv
  kv=$(grep '^kv ' <<<"$out")
  local cpu cores ppc
  cpu=$(kvget "$kv" server_cpu_s)
  cores=$(awk -v c="$cpu" -v w="$(kvget "$kv" window_s)" 'BEGIN { if (w > 0) printf "%.2f", c / w; else print "nan" }')
  ppc=$(kvget "$kv" pps_per_core)
  ROWS+=("$(printf '%-24s %9s %7s %9s %8s %10s %10s %10s %10s %8s' \
    "$label" "$(kvget "$kv" fwd_pps)" "$(kvget "$kv" loss_pct)" \
    "$(kvget "$kv" cpu_us_per_pkt)" "$cores" "$ppc" \
    "$(kvget "$kv" join_p50_ms)/$(kvget "$kv" join_p99_ms)" \
    "$(kvget "$kv" first_pkt_p50_ms)/$(kvget "$kv" first_pkt_p99_ms)" \
    "$(kvget "$kv" lat_p50_ms)/$(kvget "$kv" lat_p99_ms)" \
    "$(kvget "$kv" loadgen_cpu_pct)%")")
}

run "1 -> $SUBS (${KBPS_LIVE}k sim)" live-$$ \
  --publishers 1 --subscribers "$SUBS" --video-kbps "$KBPS_LIVE" --simulcast
run "$MEET <-> $MEET (${KBPS_MEET}k sim)" meet-$$ \
  --publishers "$MEET" --subscribers 0 --video-kbps "$KBPS_MEET" --simulcast

# Join -> first remote frame as a user meets it: the call is already running when they
# join. A meeting runs in the background; once its participants are in and media flows,
# LATE subscribe-only participants join it one by one and time connect -> first remote
# media. Their row is about that column; its forwarding figures include the meeting.
LATE=${LATE:-5}
late_room=late-$$
"$BIN" loadgen sfu --url "ws://127.0.0.1:$HTTP_PORT" --room "$late_room" --duration "$((${DUR%.*} + 6))" \
  --join-rate 50 --publishers "$MEET" --subscribers 0 --video-kbps "$KBPS_MEET" --simulcast \
  --quiet >"$WORK/late-meeting.log" 2>&1 &
meeting=$!
sleep "$(awk -v m="$MEET" 'BEGIN { printf "%.1f", m / 50 + 2 }')"
JOIN_RATE=5 run "$LATE late joiners of $MEET<->$MEET" "$late_room" \
  --publishers 0 --subscribers "$LATE" --video-kbps "$KBPS_MEET" --simulcast
if ! wait "$meeting"; then
  echo "the background meeting for late joiners failed:" >&2
  tail -20 "$WORK/late-meeting.log" >&2
  exit 1
fi

echo
echo "switchyard livekit, loopback, $(nproc) cores, ${DUR} s windows"
printf '%-24s %9s %7s %9s %8s %10s %10s %10s %10s %8s\n' \
  room fwd_pps loss_% us/pkt cores pps/core join_ms first_ms lat_ms loadgen
printf '%-24s %9s %7s %9s %8s %10s %10s %10s %10s %8s\n' \
  "" "" "" "srv cpu" "srv" "" "p50/p99" "p50/p99" "p50/p99" "cpu"
for r in "${ROWS[@]}"; do echo "$r"; done
echo "(join: connect -> ICE+DTLS up on every connection; first: connect -> first remote media packet;"
echo " first is over subscribe-only participants where there are any, else over the publishers)"
