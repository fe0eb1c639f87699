#!/usr/bin/env bash
# Issue 12 benchmark at a million certificates: `status`, `cert list --expiring-within 30d`
# and `crl generate` on a home with 1,000,000 certificate rows, beside sqlite3 counts and
# `openssl ca -gencrl` on an index of the same 1,000,000 revoked serials. Medians of RUNS runs;
# wall time and peak RSS from /usr/bin/time. Never part of CI's test command.
# Usage: bench/million.sh [ROWS=1000000] [RUNS=3]   (run from the project root; builds release)
#
# The generator: a demo home (CA key on its SoftHSM CA token), then ROWS rows written into
# `certificates` by one SQL statement in one transaction — copies of the demo's identity
# certificate row (its DER and applicant JSON, so rows are full size) under fresh random
# serials, notAfter spread over the next 365 days, 5,000 USBKEYs — then revoked with the same
# UPDATE `hljca revoke` runs (store/crls.rs `revoke`), keyCompromise. The rows bypass the audit
# log (`audit verify` reports them as unbound), which is what a benchmark of the queries wants.
set -euo pipefail
ROWS=${1:-1000000}; RUNS=${2:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/hljca-bench-target}
cargo build --release --bin hljca -q
H="$CARGO_TARGET_DIR/release/hljca"
w=$(mktemp -d); [ -n "${KEEP:-}" ] && echo "keeping $w" || trap 'rm -rf "$w"' EXIT
# demo HOME: a fresh demo home, logged in as its operator
demo() {
  "$H" demo --home "$1" --json >"$1.json" 2>/dev/null
  local j="$1.json"
  export HLJCA_HOME="$1" SOFTHSM2_CONF=$(jq -r .softhsm2_conf "$j") HLJCA_PKCS11_MODULE=$(jq -r .pkcs11_module "$j")
  export HLJCA_CA_PIN=$(jq -r .ca_pin "$j") HLJCA_USER_PIN=$(jq -r .user_pin "$j")
  export HLJCA_OPERATOR_TOKEN=$(jq -r .operator_token "$j") HLJCA_OPERATOR_PIN=$(jq -r .operator_pin "$j")
}
# generate DB STATUS: ROWS rows in one statement, one transaction. Serials are a counter prefix
# and random bytes (unique, and appended in index order as hljca's own random serials are not:
# the generator measures the queries, not B-tree splits). STATUS revoked writes the columns
# `hljca revoke` writes (status, revoked_at, revocation_reason, updated_at).
generate() {
  local t0 t1; t0=$(date +%s%N)
  sqlite3 "$1" <<SQL
PRAGMA journal_mode = WAL;
PRAGMA cache_size = -1000000;
BEGIN IMMEDIATE;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $ROWS)
INSERT INTO certificates (serial, cert_type, role, subject, org_id, applicant_json, token_label,
    token_serial, key_id, status, not_before, not_after, der, created_at, updated_at, revoked_at,
    revocation_reason)
SELECT printf('%08x', i) || lower(hex(randomblob(8))), t.cert_type, 'identity', t.subject, t.org_id,
    t.applicant_json, 'bench-' || (i % 5000), printf('%016x', i % 5000), lower(hex(randomblob(16))),
    '$2', t.not_before, strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+' || (i % 365) || ' days'), t.der,
    t.created_at, t.created_at,
    CASE WHEN '$2' = 'revoked' THEN strftime('%Y-%m-%dT%H:%M:%SZ', 'now') END,
    CASE WHEN '$2' = 'revoked' THEN 'keyCompromise' END
FROM n, (SELECT * FROM certificates WHERE role = 'identity' ORDER BY id LIMIT 1) t;
COMMIT;
ANALYZE;
SQL
  t1=$(date +%s%N)
  echo "generator: $ROWS $2 rows in $(( (t1 - t0) / 1000000 )) ms; database $(du -h "$1" | cut -f1)"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# run CMD...: prints "ms rss_kb" of one run
run() { /usr/bin/time -f '%e %M' -o "$w/t" "$@" >/dev/null 2>"$w/err" || { cat "$w/err" >&2; exit 1; }; awk '{printf "%d %d\n", $1 * 1000, $2}' "$w/t"; }
measure() { # label CMD...
  local label=$1; shift; local ms=() kb=()
  for r in $(seq "$RUNS"); do read -r m k < <(run "$@"); ms+=("$m"); kb+=("$k"); done
  echo "$label: $(printf '%s\n' "${ms[@]}" | median) ms, $(( $(printf '%s\n' "${kb[@]}" | median) / 1024 )) MB (runs: ${ms[*]} ms)"
}
demo "$w/issued"; db="$HLJCA_HOME/hljca.db"; generate "$db" issued
measure "status --json" "$H" status --json
measure "cert list --expiring-within 30d --json --limit 1000" "$H" cert list --expiring-within 30d --json --limit 1000
measure "sqlite3 counts by status" sqlite3 "$db" "SELECT status, count(*) FROM certificates GROUP BY status"
echo "plan: $(sqlite3 "$db" "EXPLAIN QUERY PLAN SELECT status, count(*) FROM certificates GROUP BY status" | tr '\n' ' ')"
demo "$w/revoked"; db="$HLJCA_HOME/hljca.db"; generate "$db" revoked
measure "hljca crl generate" "$H" crl generate
ls -l "$HLJCA_HOME/crl/issuing.crl" | awk '{print "CRL file: " $5 " bytes"}'
openssl crl -inform DER -in "$HLJCA_HOME/crl/issuing.crl" -CAfile "$HLJCA_HOME/ca/issuing.pem" -noout 2>&1 | grep -q 'verify OK' && echo "openssl crl: verify OK"
# the peer: openssl ca -gencrl over an index of the same revoked serials (its own P-256 key)
o="$w/ossl"; mkdir -p "$o/new"; echo 01 >"$o/crlnumber"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$o/ca.key" -subj "/CN=peer CA" -days 30 -out "$o/ca.pem" 2>/dev/null
printf '[ca]\ndefault_ca=d\n[d]\ndir=%s\ndatabase=$dir/index.txt\nnew_certs_dir=$dir/new\ncrlnumber=$dir/crlnumber\ncertificate=$dir/ca.pem\nprivate_key=$dir/ca.key\ndefault_md=sha256\ndefault_crl_hours=24\nunique_subject=no\n' "$o" >"$o/ca.cnf"
sqlite3 -separator ' ' "$db" "SELECT upper(serial) FROM certificates WHERE status = 'revoked'" |
  awk -v OFS='\t' '{print "R", "271201000000Z", "261130000000Z,keyCompromise", $1, "unknown", "/CN=x"}' >"$o/index.txt"
measure "openssl ca -gencrl" openssl ca -gencrl -config "$o/ca.cnf" -out "$o/crl.pem"
