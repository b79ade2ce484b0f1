"""The control plane's sampling overrides: what the agent's sampling targets become, and
which overrides it refuses (checked like the config: attack >= idle)."""

from __future__ import annotations

import pytest

from ftagent.config import ConfigError, decode
from ftagent.orders.overrides import effective_sampling
from ftcontract.agent_api import Sampling

CAPTURE = decode(
    """
[capture]
idle_samples_per_s = 40
attack_samples_per_s = 1500
"""
).capture


def test_none_keeps_the_configs_values() -> None:
    assert effective_sampling(CAPTURE, Sampling()) == (40, 1500)


def test_each_value_overrides_its_own_target() -> None:
    assert effective_sampling(CAPTURE, Sampling(idle_samples_per_s=0)) == (0, 1500)
    assert effective_sampling(CAPTURE, Sampling(attack_samples_per_s=4000)) == (40, 4000)
    both = Sampling(idle_samples_per_s=200, attack_samples_per_s=200)
    assert effective_sampling(CAPTURE, both) == (200, 200)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        # attack below the config's idle rate
        (Sampling(attack_samples_per_s=10), "control.sampling.attack_samples_per_s"),
        # idle above the config's attack rate
        (Sampling(idle_samples_per_s=2000), "control.sampling.attack_samples_per_s"),
        (Sampling(idle_samples_per_s=500, attack_samples_per_s=100),
         "control.sampling.attack_samples_per_s"),
        (Sampling(idle_samples_per_s=-1), "control.sampling.idle_samples_per_s"),
        (Sampling(idle_samples_per_s=0, attack_samples_per_s=0),
         "control.sampling.attack_samples_per_s"),
    ],
)  # fmt: skip
def test_bad_overrides_are_refused_naming_the_key(overrides: Sampling, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        effective_sampling(CAPTURE, overrides)
    assert str(err.value).startswith(f"{key}: ")


def test_the_config_itself_is_checked_the_same_way() -> None:
    with pytest.raises(ConfigError, match=r"capture\.attack_samples_per_s"):
        decode("[capture]\nidle_samples_per_s = 100\nattack_samples_per_s = 50\n")
