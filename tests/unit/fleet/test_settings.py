"""Fleet settings: the defaults with a group's overrides; off from the command line or
the environment; unknown floor names refused."""

from __future__ import annotations

import msgspec
import pytest

from control.cli import build_parser
from control.fleet.settings import FleetSettings, FleetThresholds


def test_overrides_apply_over_the_defaults() -> None:
    eff = FleetSettings(multiplier=4.0).effective(
        FleetThresholds(confirm_s=5, floors={"amp_pps": 100.0})
    )
    assert (eff.multiplier, eff.confirm_s, eff.cooldown_s) == (4.0, 5, 15.0)
    assert eff.floor_of("amp_53_pps") == eff.floor_of("amp_11211_pps") == 100.0
    assert eff.floor_of("pps") == 20_000.0


def test_off_from_the_flag_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_parser().parse_args(["serve", "--no-fleet"]).no_fleet is True
    assert build_parser().parse_args(["serve"]).no_fleet is False
    monkeypatch.setenv("FTCONTROL_FLEET", "off")
    assert FleetSettings.from_env().enabled is False
    monkeypatch.setenv("FTCONTROL_FLEET", "on")
    assert FleetSettings.from_env().enabled is True


def test_unknown_floor_and_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="floors"):
        FleetSettings(floors={"bogus": 1.0})
    with pytest.raises(msgspec.ValidationError, match="multiplier"):
        msgspec.convert({"multiplier": 0.5}, FleetThresholds)
    with pytest.raises(msgspec.ValidationError, match="typo"):
        msgspec.convert({"typo": 1}, FleetThresholds)
