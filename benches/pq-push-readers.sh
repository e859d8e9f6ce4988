#!/usr/bin/env bash
# pq-push-readers: wall clock of `mdrop push` to a matter with N readers
# (1 attorney + N-1 paralegals), hybrid age keys vs classic ones, against a
# real release mdropd on 127.0.0.1: a 1 KB file and a 1 GiB file, 3 times
# each, per key type. Prints each time and the medians.
#
#   cargo build --release -p matterdrop -p matterdrop-server && bash benches/pq-push-readers.sh 50
#
# Needs python3 (to read the JSON output) and about 2.2 GiB in $TMPDIR.
set -euo pipefail
READERS=${1:-50}
BIN=${MDROP_BIN_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
ROOT=$(mktemp -d "${TMPDIR:-/tmp}/pq-push-readers.XXXX")
trap 'rm -rf "$ROOT"' EXIT
json() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }

run() { # $1: "" or --classic
  local D; D=$(mktemp -d "$ROOT/run.XXXX")
  "$BIN/mdropd" serve --listen 127.0.0.1:0 --json --data "$D/data" > "$D/out.json" 2> "$D/mdropd.log" &
  local SP=$!
  for _ in $(seq 100); do [ "$(wc -l < "$D/out.json")" -ge 2 ] && break; sleep 0.1; done
  local ADDR FP INV
  ADDR=$(sed -n 2p "$D/out.json" | json listen)
  FP=$(sed -n 1p "$D/out.json" | json fingerprint)
  INV=$(sed -n 1p "$D/out.json" | json invite)
  local M="$BIN/mdrop --json"
  $M --home "$D/admin" keygen > /dev/null
  $M --home "$D/admin" enroll "$ADDR" --fingerprint "$FP" --invite "$INV" --id admin@operator --name A > /dev/null
  $M --home "$D/admin" admin org create firm-a --kind firm > /dev/null
  for i in $(seq -w 0 $((READERS - 1))); do
    local I; I=$($M --home "$D/admin" admin invite --org firm-a | json invite)
    $M --home "$D/u$i" keygen $1 > /dev/null
    $M --home "$D/u$i" enroll "$ADDR" --fingerprint "$FP" --invite "$I" --id "u$i@firm-a" --name "u$i" > /dev/null
  done
  echo ack > "$D/ack.txt"
  local U0; U0="$D/u$(printf '%0*d' ${#READERS} 0)"
  $M --home "$U0" matter create M-1 --title T --ack-file "$D/ack.txt" --scope drafting > /dev/null 2>&1
  for i in $(seq -w 1 $((READERS - 1))); do
    local C; C=$($M --home "$D/u$i" whoami | json safety_code)
    $M --home "$U0" matter add M-1 "u$i@firm-a" --role paralegal --expect-code "$C" > /dev/null
  done
  head -c 1000 /dev/urandom > "$D/small.bin"
  head -c 1073741824 /dev/urandom > "$D/big.bin"
  for _ in 1 2 3; do
    for f in small big; do
      local s e; s=$(date +%s.%N)
      $M --home "$U0" push M-1 "$D/$f.bin" --task drafting > /dev/null 2>&1
      e=$(date +%s.%N)
      echo "${1:-hybrid} $f $(python3 -c "print(f'{$e-$s:.3f}')")"
    done
  done
  kill "$SP"; wait "$SP" 2> /dev/null || true
  rm -rf "$D"
}

{ run ""; run --classic; } | tee "$ROOT/times.txt"
python3 - "$ROOT/times.txt" "$READERS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {(k, f): statistics.median(float(t) for kk, ff, t in rows if (kk, ff) == (k, f))
       for k in ("hybrid", "--classic") for f in ("small", "big")}
for f, what in (("small", "1 KB"), ("big", "1 GiB")):
    h, c = med[("hybrid", f)], med[("--classic", f)]
    print(f"push of {what} to {sys.argv[2]} readers: hybrid {h:.3f} s, classic {c:.3f} s, "
          f"hybrid adds {1000 * (h - c):.0f} ms ({h / c:.3f}x)")
PY
echo "reproduce: cargo build --release -p matterdrop -p matterdrop-server && bash benches/pq-push-readers.sh $READERS"
