#!/usr/bin/env bash
# pq-push-readers: wall clock of `mdrop push` to a matter with N readers
# (1 attorney + N-1 paralegals), hybrid age keys vs classic ones, against
# real release mdropd servers on 127.0.0.1 (one per key type, both running):
# a 1 KB file and a 1 GiB file, ROUNDS times each (default 6), hybrid and
# classic pushes interleaved, which goes first alternating. Prints the wall clock, the client's CPU time
# and the server's CPU time of each push, their medians and the median of
# the per-round differences.
#
#   cargo build --release -p matterdrop -p matterdrop-server && bash benches/pq-push-readers.sh 50 6
#
# Needs python3 (to read the JSON output), GNU time and about (2 × ROUNDS + 2) GiB in $TMPDIR.
set -euo pipefail
READERS=${1:-50}
ROUNDS=${2:-6}
BIN=${MDROP_BIN_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
ROOT=$(mktemp -d "${TMPDIR:-/tmp}/pq-push-readers.XXXX")
trap 'rm -rf "$ROOT"' EXIT
json() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }

setup() { # $1: "" or --classic; $2: folder
  local D=$2; mkdir -p "$D"
  "$BIN/mdropd" serve --listen 127.0.0.1:0 --json --data "$D/data" > "$D/out.json" 2> "$D/mdropd.log" &
  echo $! > "$D/pid"
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
  echo "$U0" > "$D/pusher"
}

push() { # $1: label; $2: folder; $3: file
  local s e a b
  a=$(awk '{print $14 + $15}' "/proc/$(cat "$2/pid")/stat")
  s=$(date +%s.%N)
  /usr/bin/time -o "$ROOT/cpu" -f "%U %S" "$BIN/mdrop" --json --home "$(cat "$2/pusher")" push M-1 "$ROOT/$3.bin" --task drafting > /dev/null 2>&1
  e=$(date +%s.%N)
  b=$(awk '{print $14 + $15}' "/proc/$(cat "$2/pid")/stat")
  # wall s, client CPU s, server CPU s
  echo "$1 $3 $(python3 -c "print(f'{$e-$s:.3f}')") $(awk '{printf "%.2f", $1 + $2}' "$ROOT/cpu") $(python3 -c "print(f'{($b-$a)/$(getconf CLK_TCK):.2f}')")"
}

setup "" "$ROOT/hybrid"
setup --classic "$ROOT/classic"
head -c 1000 /dev/urandom > "$ROOT/small.bin"
head -c 1073741824 /dev/urandom > "$ROOT/big.bin"
{
  for r in $(seq "$ROUNDS"); do
    for f in small big; do
      # ABBA: which key type goes first alternates, so that neither always
      # meets the page cache and disk as the other one left them.
      if [ $((r % 2)) = 1 ]; then
        push hybrid "$ROOT/hybrid" $f
        push --classic "$ROOT/classic" $f
      else
        push --classic "$ROOT/classic" $f
        push hybrid "$ROOT/hybrid" $f
      fi
    done
  done
} | tee "$ROOT/times.txt"
for k in hybrid classic; do kill "$(cat "$ROOT/$k/pid")"; done
wait 2> /dev/null || true
python3 - "$ROOT/times.txt" "$READERS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def col(k, f, i):
    return [float(r[i]) for r in rows if r[0] == k and r[1] == f]
for f, what in (("small", "1 KB"), ("big", "1 GiB")):
    out = []
    for i, name, unit in ((2, "wall", "ms"), (3, "client CPU", "ms"), (4, "server CPU", "ms")):
        h, c = col("hybrid", f, i), col("--classic", f, i)
        d = statistics.median(a - b for a, b in zip(h, c))
        out.append(f"{name} hybrid {statistics.median(h):.3f} s, classic {statistics.median(c):.3f} s, "
                   f"hybrid adds {1000 * d:.0f} {unit}")
    print(f"push of {what} to {sys.argv[2]} readers (medians; 'adds' is the median of the per-round differences):")
    for o in out:
        print("  " + o)
PY
echo "reproduce: cargo build --release -p matterdrop -p matterdrop-server && bash benches/pq-push-readers.sh $READERS $ROUNDS"
