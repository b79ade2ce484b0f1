"""Agent robustness against bad files: a corrupt saved baseline costs the baseline (with a
reason), never the agent; a bad config exits 2 naming the key, before touching anything.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ftagent.config import BaselineConfig
from ftagent.detect.baseline import Baseline
from ftagent.detect.rates import METRICS

NOW = 1_800_000_000.0


def _valid(cfg: BaselineConfig, path: Path) -> dict[str, object]:
    b = Baseline(cfg)
    for i in range(30):
        b.add_second({m: 100.0 + i for m in b.metrics}, NOW - 30 + i)
    b.save(path, now=NOW)
    data: dict[str, object] = json.loads(path.read_text())
    return data


def test_a_valid_file_is_restored(tmp_path: Path) -> None:
    cfg = BaselineConfig()
    path = tmp_path / "baseline.json"
    _valid(cfg, path)
    loaded, why = Baseline.load_with_reason(path, cfg, now=NOW + 5)
    assert loaded is not None and why == "" and loaded.samples == 30


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not valid JSON"),
        (b"\x00\xff\xfe garbage \x89PNG", "unreadable"),
        (b'{"version": 1, "saved_at": 17', "not valid JSON"),  # a write cut short
        (b"[1, 2, 3]", "not a JSON object"),
        (b'{"version": 999, "saved_at": 0}', "format version 999"),
    ],
)
def test_corrupt_bytes_give_a_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "baseline.json"
    path.write_bytes(content)
    loaded, why = Baseline.load_with_reason(path, BaselineConfig(), now=NOW)
    assert loaded is None and reason in why, why
    assert Baseline.load(path, BaselineConfig(), now=NOW) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"points": "not a dict"}, "corrupt: AttributeError"),
        ({"points": {m: ["a", "b"] for m in METRICS}}, "corrupt: ValueError"),
        ({"hours": [{"count": "many"}]}, "corrupt: ValueError"),
        ({"hours": 7}, "corrupt: TypeError"),
        ({"saved_at": "yesterday"}, "corrupt: ValueError"),
        ({"saved_at": NOW + 3600}, "not a past time"),
        ({"saved_at": NOW - 10 * 86400}, "stale: saved"),
        ({"points": {m: [float("nan")] * 3 for m in METRICS}}, "NaN or infinite"),
        ({"hours": [{"count": 1, "p99": {"pps": float("inf")}}]}, "NaN or infinite"),
    ],
)
def test_well_formed_json_with_bad_content_gives_a_reason(
    tmp_path: Path, change: dict[str, object], reason: str
) -> None:
    cfg = BaselineConfig()
    path = tmp_path / "baseline.json"
    data = _valid(cfg, path)
    data.update(change)
    path.write_text(json.dumps(data))  # json writes NaN/Infinity, as a bad edit could
    loaded, why = Baseline.load_with_reason(path, cfg, now=NOW)
    assert loaded is None and reason in why, why


def test_unreadable_path_gives_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    path.mkdir()  # a directory where the file should be
    loaded, why = Baseline.load_with_reason(path, BaselineConfig(), now=NOW)
    assert loaded is None and why.startswith("unreadable"), why
    loaded, why = Baseline.load_with_reason(tmp_path / "absent.json", BaselineConfig())
    assert loaded is None and why == "no saved baseline"


# ---- bad configs: `ftagent run` exits 2 and names the key ---------------------------------

BAD_CONFIGS = [
    ('agent]\ninterface = "x"\n', "not valid TOML"),
    ('[agent]\ninterface = "x"\npoll_interval_ms = "fast"\n', "agent.poll_interval_ms"),
    ('[agent]\ninterface = "x"\nbogus = 1\n', "agent.bogus: unknown key"),
    ('[agent]\ninterface = ""\n', "agent.interface"),
    ('[agent]\ninterface = "x"\nlearn_one_in = 48\n', "agent.learn_one_in: must be 0 or a power"),
    ('[agent]\ninterface = "x"\n[mitigation]\nenable_syncookies = "yes"\n',
     "mitigation.enable_syncookies"),
    ('[agent]\ninterface = "x"\n[mitigation]\nmode = "maybe"\n', "mitigation.mode"),
    ('[agent]\ninterface = "x"\n[detection]\nmultiplier = -1\n', "detection.multiplier"),
    ('[agent]\ninterface = "x"\n[detection.floors]\nfoo = 1\n', "detection.floors.foo"),
    ('[agent]\ninterface = "x"\n[control]\nserver = "http://127.0.0.1:1"\n'
     'api_key = "k"\nnode_uuid = "not-a-uuid"\n', "control.node_uuid"),
    ('[agent]\ninterface = "x"\n[control]\nserver = "http://127.0.0.1:1"\n'
     'node_uuid = "6f1c5a4e-8a6e-4d7c-9a51-2f3c4b5d6e7f"\n', "control.api_key"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "key"), BAD_CONFIGS)
def test_bad_config_exits_2_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    cfg = tmp_path / "ftagent.toml"
    cfg.write_text(text)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "ftagent.cli", "run", "--config", str(cfg)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert key in done.stderr, done.stderr
    assert str(cfg) in done.stderr  # which file
    assert "Traceback" not in done.stderr
    # Refused before any work: no state directory made, no compile (seconds) started.
    assert not (tmp_path / "state").exists()
    assert time.monotonic() - started < 30


def test_incident_pcap_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    import os
    import stat

    from ftagent.evidence.capture import PcapWriter

    old = os.umask(0o022)
    try:
        writer = PcapWriter(tmp_path / "pcap" / "x.pcap", max_packets=10, max_bytes=10_000)
        writer.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "pcap" / "x.pcap").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "pcap").stat().st_mode) == 0o700
