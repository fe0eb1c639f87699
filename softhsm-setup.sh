#!/usr/bin/env bash
# Installs and prepares SoftHSM2 for hljca development, tests and CI. Idempotent: safe to run again.
#
# - installs softhsm2, opensc (pkcs11-tool), openssl, sqlite3, jq and curl (the `serve` tests)
#   with apt-get when missing;
# - installs postgresql when missing (the tests run a throwaway cluster of their own);
# - installs fonts-noto-cjk when missing: the Chinese font generated PNG seal pictures are set in
#   (hljca looks for /usr/share/fonts/opentype/noto/Noto{Serif,Sans}CJK-{Bold,Regular}.ttc) and
#   the portal's application-form PDF is drawn in, and the portal's pages render in the browser test;
# - installs chromium and chromium-driver when missing: the portal's browser test drives headless
#   Chromium through chromedriver (WebDriver);
# - creates a project-local SoftHSM2 configuration (.softhsm/softhsm2.conf) and token directory;
# - prints what to export.
set -euo pipefail

need=()
command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2)
command -v pkcs11-tool >/dev/null 2>&1 || need+=(opensc)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v curl >/dev/null 2>&1 || need+=(curl)
ls /usr/share/fonts/opentype/noto/Noto*CJK-*.ttc >/dev/null 2>&1 || need+=(fonts-noto-cjk)
# PostgreSQL: the tests start a throwaway cluster of their own (initdb + pg_ctl, Unix socket).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  echo "softhsm-setup: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

module=""
for m in /usr/lib/softhsm/libsofthsm2.so \
         /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
         /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so \
         /usr/local/lib/softhsm/libsofthsm2.so; do
  if [ -f "$m" ]; then module=$m; break; fi
done
[ -n "$module" ] || { echo "softhsm-setup: libsofthsm2.so not found after install" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
dir="$here/.softhsm"
mkdir -p "$dir/tokens"
chmod 700 "$dir" "$dir/tokens"
conf="$dir/softhsm2.conf"
if [ ! -f "$conf" ]; then
  cat >"$conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
  chmod 600 "$conf"
fi

echo "softhsm-setup: ready. To use this SoftHSM with hljca:" >&2
echo "export HLJCA_PKCS11_MODULE=$module"
echo "export SOFTHSM2_CONF=$conf"
