"""HTTP client for the Agent API: node-key auth headers, timeouts, and a split of every
failure into "try again later" (TransientError) and "never going to be accepted"
(RejectedError), which is what the reporter's spool needs to decide."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec

from ftcontract import agent_api

AGENT_PREFIX = "/api/v1/agent/"
T = TypeVar("T")


class TransientError(Exception):
    """Network failure, timeout, 5xx, 429 or 401/403 (a key can be fixed): retry later."""


class RejectedError(Exception):
    """Any other 4xx: the control plane understood and refused; resending cannot help."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


class AgentClient:
    def __init__(
        self,
        server: str,
        api_key: str,
        node_uuid: str,
        connect_timeout_s: float = 2.0,
        timeout_s: float = 5.0,
        verify_tls: bool = True,
    ) -> None:
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._http = httpx.Client(
            verify=verify_tls,
            base_url=server.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "X-Node-UUID": node_uuid},
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        )

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, AGENT_PREFIX + path, **kw)
        except httpx.HTTPError as exc:  # connect/read errors and timeouts
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code < 400:
            return resp
        reason = _reason(resp)
        if resp.status_code >= 500 or resp.status_code in (401, 403, 408, 429):
            raise TransientError(f"HTTP {resp.status_code}: {reason}")
        raise RejectedError(resp.status_code, reason)

    def _decode(self, resp: httpx.Response, into: type[T]) -> T:
        try:
            return msgspec.json.decode(resp.content, type=into)
        except msgspec.DecodeError as exc:
            # A proxy's HTML page or a half-upgraded server: not this message's fault.
            raise TransientError(f"unreadable reply: {exc}") from exc

    def post_json(self, path: str, body: bytes) -> httpx.Response:
        return self._request(
            "POST", path, content=body, headers={"Content-Type": "application/json"}
        )

    def heartbeat(self, beat: agent_api.Heartbeat) -> agent_api.HeartbeatReply:
        resp = self.post_json("heartbeat", msgspec.json.encode(beat))
        return self._decode(resp, agent_api.HeartbeatReply)

    def fetch_config(self) -> agent_api.AgentConfig:
        return self._decode(self._request("GET", "config"), agent_api.AgentConfigReply).config

    def fleet(self, after: int, wait_s: int) -> agent_api.FleetOrders:
        """The node's fleet orders: at once when their version is not `after`, else when
        it moves or `wait_s` seconds passed (a long poll: the read may take that long)."""
        timeout = httpx.Timeout(wait_s + self._timeout_s, connect=self._connect_timeout_s)
        params = {"after": after, "wait": wait_s}
        resp = self._request("GET", "fleet", params=params, timeout=timeout)
        return self._decode(resp, agent_api.FleetOrders)

    def ack_commands(self, acks: list[agent_api.CommandAck]) -> None:
        self.post_json("commands/ack", msgspec.json.encode(agent_api.CommandAcks(acks=acks)))

    def upload_pcap(self, incident_uuid: str, file: Path) -> agent_api.PcapReply:
        with file.open("rb") as fh:
            resp = self._request(
                "POST",
                f"incidents/{incident_uuid}/pcap",
                files={"file": (file.name, fh, "application/vnd.tcpdump.pcap")},
            )
        return self._decode(resp, agent_api.PcapReply)


def _reason(resp: httpx.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:200]
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            if key in data:
                return str(data[key])
    return str(data)[:200]
