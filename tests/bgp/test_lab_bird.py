"""The BGP lab itself: a run killed before its cleanup leaves nothing behind for long."""

from __future__ import annotations

import subprocess

import pytest

from lab.bird import BgpLab, remove_stale
from lab.netns import NETNS_DIR, nsenter_argv

pytestmark = [pytest.mark.lab, pytest.mark.bgp]


def test_remove_stale_removes_dead_owners_namespaces_and_what_runs_inside(
    bgp_lab: BgpLab,
) -> None:
    from pyroute2 import netns

    dead = "bgprtr-999999999-1"  # no such pid
    netns.create(dead)
    leftover = subprocess.Popen(nsenter_argv(dead, ["sleep", "300"]))
    try:
        removed = remove_stale()
        assert removed == [dead]
        assert leftover.wait(10) == -9
        assert not (NETNS_DIR / dead).exists()
        # the live lab (this process's) is untouched, its BIRD still answers
        assert (NETNS_DIR / bgp_lab.router_ns).exists()
        assert bgp_lab.birdc("show", "status").returncode == 0
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()
        if (NETNS_DIR / dead).exists():
            netns.remove(dead)
