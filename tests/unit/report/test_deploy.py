"""`ftagent deploy` against a real HTTP server on loopback."""

from __future__ import annotations

import stat
from pathlib import Path

from ftagent import config as agent_config
from ftagent.cli import main
from tests.unit.report.loopback import LoopbackControlPlane


def run_deploy(plane: LoopbackControlPlane, path: Path, *extra: str) -> int:
    return main(
        [
            "deploy",
            "--server", plane.url,
            "--token", "deploy-token-1",
            "--name", "edge-1",
            "--ip", "192.0.2.10",
            "--interface", "veth-v",
            "--config", str(path),
            *extra,
        ]
    )  # fmt: skip


def test_registers_and_writes_a_private_config(plane, tmp_path) -> None:
    path = tmp_path / "etc" / "ftagent.toml"
    assert run_deploy(plane, path) == 0
    (req,) = plane.requests
    assert req.path == "/api/deploy"
    assert req.headers["Authorization"] == "Bearer deploy-token-1"
    assert req.json() == {"name": "edge-1", "ip": "192.0.2.10", "interface": "veth-v"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cfg = agent_config.load(path)
    assert cfg.control is not None
    assert cfg.control.server == plane.url
    assert cfg.control.api_key == plane.behaviour.deploy_reply["api_key"]
    assert cfg.control.node_uuid == plane.behaviour.deploy_reply["node_uuid"]
    assert cfg.agent.interface == "veth-v"
    assert not [p for p in path.parent.iterdir() if p.name != path.name]  # no temp left


def test_keeps_the_other_settings_of_an_existing_config(plane, tmp_path) -> None:
    path = tmp_path / "ftagent.toml"
    path.write_text('[agent]\nstate_dir = "/srv/ft"\n\n[mitigation]\nmode = "dry_run"\n')
    assert run_deploy(plane, path) == 0
    cfg = agent_config.load(path)
    assert cfg.agent.state_dir == "/srv/ft"
    assert cfg.mitigation.mode == "dry_run"
    assert cfg.agent.interface == "veth-v"
    assert cfg.control is not None


def test_refuses_another_nodes_config_before_registering(plane, tmp_path, capsys) -> None:
    path = tmp_path / "ftagent.toml"
    assert run_deploy(plane, path) == 0
    before = path.read_bytes()
    assert run_deploy(plane, path) == 2
    err = capsys.readouterr().err
    assert "already belongs to node" in err
    assert plane.behaviour.deploy_reply["node_uuid"] in err
    assert path.read_bytes() == before
    assert len(plane.requests) == 1  # the refused deploy registered nothing


def test_refuses_a_config_it_cannot_read_as_toml(plane, tmp_path, capsys) -> None:
    path = tmp_path / "ftagent.toml"
    path.write_text("this is = = not toml")
    assert run_deploy(plane, path) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert plane.requests == []


def test_bad_token_is_a_clear_error_and_writes_nothing(plane, tmp_path, capsys) -> None:
    plane.behaviour.force_status = 401
    path = tmp_path / "ftagent.toml"
    assert run_deploy(plane, path) == 2
    assert "refused the registration (401)" in capsys.readouterr().err
    assert not path.exists()


def test_unreachable_server_is_a_runtime_failure(plane, tmp_path, capsys) -> None:
    plane.stop()
    path = tmp_path / "ftagent.toml"
    assert run_deploy(plane, path) == 1
    assert "cannot reach" in capsys.readouterr().err
    assert not path.exists()


def test_token_from_the_environment_keeps_it_off_the_command_line(
    plane, tmp_path, monkeypatch, capsys
) -> None:
    path = tmp_path / "ftagent.toml"
    argv = ["deploy", "--server", plane.url, "--name", "edge-1", "--ip", "192.0.2.10",
            "--config", str(path)]  # fmt: skip
    monkeypatch.delenv("FTAGENT_DEPLOY_TOKEN", raising=False)
    assert main(argv) == 2
    assert "FTAGENT_DEPLOY_TOKEN" in capsys.readouterr().err
    assert not plane.requests and not path.exists()

    monkeypatch.setenv("FTAGENT_DEPLOY_TOKEN", "deploy-token-env")
    assert main(argv) == 0
    (req,) = plane.requests
    assert req.headers["Authorization"] == "Bearer deploy-token-env"
    assert path.exists()
