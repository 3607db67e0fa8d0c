"""The Foundation release: building it once, and giving each lab host its own copy.

The build lives in ``lab/foundation/_build/prod/rel/foundation`` and is redone only when the
sources (``mix.exs``, ``lib/``, ``rel/``, ``config/``) differ from those of the last build. A
host's copy gets its own node name, ``RELEASE_TMP``, epmd port and cookie, written to
``release/node.env`` and ``release/releases/COOKIE``; the release's ``env.sh`` reads them, so
``bin/foundation rpc ...`` needs no environment from the caller.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import secrets
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from .account import LabUser, chown_tree
from .errors import LabError
from .model import HostPaths

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "lab" / "foundation"
_SOURCE_PARTS = ("mix.exs", "lib", "rel", "config")
_STAMP = ".rollout-lab-build"

#: The node's code loading mode: interactive keeps a node at ~40 MiB RSS instead of ~100.
RELEASE_MODE = "interactive"

_STUB = r"""#!/bin/sh
# Stand-in for bin/foundation on an SSH-only lab host: there is no node behind it.
# `rpc EXPR` answers rollout's console protocol (templates/console) from a flag file next to
# the release, so deploy, rollback and status run end to end over SSH and cost no VM: it
# decodes the base64 payload after `rollout_payload =`, stores the `set` lines (apply), reads
# back every `allow` flag (false if never set, like the release's defaults) and gives every
# `metric` a healthy value (null if unknown) unless `metrics.override` (lines `metric value`,
# or `metric level noise` for a level plus uniform noise drawn on every call; written by the
# lab's `set_metrics` and `set_metric_series`) says otherwise, then prints one
# `ROLLOUT-RESULT/1 {json}` line.
# An expression without a payload prints nothing. `eval` prints nothing; `pid` prints this
# shell's pid; `version` names the stub. Everything exits 0.
state="${0%/*}/../flags.state"
over="${0%/*}/../metrics.override"
case "${1:-}" in
  version) echo "foundation stub" ;;
  pid) echo "$$" ;;
  rpc)
    payload=$(printf '%s\n' "${2:-}" |
      sed -n '/^rollout_payload =$/{n;s/^ *"\([A-Za-z0-9+\/=]*\)"$/\1/p;q;}')
    [ -n "$payload" ] || exit 0
    case "$2" in
      *get_deployment_health*) kind=health ;;
      *rollout_errors*) kind=apply ;;
      *) kind=read ;;
    esac
    printf '%s' "$payload" | base64 -d | awk -v kind="$kind" -v state="$state" -v over="$over" \
      -v seed="$(od -An -N4 -tu4 /dev/urandom)" -v node="@NODE@" '
      BEGIN {
        ok["error_rate"] = "0.0"; ok["restart_frequency"] = "0"
        ok["message_delivery_success"] = "100.0"; ok["state_recovery_success"] = "100.0"
        ok["average_response_time"] = "10"
        while ((getline line < state) > 0) { split(line, f, " "); flag[f[1]] = f[2] }
        close(state)
        srand(seed)
        while ((getline line < over) > 0) {
          n = split(line, f, " ")
          if (f[1] !~ /^[a-z][a-z0-9_]*$/ || f[2] !~ /^(-?[0-9]+(\.[0-9]+)?|null)$/) continue
          ok[f[1]] = f[2]
          if (n == 3 && f[2] != "null" && f[3] ~ /^[0-9]+(\.[0-9]+)?$/)
            ok[f[1]] = sprintf("%.6f", f[2] + f[3] * (2 * rand() - 1))
        }
        close(over)
      }
      $2 !~ /^[a-z][a-z0-9_]*$/ { next }
      $1 == "allow" { allow[++na] = $2 }
      $1 == "metric" { metric[++nm] = $2 }
      $1 == "set" && $3 ~ /^(true|false|[0-9]+)$/ { flag[$2] = $3 }
      END {
        if (kind == "apply") {
          printf "" > (state ".new")
          for (k in flag) print k, flag[k] > (state ".new")
          close(state ".new")
        }
        out = "{\"node\":\"" node "\"" (kind == "apply" ? ",\"errors\":{}" : "") ",\"flags\":{"
        for (i = 1; i <= na; i++) {
          v = allow[i] in flag ? flag[allow[i]] : "false"
          out = out (i > 1 ? "," : "") "\"" allow[i] "\":" v
        }
        out = out "}"
        if (kind == "health") {
          out = out ",\"metrics\":{"
          for (i = 1; i <= nm; i++) {
            v = metric[i] in ok ? ok[metric[i]] : "null"
            out = out (i > 1 ? "," : "") "\"" metric[i] "\":" v
          }
          out = out "}"
        }
        print "ROLLOUT-RESULT/1 " out "}"
      }'
    [ "$kind" != apply ] || mv -f "$state.new" "$state"
    ;;
  *) : ;;
esac
exit 0
"""

_STUB_RESTART = """#!/bin/sh
# SSH-only lab host: there is no node to restart.
echo "restarted: stub host, no node"
"""


def source_digest(source: Path = SOURCE) -> str:
    """A digest of every source file that goes into the release."""
    digest = hashlib.sha256()
    for part in _SOURCE_PARTS:
        top = source / part
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            digest.update(str(path.relative_to(source)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def built_release(source: Path = SOURCE) -> Path:
    """Where ``mix release`` puts the release."""
    return source / "_build" / "prod" / "rel" / "foundation"


def build(log: Callable[[str], None], source: Path = SOURCE) -> tuple[Path, str]:
    """Build the release if its sources changed; return its directory and build id."""
    if not (source / "mix.exs").is_file():
        raise LabError(f"no Elixir project at {source}", hint="restore lab/foundation from git")
    target = built_release(source)
    (source / "_build").mkdir(exist_ok=True)
    with open(source / "_build" / ".rollout-lab.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        digest = source_digest(source)
        stamp = target / _STAMP
        if (
            (target / "bin" / "foundation").is_file()
            and stamp.is_file()
            and stamp.read_text().strip() == digest
        ):
            return target, digest
        log(f"building the Foundation release ({source})")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("MIX_", "HEX_"))},
            "MIX_ENV": "prod",
            "HEX_OFFLINE": "1",
            "LANG": "C.UTF-8",
        }
        env.setdefault("HOME", "/root")
        proc = subprocess.run(
            ["mix", "release", "--overwrite"],
            cwd=source,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0 or not (target / "bin" / "foundation").is_file():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise LabError(
                f"`MIX_ENV=prod mix release --overwrite` failed in {source}:\n{tail}",
                hint="fix the Elixir sources, then run `invoke lab.up` again",
            )
        stamp.write_text(digest + "\n")
    return target, digest


def installed_build(paths: HostPaths) -> str | None:
    """The build id of a host's release copy, or None if it has none."""
    try:
        return paths.build_id.read_text().strip()
    except FileNotFoundError:
        return None


def install(
    build_dir: Path, digest: str, paths: HostPaths, user: LabUser, *, node: str, epmd_port: int
) -> None:
    """Give a host a fresh copy of the release with its own node name, tmp dir and cookie."""
    staging = paths.root / "release.new"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(build_dir, staging, symlinks=True, ignore=shutil.ignore_patterns(_STAMP))
    shutil.rmtree(paths.release, ignore_errors=True)
    staging.rename(paths.release)
    paths.tmp.mkdir(parents=True, exist_ok=True)
    paths.node_env.write_text(
        "# Written by rollout_lab for this copy; read by releases/*/env.sh.\n"
        f"export RELEASE_NODE={shlex.quote(node)}\n"
        f"export RELEASE_TMP={shlex.quote(str(paths.tmp))}\n"
        f"export RELEASE_MODE={RELEASE_MODE}\n"
        f"export ERL_EPMD_PORT={int(epmd_port)}\n"
        "# The lab starts epmd itself; without this every rpc client would fork one more.\n"
        'export ELIXIR_ERL_OPTIONS="-start_epmd false"\n'
    )
    paths.cookie.write_text(secrets.token_hex(20).upper())
    paths.cookie.chmod(0o400)
    paths.build_id.write_text(digest + "\n")
    chown_tree(paths.release, user)
    chown_tree(paths.tmp, user)


def install_stub(paths: HostPaths, user: LabUser) -> None:
    """Give an SSH-only host a tiny ``bin/foundation`` (a console stub) and ``restart.sh``."""
    paths.release_bin.parent.mkdir(parents=True, exist_ok=True)
    stub_node = f"stub_{paths.root.name}@127.0.0.1".encode()
    paths.release_bin.write_text(_STUB.replace("@NODE@", base64.b64encode(stub_node).decode()))
    paths.release_bin.chmod(0o755)
    paths.restart_script.write_text(_STUB_RESTART)
    paths.restart_script.chmod(0o755)
    chown_tree(paths.release, user)
