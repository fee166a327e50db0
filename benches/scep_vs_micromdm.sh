#!/usr/bin/env bash
# SCEP PKCSReq -> CertRep, side by side: this crate's example server (aws-lc,
# SQLite store) and micromdm's Go `scepserver` (Debian package `scep`), both
# with an RSA-2048 CA, both on 127.0.0.1 inside a private network namespace
# (`unshare -n`, only `lo` up: scepserver listens on every address). One load
# client (`examples/scep_load.rs`) sends fresh PKCSReqs (own key, CN,
# transactionID and nonce each; keys generated before the run) alternating
# between the two in chunks, sequentially and with 2 clients, and prints
# requests/s, p50/p99 and the ratio. Also prints the example server's resident
# memory before and after the runs (VmRSS, VmHWM).
#
#   benches/scep_vs_micromdm.sh [REQUESTS_PER_SERVER] [CHUNK]
#
# Defaults: 400 requests per server and mode, in chunks of 100. Shorter
# chunks let one server's leftover work (Go's garbage collector finishing
# after micromdm's chunk) run inside the other's timed window: with chunks of
# 25 our 2-client rate measured 1 465-1 688 req/s side by side against
# 1 800-1 836 req/s alone; with chunks of 100, 1 896-2 014 (micromdm's own
# rate did not change with the chunk: 362-407 vs 401-420 req/s).
#
# Every answer is checked (CertRep answering the transactionID and nonce);
# `failed=` counts FAILURE CertReps. Server logs are kept in
# target/scep-vs-micromdm-logs/.
# RSA_PERMITS=N passes `--rsa-permits N` to the example server (default: its
# own, one fewer than the cores, plus one burst permit used only while nobody
# waits and at most twice the cores' connections are open).
# Needs root (unshare), openssl, the `scep` package (apt-get install scep).
set -euo pipefail
cd "$(dirname "$0")/.."

requests=${1:-400}
chunk=${2:-100}
command -v scepserver >/dev/null || { echo "scepserver missing: apt-get install scep" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl missing: apt-get install openssl" >&2; exit 1; }

cargo build --release --features aws-lc --example server --example scep_load >&2
bin=${CARGO_TARGET_DIR:-target}/release/examples

work=$(mktemp -d /tmp/scep-vs.XXXXXX)
logs=${CARGO_TARGET_DIR:-target}/scep-vs-micromdm-logs
mkdir -p "$logs"
trap 'cp "$work"/*.log "$logs"/ 2>/dev/null || true; rm -rf "$work"' EXIT

# One client key per request: 2 servers x (sequential + 2 clients).
echo "generating $((4 * requests)) RSA-2048 client keys (not timed)..." >&2
for mode in seq par; do
  mkdir -p "$work/keys-$mode"
  seq -w 1 $((2 * requests)) | xargs -P "$(nproc)" -I{} \
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/keys-$mode/{}.pem" 2>/dev/null
done

challenge=$(openssl rand -hex 16)
printf '%s' "$challenge" > "$work/challenge"

permits=${RSA_PERMITS:+--rsa-permits $RSA_PERMITS}
export work requests chunk challenge bin permits
unshare -n bash -euo pipefail -c '
  ip link set lo up
  scepserver ca -init -keySize 2048 -depot "$work/depot" >/dev/null 2>&1
  scepserver -depot "$work/depot" -port 18080 -challenge "$challenge" -allowrenew 0 \
    >"$work/micromdm.log" 2>&1 &
  micromdm=$!
  "$bin/server" --http --listen 127.0.0.1:18443 --data "$work/data" \
    --scep-static-challenge-file "$work/challenge" $permits >"$work/ours.log" 2>&1 &
  ours=$!
  trap "kill $micromdm $ours 2>/dev/null || true" EXIT
  for _ in $(seq 1 100); do
    if grep -q "^listening on" "$work/ours.log" 2>/dev/null &&
       bash -c "exec 3<>/dev/tcp/127.0.0.1/18080" 2>/dev/null; then break; fi
    sleep 0.2
  done
  grep -q "^listening on" "$work/ours.log" || { cat "$work/ours.log" >&2; exit 1; }
  rss() { grep -E "^(VmRSS|VmHWM)" /proc/$ours/status | tr -s " \t" " " | tr "\n" " "; }
  echo "example server before the runs: $(rss)"
  for mode in seq par; do
    clients=1; [ "$mode" = par ] && clients=2
    "$bin/scep_load" --a ours=http://127.0.0.1:18443/scep --b micromdm=http://127.0.0.1:18080/scep \
      --keys "$work/keys-$mode" --challenge "$challenge" \
      --requests "$requests" --chunk "$chunk" --clients "$clients"
  done
  echo "example server after the runs:  $(rss)"
'
