from pathlib import Path

import pytest

from ftagent.cli import main
from ftagent.config import ConfigError, decode, encode, load

FULL = """
[agent]
interface = "eth1"
state_dir = "/tmp/x"
poll_interval_ms = 200
[control]
server = "https://control.example:8080"
api_key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
node_uuid = "6f1c2b7e-9d7a-4d55-8a43-3c1b9f0e2a11"
[mitigation]
mode = "dry_run"
allowlist = ["192.0.2.0/24", "2001:db8::1"]
[detection.floors]
syn_pps = 500
"""


def test_empty_file_gives_documented_defaults():
    cfg = decode("")
    assert cfg.agent.interface == "eth0"
    assert cfg.agent.state_dir == "/var/lib/ftagent"
    assert cfg.agent.poll_interval_ms == 100
    assert cfg.control is None
    assert cfg.mitigation.mode == "on"
    assert cfg.detection.confirm_windows == 3
    assert cfg.detection.cooldown_s == 10.0
    assert cfg.baseline.window_s == 300
    assert cfg.mitigation.rule_ttl_s == 300.0
    assert (cfg.http.listen, cfg.http.port) == ("127.0.0.1", 9477)


def test_full_file_and_round_trip():
    cfg = decode(FULL)
    assert cfg.agent.interface == "eth1"
    assert cfg.control is not None and cfg.control.server.startswith("https://")
    assert cfg.mitigation.mode == "dry_run"
    assert cfg.detection.floors.syn_pps == 500
    assert cfg.detection.floors.pps == 5000  # untouched default
    assert decode(encode(cfg)) == cfg


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[agent]\nbogus = 1", "agent.bogus: unknown key"),
        ("nonsense = 1", "nonsense: unknown key"),
        ("[agent]\npoll_interval_ms = 10", "agent.poll_interval_ms: Expected `int` >= 50"),
        ("[agent]\npoll_interval_ms = 5000", "agent.poll_interval_ms: Expected `int` <= 1000"),
        ('[mitigation]\nmode = "maybe"', "mitigation.mode: Invalid enum value 'maybe'"),
        ('[control]\nserver = "https://x"', "control.api_key: required key missing"),
        ("[detection.floors]\nsyn_pps = -1", "detection.floors.syn_pps: Expected `float` >= 0"),
        ('[mitigation]\nallowlist = ["10.0.0.0/33"]', "mitigation.allowlist[0]: '10.0.0.0/33'"),
        ("[agent]\ninterface = 3", "agent.interface: Expected `str`, got `int`"),
        ("[agent]\negress_learn_one_in = -1", "agent.egress_learn_one_in: Expected `int` >= 0"),
        ("[mitigation]\nnewcomer_share = 1.5", "mitigation.newcomer_share: Expected `float` <= 1"),
        ("[mitigation]\nnewcomer_min_pps = 0", "mitigation.newcomer_min_pps: Expected `int` >= 1"),
        (
            "[mitigation]\nnewcomer_source_pps = -5",
            "mitigation.newcomer_source_pps: Expected `int` >= 0",
        ),
        ("[agent\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key_and_why(text, message):
    with pytest.raises(ConfigError) as exc:
        decode(text)
    assert str(exc.value).startswith(message), str(exc.value)


def test_control_values_are_checked():
    bad = FULL.replace("https://control.example:8080", "control.example")
    with pytest.raises(ConfigError, match=r"^control\.server: must be an http"):
        decode(bad)
    bad = FULL.replace("6f1c2b7e-9d7a-4d55-8a43-3c1b9f0e2a11", "node-1")
    with pytest.raises(ConfigError, match=r"^control\.node_uuid"):
        decode(bad)


def test_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load(tmp_path / "absent.toml")


def test_ftagent_run_exits_2_on_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    p = tmp_path / "ftagent.toml"
    p.write_text('[agent]\ninterface = "eth0"\ncolour = "blue"\n')
    assert main(["run", "--config", str(p)]) == 2
    err = capsys.readouterr().err
    assert "agent.colour: unknown key" in err


def test_learn_one_in_defaults_to_the_data_paths_own_default():
    from ftagent.bpf.loader import DEFAULT_LEARN_ONE_IN
    from ftagent.config import AgentSection

    assert AgentSection().learn_one_in == DEFAULT_LEARN_ONE_IN
    assert decode("[agent]\nlearn_one_in = 0\n").agent.learn_one_in == 0  # learning off
