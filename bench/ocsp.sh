#!/usr/bin/env bash
# OCSP benchmark (not a test): `hljca serve` against `openssl ocsp -index … -port …` answering
# the same certificates, loaded by the same bounded load generator on 127.0.0.1.
#
#   bench/ocsp.sh            # 40 certificates, 8 client threads, 10 s per run
#   CERTS=100 THREADS=16 SECONDS_PER_RUN=20 bench/ocsp.sh
#
# Builds the release binary and server/examples/ocsp_load.rs, makes a throw-away CA on a
# SoftHSM2 token in a temporary directory (softhsm-setup.sh must have run), issues CERTS
# certificates, revokes one in four, and runs each responder in turn. Every run is bounded
# (SECONDS_PER_RUN and MAX_PER_RUN requests); everything started here is stopped at the end.
# Results are printed as a Markdown table for BENCHMARKS.md.
set -euo pipefail

CERTS=${CERTS:-40}
THREADS=${THREADS:-8}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
MAX_PER_RUN=${MAX_PER_RUN:-2000000}

here=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
echo "bench: building (release)" >&2
cargo build --quiet --release --manifest-path "$here/Cargo.toml" -p hljca
cargo build --quiet --release --manifest-path "$here/Cargo.toml" -p hljca-server --example ocsp_load
hljca=$CARGO_TARGET_DIR/release/hljca
load=$CARGO_TARGET_DIR/release/examples/ocsp_load

work=$(mktemp -d)
pids=()
cleanup() {
  exec 2>/dev/null # no job-control chatter about the servers stopped here
  # `openssl ocsp -multi` forks workers: stop the children of what was started here, then it.
  for p in "${pids[@]}"; do
    pkill -KILL -P "$p" 2>/dev/null || true
    kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/tokens" "$work/req" "$work/req-nonce"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$work/tokens" >"$work/softhsm2.conf"
export SOFTHSM2_CONF=$work/softhsm2.conf HLJCA_HOME=$work/home CI=true
export HLJCA_USER_PIN=12345678 HLJCA_SO_PIN=87654321 HLJCA_CA_PIN=11223344
export HLJCA_OPERATOR_TOKEN=hljca-admin HLJCA_OPERATOR_PIN=12345678
unset HLJCA_PKCS11_MODULE HLJCA_CA_PASSPHRASE HLJCA_NOW

echo "bench: a CA and $CERTS certificates" >&2
"$hljca" -q init >/dev/null
index=$work/index.txt
: >"$index"
for i in $(seq 1 "$CERTS"); do
  "$hljca" -q token init --label "u$i" >/dev/null
  out=$("$hljca" -q issue --type medical --token "u$i" \
    --applicant "$here/examples/applicants/medical.json" --json)
  serial=$(printf '%s' "$out" | jq -r '.certificates[0].serial')
  pem=$(printf '%s' "$out" | jq -r '.certificates[0].pem')
  end=$(date -u -d "$(openssl x509 -in "$pem" -noout -enddate | cut -d= -f2)" +%y%m%d%H%M%SZ)
  upper=$(printf '%s' "$serial" | tr a-f A-F)
  if [ $((i % 4)) -eq 0 ]; then
    "$hljca" -q revoke "$serial" --reason keyCompromise >/dev/null
    printf 'R\t%s\t%s,keyCompromise\t%s\tunknown\t/CN=%s\n' \
      "$end" "$(date -u +%y%m%d%H%M%SZ)" "$upper" "$serial" >>"$index"
  else
    printf 'V\t%s\t\t%s\tunknown\t/CN=%s\n' "$end" "$upper" "$serial" >>"$index"
  fi
  issuing=$HLJCA_HOME/ca/issuing.pem
  openssl ocsp -issuer "$issuing" -cert "$pem" -no_nonce -reqout "$work/req/$i.der" 2>/dev/null
  openssl ocsp -issuer "$issuing" -cert "$pem" -reqout "$work/req-nonce/$i.der" 2>/dev/null
done

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Waits for openssl's `ACCEPT` line. Never probe its port with a bare connect: OpenSSL 3.0's
# responder spins forever on a connection closed before a request, and answers no one else.
wait_accept() {
  for _ in $(seq 1 100); do
    grep -q ACCEPT "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench: openssl ocsp did not start ($1)" >&2
  exit 1
}

# hljca serve (CA keys on SoftHSM; the delegated OCSP signer key too).
"$hljca" -q serve --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
pids+=($!)
for _ in $(seq 1 300); do [ -s "$work/serve.out" ] && break; sleep 0.1; done
hport=$(head -1 "$work/serve.out" | sed 's/.*://')
[ -n "$hport" ] || { echo "bench: hljca serve did not start" >&2; cat "$work/serve.err" >&2; exit 1; }

# openssl ocsp with a P-256 responder key of its own (the same signature work per answer).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench-responder \
  -days 2 -keyout "$work/resp.key" -out "$work/resp.pem" 2>/dev/null
oport=$(free_port)
openssl ocsp -index "$index" -port "$oport" -rsigner "$work/resp.pem" -rkey "$work/resp.key" \
  -CA "$HLJCA_HOME/ca/issuing.pem" -nmin 60 >"$work/openssl.log" 2>&1 &
pids+=($!)
wait_accept "$work/openssl.log"
mport=$(free_port)
openssl ocsp -index "$index" -port "$mport" -rsigner "$work/resp.pem" -rkey "$work/resp.key" \
  -CA "$HLJCA_HOME/ca/issuing.pem" -nmin 60 -multi 2 >"$work/openssl-multi.log" 2>&1 &
pids+=($!)
wait_accept "$work/openssl-multi.log"

run() { # name port reqdir extra-flags...
  local name=$1 port=$2 dir=$3
  shift 3
  "$load" --target "127.0.0.1:$port" --path /ocsp --threads "$THREADS" --seconds 1 --max 2000 \
    "$@" "$dir"/*.der >/dev/null
  local r
  r=$("$load" --target "127.0.0.1:$port" --path /ocsp --threads "$THREADS" \
    --seconds "$SECONDS_PER_RUN" --max "$MAX_PER_RUN" "$@" "$dir"/*.der)
  printf '| %s | %s | %s | %s | %s | %s |\n' "$name" \
    "$(jq -r .per_second <<<"$r")" "$(jq -r .p50_ms <<<"$r")" "$(jq -r .p99_ms <<<"$r")" \
    "$(jq -r .answers <<<"$r")" "$(jq -r .errors <<<"$r")"
}

echo "bench: $THREADS client threads, ${SECONDS_PER_RUN}s per run, $(nproc) cores" >&2
echo "| responder, requests | answers/s | p50 ms | p99 ms | answers | errors |"
echo "|---|---:|---:|---:|---:|---:|"
run "hljca serve, no nonce, keep-alive" "$hport" "$work/req"
run "hljca serve, no nonce, new connection each" "$hport" "$work/req" --new-connection
run "openssl ocsp, no nonce" "$oport" "$work/req" --new-connection
run "openssl ocsp -multi 2, no nonce" "$mport" "$work/req" --new-connection
run "hljca serve, nonce (signed each time), keep-alive" "$hport" "$work/req-nonce"
run "hljca serve, nonce, new connection each" "$hport" "$work/req-nonce" --new-connection
run "openssl ocsp, nonce" "$oport" "$work/req-nonce" --new-connection
