"""XdpDatapath implements the Datapath protocol (checked by mypy here and at run time)."""

from __future__ import annotations

import inspect

from ftagent.bpf.loader import XdpDatapath
from ftagent.datapath import Datapath


def as_datapath(dp: XdpDatapath) -> Datapath:
    return dp  # mypy --strict fails here if the protocol is not implemented


def test_every_protocol_member_is_implemented_with_the_same_parameters() -> None:
    members = [n for n in vars(Datapath) if not n.startswith("_")]
    assert members
    for name in members:
        proto = inspect.getattr_static(Datapath, name)
        impl = inspect.getattr_static(XdpDatapath, name)
        if isinstance(proto, property):
            assert isinstance(impl, property), name
            continue
        assert list(inspect.signature(impl).parameters) == list(
            inspect.signature(proto).parameters
        ), name
