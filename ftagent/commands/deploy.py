"""`ftagent deploy`: register this node through the Deploy API and write the agent config.

Order matters: everything that can fail locally (an existing config that belongs to
another node, an unwritable directory) is checked BEFORE the node is registered, so a
refused deploy never leaves an orphan node behind on the control plane. The file is
written atomically with mode 0600 (it holds the node's API key).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import msgspec

from ftagent import config as agent_config
from ftcontract.deploy_api import DeployReply, DeployRequest

DEPLOY_TIMEOUT_S = 15.0


class DeployError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _existing_settings(path: Path) -> dict[str, Any]:
    """The TOML already at `path` as a dict ({} if none); refuses another node's config."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise DeployError(f"cannot read existing config {path}: {exc.strerror}", 2) from exc
    try:
        data = msgspec.toml.decode(raw)
    except msgspec.DecodeError as exc:
        raise DeployError(
            f"{path} exists and is not valid TOML ({exc}); not overwriting it. "
            "Fix or remove it, or pass --config with another path.",
            2,
        ) from exc
    if not isinstance(data, dict):
        raise DeployError(f"{path} is not a TOML table; not overwriting it", 2)
    control = data.get("control")
    if isinstance(control, dict) and control.get("node_uuid"):
        raise DeployError(
            f"{path} already belongs to node {control['node_uuid']} "
            f"(control plane {control.get('server', '?')}); not overwriting it. "
            "Remove the file to re-register this machine, or pass --config with another path.",
            2,
        )
    return data


def _check_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".ftagent-deploy-"):
            pass
    except OSError as exc:
        raise DeployError(f"cannot write the config in {directory}: {exc.strerror}", 2) from exc


def register(server: str, token: str, name: str, ip: str, interface: str) -> DeployReply:
    url = server.rstrip("/") + "/api/deploy"
    try:
        resp = httpx.post(
            url,
            content=msgspec.json.encode(DeployRequest(name=name, ip=ip, interface=interface)),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=DEPLOY_TIMEOUT_S,
        )
    except httpx.HTTPError as exc:
        raise DeployError(f"cannot reach {url}: {exc}", 1) from exc
    if resp.status_code != 200:
        try:
            reason = str(resp.json().get("error", resp.text))
        except (ValueError, AttributeError):
            reason = resp.text[:200]
        code = 2 if 400 <= resp.status_code < 500 else 1
        raise DeployError(
            f"control plane refused the registration ({resp.status_code}): {reason}", code
        )
    try:
        return msgspec.json.decode(resp.content, type=DeployReply)
    except msgspec.DecodeError as exc:
        raise DeployError(f"unexpected reply from {url}: {exc}", 1) from exc


def write_config(path: Path, data: dict[str, Any]) -> None:
    """Atomically replace `path` with `data` as TOML, mode 0600 from the first byte."""
    text = msgspec.toml.encode(data)
    agent_config.decode(text)  # never write a file `ftagent run` would refuse
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def deploy(
    config_path: Path, server: str, token: str, name: str, ip: str, interface: str
) -> DeployReply:
    data = _existing_settings(config_path)
    _check_writable(config_path.parent)
    reply = register(server, token, name, ip, interface)
    agent = data.get("agent")
    agent = agent if isinstance(agent, dict) else {}
    data["agent"] = {**agent, "interface": interface}
    data["control"] = {"server": server, "api_key": reply.api_key, "node_uuid": reply.node_uuid}
    try:
        write_config(config_path, data)
    except (OSError, agent_config.ConfigError) as exc:
        raise DeployError(
            f"node {reply.node_uuid} was registered but its config could not be written to "
            f"{config_path}: {exc}. Delete the node through the API and deploy again.",
            1,
        ) from exc
    return reply


TOKEN_ENV = "FTAGENT_DEPLOY_TOKEN"  # noqa: S105 (a variable name, not a secret)


def cmd_deploy(args: argparse.Namespace) -> int:
    path = Path(args.config)
    # The environment keeps the token out of `ps`; --token stays for the documented one-liner.
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"ftagent deploy: give the token with --token or ${TOKEN_ENV}", file=sys.stderr)
        return 2
    try:
        reply = deploy(path, args.server, token, args.name, args.ip, args.interface)
    except DeployError as exc:
        print(f"ftagent deploy: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"registered node {reply.node_uuid} ({args.name}); config written to {path} (mode 600)")
    return 0
