import json
import logging

from ftagent.logs import JsonFormatter


def test_json_lines_carry_structured_fields():
    rec = logging.LogRecord(
        "ftagent.agent", logging.WARNING, __file__, 1, "incident opened: %s", ("udp_flood",), None
    )
    rec.event = "incident_opened"
    rec.incident_uuid = "abc"
    out = json.loads(JsonFormatter().format(rec))
    assert out["msg"] == "incident opened: udp_flood"
    assert out["level"] == "warning"
    assert out["event"] == "incident_opened" and out["incident_uuid"] == "abc"
    assert out["ts"].endswith("+00:00")
