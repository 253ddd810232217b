"""Entry-point helpers: the huge-page malloc re-exec."""

import os
import platform
import subprocess
import sys

import pytest

PRINT_TUNABLES = ("from p2p import cli; cli.use_hugepage_malloc(); import os, sys; "
                  "print(os.environ.get('GLIBC_TUNABLES'), sys.argv[1:])")


def _run(env_extra: dict[str, str]) -> str:
  env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES",
                                                          "P2P_NO_MALLOC_TUNING")}
  return subprocess.run([sys.executable, "-c", PRINT_TUNABLES, "a", "--b=1"], check=True,
                        capture_output=True, text=True, env={**env, **env_extra}).stdout.strip()


@pytest.mark.slow
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_reexecs_once_with_hugepage_malloc_keeping_arguments():
  assert _run({}) == "glibc.malloc.hugetlb=1 ['a', '--b=1']"
  assert _run({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}) == (
      "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1 ['a', '--b=1']")


def test_opt_out_leaves_the_process_alone():
  assert _run({"P2P_NO_MALLOC_TUNING": "1"}) == "None ['a', '--b=1']"
