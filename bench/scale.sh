#!/usr/bin/env bash
# Issue 12 benchmark: bulk issuance from N PKCS#10 requests (batch rows with a `csr`) beside
# `openssl ca -batch -infiles` on the same requests, medians of RUNS runs, each on a fresh demo
# home; then `status` and `cert list --expiring-within 30d` on the result beside sqlite3 counts.
# Usage: bench/scale.sh [N=10000] [RUNS=3]   (run from the project root; builds release).
# Never part of CI's test command.
set -euo pipefail
N=${1:-10000}; RUNS=${2:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/hljca-bench-target}
cargo build --release --bin hljca -q
H="$CARGO_TARGET_DIR/release/hljca"
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
mkdir "$w/csr"
python3 - "$w/csr" "$N" <<'PY'
import sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
d, n = sys.argv[1], int(sys.argv[2])
for i in range(1, n + 1):
    k = ec.generate_private_key(ec.SECP256R1())
    r = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"req {i}")])).sign(k, hashes.SHA256())
    open(f"{d}/{i}.csr", "wb").write(r.public_bytes(serialization.Encoding.PEM))
PY
jq -c --argjson n "$N" '. as $a | range(1; $n + 1) | ($a + {external_id: ("BENCH-\(.)"), type: "medical", csr: ("csr/\(.).csr")})' examples/applicants/medical.json >"$w/bulk.jsonl"
ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ours=(); peer=()
for r in $(seq "$RUNS"); do
  # the peer: openssl ca, software P-256 key, index.txt
  o="$w/ossl$r"; mkdir -p "$o/new"; : >"$o/index.txt"; echo 01 >"$o/serial"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$o/ca.key" -subj "/CN=peer CA" -days 30 -out "$o/ca.pem" 2>/dev/null
  printf '[ca]\ndefault_ca=d\n[d]\ndir=%s\ndatabase=$dir/index.txt\nnew_certs_dir=$dir/new\nserial=$dir/serial\ncertificate=$dir/ca.pem\nprivate_key=$dir/ca.key\ndefault_md=sha256\ndefault_days=365\npolicy=p\nunique_subject=no\nx509_extensions=e\n[p]\ncommonName=supplied\n[e]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\nextendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' "$o" >"$o/ca.cnf"
  t0=$(date +%s%N); openssl ca -batch -notext -config "$o/ca.cnf" -out "$o/all.pem" -infiles "$w"/csr/*.csr >/dev/null 2>&1; t1=$(date +%s%N)
  peer+=("$(ms "$t0" "$t1")")
  # hljca: a fresh demo home (CA key on the SoftHSM CA token)
  home="$w/home$r"; "$H" demo --home "$home" --json >"$home.json" 2>/dev/null
  j="$home.json"
  export HLJCA_HOME="$home" SOFTHSM2_CONF=$(jq -r .softhsm2_conf "$j") HLJCA_PKCS11_MODULE=$(jq -r .pkcs11_module "$j")
  export HLJCA_CA_PIN=$(jq -r .ca_pin "$j") HLJCA_USER_PIN=$(jq -r .user_pin "$j")
  export HLJCA_OPERATOR_TOKEN=$(jq -r .operator_token "$j") HLJCA_OPERATOR_PIN=$(jq -r .operator_pin "$j")
  t0=$(date +%s%N); (cd "$w" && "$H" batch issue bulk.jsonl --json >/dev/null); t1=$(date +%s%N)
  ours+=("$(ms "$t0" "$t1")")
done
po=$(printf '%s\n' "${peer[@]}" | median); oo=$(printf '%s\n' "${ours[@]}" | median)
echo "csr issuance, $N P-256 requests: hljca batch ${oo} ms ($(( N * 1000 / (oo > 0 ? oo : 1) ))/s) | openssl ca -infiles ${po} ms ($(( N * 1000 / (po > 0 ? po : 1) ))/s) | runs: hljca ${ours[*]} / openssl ${peer[*]}"
# queries on the last home
q() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); ms "$s" "$e"; }
st=(); cl=(); sq=()
for r in $(seq "$RUNS"); do
  st+=("$(q "$H" status --json)")
  cl+=("$(q "$H" cert list --expiring-within 30d --json)")
  sq+=("$(q sqlite3 "$HLJCA_HOME/hljca.db" "SELECT status, count(*) FROM certificates GROUP BY status")")
done
echo "status: $(printf '%s\n' "${st[@]}" | median) ms | cert list --expiring-within 30d: $(printf '%s\n' "${cl[@]}" | median) ms | sqlite3 counts: $(printf '%s\n' "${sq[@]}" | median) ms"
sqlite3 "$HLJCA_HOME/hljca.db" "EXPLAIN QUERY PLAN SELECT serial FROM certificates WHERE status = 'issued' AND not_after > '2026' AND not_after <= '2027' ORDER BY id DESC LIMIT 1000"
