"""lab.napitime: the victim interface's NAPI time, from raw tracepoints, with the
running kernel's struct offsets read from its BTF (the lab's XDP program makes the
victim veth run NAPI; only its polls are counted)."""

from __future__ import annotations

import shutil

import pytest

from lab.collateral import CollateralLab
from lab.napitime import NapiTime, member_offset
from lab.netns import LabError, enter_netns
from lab.trafgen import run_flood
from tests.capability import require, require_root

pytestmark = [pytest.mark.kernel, pytest.mark.lab]

FRAMES = 5000


def test_offsets_come_from_the_running_kernel() -> None:
    require(shutil.which("bpftool") is not None, "bpftool")
    assert member_offset("napi_struct", "dev") > 0
    with pytest.raises(LabError, match="no member 'no_such_member'"):
        member_offset("napi_struct", "no_such_member")


def test_counts_the_frames_and_time_of_the_victims_polls_only() -> None:
    require_root()
    require(shutil.which("trafgen") is not None, "trafgen (netsniff-ng)")
    from bcc import BPF

    from ftagent.bpf.headers import use_kernel_headers

    use_kernel_headers()
    xdp = BPF(text="int pass_all(struct xdp_md *ctx) { return XDP_PASS; }")
    try:
        with CollateralLab.create() as lab:
            with enter_netns(lab.victim_ns):
                xdp.attach_xdp(lab.victim_if, xdp.load_func("pass_all", BPF.XDP), 0)
            with NapiTime.attach(lab.victim_if) as victim:
                before = victim.read()
                res = run_flood(lab, "udp_flood", packets=FRAMES, pps=10_000, timeout_s=20)
                got = victim.read() - before
                assert res.sent == FRAMES
                # every frame went through the victim's polls (a few of the hosts' own
                # neighbour discovery too; no other interface's, though the machine's
                # other labs poll theirs meanwhile), and they took time
                assert FRAMES <= got.frames <= FRAMES + 50, got
                assert got.polls > 0 and got.ns > 0
    finally:
        xdp.cleanup()
