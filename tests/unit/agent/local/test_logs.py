import json
import logging

from ftagent.local.logs import JsonFormatter


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


def _one_request_through_a_real_server() -> None:
    import http.server
    import threading

    import httpx

    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        httpx.post(f"http://127.0.0.1:{server.server_address[1]}/api/v1/agent/metrics")
    finally:
        thread.join(5)
        server.server_close()


def test_a_quiet_agent_logs_no_line_per_request_unless_asked(capsys):
    from ftagent.local import logs

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.setup("info", "text")
        _one_request_through_a_real_server()
        assert "HTTP Request" not in capsys.readouterr().err
        logs.setup("debug", "text")
        _one_request_through_a_real_server()
        assert "HTTP Request: POST" in capsys.readouterr().err
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name in logs.PER_REQUEST_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
