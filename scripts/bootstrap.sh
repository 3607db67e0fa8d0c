#!/usr/bin/env bash
# Installs what the project needs, idempotently: Debian packages (only the missing ones)
# and a virtualenv in .venv built from requirements.txt (rebuilt when it changes).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v elixir >/dev/null 2>&1 || need_pkgs+=(elixir)
[ -d /usr/lib/erlang/lib ] && ls /usr/lib/erlang/lib | grep -q '^erl_interface' || need_pkgs+=(erlang-dev)
[ -x /usr/sbin/sshd ] || need_pkgs+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need_pkgs+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || need_pkgs+=(openssh-client)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
command -v nft >/dev/null 2>&1 || need_pkgs+=(nftables)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3 python3-venv)
# headless Chromium opens the report pages in tests/page (docs/report-page.md); a machine that
# only runs rollouts (a CI runner) can skip it with ROLLOUT_SKIP_BROWSER=1
if [ "${ROLLOUT_SKIP_BROWSER:-0}" != 1 ]; then
  command -v chromium >/dev/null 2>&1 || command -v chromium-headless-shell >/dev/null 2>&1 \
    || need_pkgs+=(chromium)
fi
# The PostgreSQL ledger: server binaries for the test suite's throwaway cluster, libpq for psycopg.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_pkgs+=(postgresql)
[ -e /usr/lib/x86_64-linux-gnu/libpq.so.5 ] || ldconfig -p 2>/dev/null | grep -q "libpq.so.5 " || need_pkgs+=(libpq5)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bootstrap: missing Debian packages: ${need_pkgs[*]} (run as root, or install them)" >&2
    exit 2
  fi
  echo "bootstrap: installing ${need_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${need_pkgs[@]}" >/dev/null \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${need_pkgs[@]}" >/dev/null; }
fi

stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: building .venv from requirements.txt" >&2
  python3 -m venv .venv
  .venv/bin/pip install --disable-pip-version-check -q -r requirements.txt
  echo "$want" > "$stamp"
fi
