#!/usr/bin/env bash
# The whole suite, as README.md and .ci/run give it: every crate's tests (unit, property and
# end-to-end, SQLite) with the PostgreSQL and Chromium tests switched on, then the end-to-end
# flows of the counter, batch, engine, types, lifecycle, API and portal again on PostgreSQL.
# A plain `cargo test --workspace` needs only Rust and SoftHSM (it skips those, saying so).
# Extra arguments go to the first cargo test (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
export HLJCA_PG_TESTS=1 HLJCA_BROWSER_TESTS=1
cargo test --workspace --locked "$@"
HLJCA_TEST_DB=postgres cargo test --locked -p hljca --test e2e -- \
  apps:: batch:: bulk:: types:: lifecycle:: counter_rules:: engine:: api:: portal
