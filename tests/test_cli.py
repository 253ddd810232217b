"""Entry-point helpers: the huge-page malloc re-exec, the XLA:CPU scheduler flag."""

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


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_reexecs_once_with_hugepage_malloc_keeping_arguments():
  assert _run({}) == "glibc.malloc.hugetlb=1 ['a', '--b=1']"
  assert _run({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}) == (
      "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1 ['a', '--b=1']")


def test_opt_out_leaves_the_process_alone():
  assert _run({"P2P_NO_MALLOC_TUNING": "1"}) == "None ['a', '--b=1']"


PRINT_XLA_FLAGS = ("from p2p import cli; cli.use_memory_scheduler(); import os; "
                   "print(os.environ['XLA_FLAGS'])")


@pytest.mark.parametrize("given,want", [
    (None, "--xla_cpu_enable_concurrency_optimized_scheduler=false"),
    ("--xla_force_host_platform_device_count=2",
     "--xla_force_host_platform_device_count=2 "
     "--xla_cpu_enable_concurrency_optimized_scheduler=false"),
    ("--xla_cpu_enable_concurrency_optimized_scheduler=true",  # the user's choice wins
     "--xla_cpu_enable_concurrency_optimized_scheduler=true")])
def test_memory_scheduler_is_added_to_xla_flags_unless_set(given, want):
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  if given is not None:
    env["XLA_FLAGS"] = given
  out = subprocess.run([sys.executable, "-c", PRINT_XLA_FLAGS], check=True, capture_output=True,
                       text=True, env=env).stdout.strip()
  assert out == want
