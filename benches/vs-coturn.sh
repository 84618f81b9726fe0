#!/usr/bin/env bash
# Side-by-side benchmark: coturn and `switchyard turn` with equivalent configs on loopback,
# driven by the same `switchyard loadgen turn` in the same run. Prints a table of ratios
# (switchyard / coturn). Lower is better for CPU and RSS, higher for rates.
#
#   bash benches/vs-coturn.sh            # full run (~5 min)
#   QUICK=1 bash benches/vs-coturn.sh    # CI's short form (~1 min)
#
# Loopback only: servers listen on 127.0.0.1 and relay to a sink the load generator owns.
# Traffic shapes: "full speed" sends 16-packet bursts per allocation (a video frame);
# "20k pps" interleaves allocations packet by packet (the hardest case to batch), paced in
# 1 ms ticks, and again spread over 100 µs ticks (a wake-up per packet or two); the
# max-pps search offers 8-packet bursts from 2 sender threads. Both servers get the same.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then DUR=${DUR:-1.5}; IDLE_N=${IDLE_N:-500}; else DUR=${DUR:-5}; IDLE_N=${IDLE_N:-4000}; fi
SECRET=benchsecret
PROFILE=${PROFILE:-release}

if ! command -v turnserver >/dev/null; then
  echo "installing coturn (Debian package) for the comparison..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coturn >/dev/null
fi
cargo build --profile "$PROFILE" -p switchyard -q
BIN=target/$PROFILE/switchyard
[ -x "$BIN" ] || BIN=target/release/switchyard

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# Flags both servers understand (coturn's own syntax).
common=(-n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --use-auth-secret
        --static-auth-secret=$SECRET --realm=bench.example.org --allow-loopback-peers
        --allowed-peer-ip=127.0.0.1 --no-tls --no-dtls --no-cli --stale-nonce=600
        --total-quota=0 --user-quota=0)

start_server() { # name port minport maxport [extra flags] -> sets SERVER_PID
  local name=$1 port=$2 lo=$3 hi=$4; shift 4
  local args=("${common[@]}" --listening-port="$port" --min-port="$lo" --max-port="$hi"
              --pidfile="$WORK/$name.pid" "$@")
  if [ "$name" = coturn ]; then
    turnserver "${args[@]}" --log-file="$WORK/coturn.log" --simple-log --no-stdout-log \
      >/dev/null 2>&1 &
  else
    "$BIN" turn "${args[@]}" --log-file="$WORK/switchyard.log" >/dev/null 2>&1 &
  fi
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 100); do
    if "$BIN" loadgen turn --mode alloc-rate --server 127.0.0.1:"$port" --secret $SECRET \
         -n 1 --duration 0.2 --quiet >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "$name did not come up" >&2; cat "$WORK/$name.log" >&2 || true; exit 1
}

lg() { # port args... -> prints the kv line
  local port=$1; shift
  # A failed run reports "fail" in the table instead of stopping the comparison.
  "$BIN" loadgen turn --server 127.0.0.1:"$port" --secret $SECRET --quiet --kv "$@" \
    | grep '^kv ' | tail -1 || echo "kv failed=1"
}
kv() { local v; v=$(sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"); echo "${v:-fail}"; }

max_pps() { # port [extra loadgen flags] -> prints the best rate
  local port=$1 best=0 pass=0 fail=0 rate step; shift
  # Offered rate -> 0 and the relayed pps in $PPS if loss stayed under 0.1 %, else 1.
  try_rate() {
    local line loss
    line=$(lg "$port" --server-pid "$SERVER_PID" -n 64 --size 200 --rate "$1" --burst 8 --senders 2 --duration "$DUR" "${@:2}")
    loss=$(kv loss_pct "$line")
    PPS=$(kv pps "$line")
    [ "$loss" != fail ] && awk "BEGIN{exit !($loss < 0.1)}"
  }
  for rate in 20000 40000 80000 120000 160000 200000 240000 320000 400000 480000 560000; do
    if try_rate $rate "$@"; then best=$PPS; pass=$rate; else fail=$rate; break; fi
  done
  # The ladder's steps are a third of the rate or more, enough to hide a 1.5x difference
  # between two servers: bisect the last step twice (to a twelfth of it).
  if [ "$fail" -gt 0 ]; then
    for step in 1 2; do
      rate=$(( (pass + fail) / 2 ))
      if try_rate $rate "$@"; then
        pass=$rate
        if awk -v a="$PPS" -v b="$best" 'BEGIN{exit !(a > b)}'; then best=$PPS; fi
      else
        fail=$rate
      fi
    done
  fi
  echo "$best"
}

declare -A R
added() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "fail" || b == "fail") print "fail"; else print a-b }'; }
run_suite() { # name port
  local name=$1 port=$2 line
  # Idle allocations first, on a fresh server: later runs leave freed memory in the
  # allocator's pools, which would hide the growth.
  line=$(lg "$port" --server-pid "$SERVER_PID" --mode idle -n "$IDLE_N")
  R[$name,rss]=$(kv bytes_per_alloc "$line")
  for size in 200 1200; do
    for n in 1 64; do
      line=$(lg "$port" --server-pid "$SERVER_PID" -n $n --size $size --rate 0 --duration "$DUR")
      R[$name,full,$size,$n]=$(kv cpu_us_per_pkt "$line")
      line=$(lg "$port" --server-pid "$SERVER_PID" -n $n --size $size --rate 20000 --duration "$DUR")
      R[$name,steady,$size,$n]=$(kv cpu_us_per_pkt "$line")
      R[$name,steadyp99,$size,$n]=$(kv p99_us "$line")
    done
    # The same 20k pps spread out in 100 µs ticks, as many independent callers arrive: a
    # server wakes for nearly every packet (coturn's 12-16 µs figure is this case).
    line=$(lg "$port" --server-pid "$SERVER_PID" -n 64 --size $size --rate 20000 --tick-us 100 --duration "$DUR")
    R[$name,spread,$size]=$(kv cpu_us_per_pkt "$line")
  done
  line=$(lg "$port" --server-pid "$SERVER_PID" -n 64 --size 1200 --rate 0 --gso --duration "$DUR")
  R[$name,fullgso]=$(kv cpu_us_per_pkt "$line")
  # Max relayed pps at < 0.1 % loss: raise the offered rate until loss appears. Once with
  # each burst as one sendmmsg, once as one GSO send (what a NIC's GRO hands a server that
  # enables UDP_GRO; loopback has no NIC). coturn gets the same traffic both times.
  R[$name,maxpps]=$(max_pps "$port")
  R[$name,maxppsgso]=$(max_pps "$port" --gso)
  local best=${R[$name,maxpps]}
  # Latency at half of that load: the relay's p99, and the same traffic sent straight to
  # the sink (no relay) as this machine's floor. Their difference is what the relay adds.
  local half=$(( ${best%.*} / 2 )); [ "$half" -ge 1000 ] || half=1000
  line=$(lg "$port" --server-pid "$SERVER_PID" -n 64 --size 200 --rate $half --burst 8 --senders 2 --duration "$DUR")
  R[$name,halfp99]=$(kv p99_us "$line")
  line=$(lg "$port" --mode direct -n 64 --size 200 --rate $half --burst 8 --senders 2 --duration "$DUR")
  R[$name,directp99]=$(kv p99_us "$line")
  R[$name,addedp99]=$(added "${R[$name,halfp99]}" "${R[$name,directp99]}")
  # The same at coturn's half-max rate (coturn runs first): a faster relay is measured
  # above at a higher rate than coturn, and this row compares the two at equal load.
  local chalf=$(( ${R[coturn,maxpps]%.*} / 2 )); [ "$chalf" -ge 1000 ] || chalf=1000
  if [ "$name" = coturn ] || [ "$chalf" = "$half" ]; then
    R[$name,samep99]=${R[$name,addedp99]}
  else
    line=$(lg "$port" --server-pid "$SERVER_PID" -n 64 --size 200 --rate $chalf --burst 8 --senders 2 --duration "$DUR")
    local through direct
    through=$(kv p99_us "$line")
    line=$(lg "$port" --mode direct -n 64 --size 200 --rate $chalf --burst 8 --senders 2 --duration "$DUR")
    direct=$(kv p99_us "$line")
    R[$name,samep99]=$(added "$through" "$direct")
  fi
  # 32 clients in flight on 2 driver threads, each new client from a new 127/8 address.
  line=$(lg "$port" --server-pid "$SERVER_PID" --mode alloc-rate -n 32 --senders 2 --duration "$DUR")
  R[$name,allocs]=$(kv per_sec "$line")
  R[$name,allocus]=$(kv cpu_us_per_alloc "$line")
}

flood_suite() { # name port
  local line
  line=$(lg "$2" --server-pid "$SERVER_PID" --mode flood -n 64 --size 200 --rate 20000 --duration "$DUR")
  R[$1,floodloss]=$(kv loss_pct "$line")
  R[$1,floodratio]=$(kv flood_ratio "$line")
}

stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; }

# At 20k pps most of a server's CPU goes to waking up, and every worker thread wakes for
# its own share of the packets: one worker wakes about half as often as two. Both servers
# again, each with one relay thread (coturn's -m 1), as a small deployment could run.
one_thread_suite() { # name port
  local line size
  for size in 200 1200; do
    line=$(lg "$2" --server-pid "$SERVER_PID" -n 64 --size $size --rate 20000 --duration "$DUR")
    R[$1,t1steady,$size]=$(kv cpu_us_per_pkt "$line")
    line=$(lg "$2" --server-pid "$SERVER_PID" -n 64 --size $size --rate 20000 --tick-us 100 --duration "$DUR")
    R[$1,t1spread,$size]=$(kv cpu_us_per_pkt "$line")
  done
}

# coturn 4.6 has no unauthenticated-reply rate limit. switchyard's is on by default (10 per
# source IP per second) and would cap the allocation-rate test, whose clients all share
# 127.0.0.1, so the main suite turns it off and the flood test runs with the defaults.
# Equal relay ranges of 24,000 ports. coturn keeps a freed relay port until its session
# times out, so a narrower range caps its allocation rate at range/second (8,000 ports gave
# exactly 8,000/s): the range, not coturn, would be measured.
start_server coturn 23478 16000 39999
run_suite coturn 23478
flood_suite coturn 23478
stop_server
start_server switchyard 23479 40000 63999 --unauthorized-ratelimit-rps=0
run_suite switchyard 23479
stop_server
start_server switchyard 23480 40000 63999
flood_suite switchyard 23480
stop_server
start_server coturn 23481 16000 39999 --relay-threads=1
one_thread_suite coturn 23481
stop_server
start_server switchyard 23482 40000 63999 --relay-threads=1 --unauthorized-ratelimit-rps=0
one_thread_suite switchyard 23482
stop_server

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 == 0 || a == "nan" || b == "nan" || a == "fail" || b == "fail") print "n/a"; else printf "%.2f", a/b }'; }
printf '\n%-58s %12s %12s %8s\n' "metric" "coturn" "switchyard" "ratio"
row() { printf '%-58s %12s %12s %8s\n' "$1" "$2" "$3" "$(ratio "$3" "$2")"; }
for size in 200 1200; do for n in 1 64; do
  row "CPU µs/relayed pkt, full speed (bursts), ${size} B, ${n} alloc" "${R[coturn,full,$size,$n]}" "${R[switchyard,full,$size,$n]}"
  row "CPU µs/relayed pkt, 20k pps (interleaved), ${size} B, ${n} alloc" "${R[coturn,steady,$size,$n]}" "${R[switchyard,steady,$size,$n]}"
done; done
for size in 200 1200; do
  row "CPU µs/relayed pkt, 20k pps (spread, 100 µs ticks), ${size} B, 64 alloc" "${R[coturn,spread,$size]}" "${R[switchyard,spread,$size]}"
done
for size in 200 1200; do
  row "  one relay thread each: 20k pps (interleaved), ${size} B, 64 alloc" "${R[coturn,t1steady,$size]}" "${R[switchyard,t1steady,$size]}"
  row "  one relay thread each: 20k pps (spread), ${size} B, 64 alloc" "${R[coturn,t1spread,$size]}" "${R[switchyard,t1spread,$size]}"
done
row "CPU µs/relayed pkt, full speed (GSO bursts), 1200 B, 64 alloc" "${R[coturn,fullgso]}" "${R[switchyard,fullgso]}"
row "p99 one-way latency µs, 20k pps, 200 B, 64 alloc" "${R[coturn,steadyp99,200,64]}" "${R[switchyard,steadyp99,200,64]}"
row "max relayed pps at < 0.1 % loss (sendmmsg bursts)" "${R[coturn,maxpps]}" "${R[switchyard,maxpps]}"
row "max relayed pps at < 0.1 % loss (GSO bursts, as NIC GRO)" "${R[coturn,maxppsgso]}" "${R[switchyard,maxppsgso]}"
row "p99 one-way µs at half max load, through the relay" "${R[coturn,halfp99]}" "${R[switchyard,halfp99]}"
row "  same load sent direct (no relay: machine floor)" "${R[coturn,directp99]}" "${R[switchyard,directp99]}"
row "  p99 added by the relay (difference)" "${R[coturn,addedp99]}" "${R[switchyard,addedp99]}"
row "  p99 added at the same load (coturn's half max)" "${R[coturn,samep99]}" "${R[switchyard,samep99]}"
row "authenticated allocations / s" "${R[coturn,allocs]}" "${R[switchyard,allocs]}"
row "  server CPU µs per allocation (Allocate 401+200, Refresh 0)" "${R[coturn,allocus]}" "${R[switchyard,allocus]}"
row "RSS bytes per idle allocation" "${R[coturn,rss]}" "${R[switchyard,rss]}"
row "loss % under unauthenticated flood" "${R[coturn,floodloss]}" "${R[switchyard,floodloss]}"
row "max reply/request size (amplification)" "${R[coturn,floodratio]}" "${R[switchyard,floodratio]}"
