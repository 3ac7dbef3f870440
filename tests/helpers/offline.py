"""Run a command with every non-loopback connection impossible: a fresh network namespace.

Why a namespace and not a patched socket: the command under test (and every library it loads —
huggingface_hub, transformers, mlx-lm) runs unmodified in a subprocess that simply has no network
but ``lo``, so "nothing leaves the machine" is checked, not assumed. Needs root or unprivileged user
namespaces; tests skip with the reason when ``unshare`` is not permitted.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

import pytest

# Bring loopback up (a new namespace starts with it down) so local servers still work, then exec.
_INNER = 'ip link set lo up 2>/dev/null || true; exec "$@"'


@functools.lru_cache(maxsize=1)
def offline_unavailable() -> str | None:
    """None when commands can be run offline here, else why not."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    for prefix in (["unshare", "--net"], ["unshare", "--net", "--map-root-user"]):
        probe = subprocess.run([*prefix, "true"], capture_output=True, text=True)
        if probe.returncode == 0:
            return None
    return f"unshare --net is not permitted here ({probe.stderr.strip() or probe.returncode})"


@functools.lru_cache(maxsize=1)
def _prefix() -> tuple[str, ...]:
    if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0:
        return ("unshare", "--net")
    return ("unshare", "--net", "--map-root-user")


def run_offline(args: list[str], **kw) -> subprocess.CompletedProcess:
    """``subprocess.run(args, **kw)`` inside a new network namespace holding only ``lo``.

    Skips the calling test when namespaces are not permitted on this machine.
    """
    reason = offline_unavailable()
    if reason:
        pytest.skip(f"cannot forbid network access: {reason}")
    return subprocess.run([*_prefix(), "sh", "-c", _INNER, "sh", *map(str, args)], **kw)
