"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright.

A real `ftcontrol serve` on loopback (plain HTTP: --insecure-cookies), a node whose
"agent" (this test) posts a heartbeat and a metric point each second through the Agent
API, an incident with a pcap, a fleet incident over the node's prefix (written through
IncidentService on the served database: the fleet engine is not part of this walk), and a
loopback webhook receiver. The browser signs in with the keyboard, watches the overview's
and node page's live charts advance, follows the fleet banner to the fleet incident's
nodes table, blocks an address, opens the incident and downloads its pcap, creates a
webhook channel and sends it a test, and signs out. Any JavaScript error or console error
fails the test.
Screenshots of every page go to test-artifacts/dashboard/ (git-ignored).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from control.core.db import open_db
from control.incidents.event_bus import IncidentEvents
from control.incidents.fleet import FleetNodeFigures
from control.incidents.service import IncidentService
from tests.api.incidents.fleet_data import figures, report
from tests.api.served import Node, Served, served_control
from tests.capability import require

pytestmark = [pytest.mark.browser]

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EMAIL, PASSWORD = "admin@acme.example", "correct horse battery"
VIEWER = "viewer@acme.example"  # made by the admin in the walk
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "dashboard"
# (status, path) the walk provokes on purpose: signed-out visits (the page asks who is
# signed in, then goes to the sign-in form), a wrong password, a refused channel config,
# a refused uplink capacity.
EXPECTED_REFUSALS = {(401, "/api/dash/me"), (401, "/api/dash/login"), (400, "/api/dash/channels"),
                     (400, "/api/dash/nodes/{node}")}  # fmt: skip
HISTORY_S = 120  # seconds of stored points before the browser opens a page
WAIT_MS = 20_000  # upper bound for a page or live point to show up (not a measurement)
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
OVERFLOW_JS = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
# Visible form controls with no label, aria-label or aria-labelledby (by id or name).
UNLABELLED_JS = """[...document.querySelectorAll("input, select, textarea")]
  .filter((e) => e.type !== "hidden" && e.offsetParent !== null && !e.labels.length
    && !e.getAttribute("aria-label") && !e.getAttribute("aria-labelledby"))
  .map((e) => e.id || e.name || e.outerHTML)"""


def _pcap(packets: int) -> bytes:
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    frame = b"\xff" * 12 + b"\x08\x00" + b"\x00" * 46
    rec = struct.pack("<IIII", 1, 0, len(frame), len(frame)) + frame
    return head + rec * packets


@dataclass
class Receiver:
    """A loopback webhook endpoint recording what it is sent."""

    server: ThreadingHTTPServer
    posts: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    posts: list[tuple[str, dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            posts.append((self.path, dict(self.headers), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(server, posts)
    finally:
        server.shutdown()
        server.server_close()


class Agent(threading.Thread):
    """Posts one metric point per second for the node, as ftagent would."""

    def __init__(self, srv: Served, node: Node) -> None:
        super().__init__(daemon=True)
        self.srv, self.node = srv, node
        self.stop = threading.Event()
        self.posted = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            now = time.time()
            point = {
                "ts": now, "pps": 52000.0 + self.posted, "bps": 4.1e8, "dropped_pps": 48000.0,
                "dropped_bps": 3.8e8, "protocols": {"udp": 50000.0, "tcp": 2000.0},
                "attack": True, "baseline_avg_pps": 900.0, "baseline_p95_pps": 1400.0,
            }  # fmt: skip
            r = self.srv.request(
                "POST", "/api/v1/agent/metrics", json={"points": [point]}, headers=self.node.headers
            )
            if r.status_code == 200:
                self.posted += 1
            else:
                self.failures.append(r.text)
            self.stop.wait(1.0)


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Served]:
    with served_control(tmp_path, isolated=False, extra_args=["--insecure-cookies"]) as srv:
        srv.start()
        yield srv


FLEET_GROUP = "203.0.113.0/24"  # the prefix of the node's address (203.0.113.10)


def _fleet_incident(srv: Served, node: Node) -> str:
    """An active fleet incident over the node's prefix, its rules in force on the node."""

    async def write() -> str:
        db = await open_db(srv.db)
        try:
            [[node_id, workspace_id]] = await db.execute_fetchall(
                "SELECT id, workspace_id FROM nodes WHERE uuid = ?", (node.uuid,)
            )
            incidents = IncidentService(db, IncidentEvents())
            opened = await incidents.open_fleet(
                workspace_id, FLEET_GROUP, time.time() - 20, figures("high")
            )
            member = FleetNodeFigures(
                node_id=node_id, share=1.0, peak_pps=225_000.0, peak_bps=2.2e9,
                state="reporting", report=report(opened.uuid, 9_000, 40, time.time() - 19),
            )  # fmt: skip
            await incidents.set_fleet_nodes(workspace_id, opened.uuid, [member])
            return opened.uuid
        finally:
            await db.close()

    return asyncio.run(write())


def _setup(srv: Served) -> tuple[Node, str, bytes]:
    ws = srv.workspace("acme")
    done = subprocess.run(
        [sys.executable, "-m", "control.cli", "user", "create", EMAIL, "--workspace", "acme",
         "--role", "admin", "--db", str(srv.db)],
        input=PASSWORD, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    node = srv.node(ws, "edge-fra-1")
    r = srv.request(
        "POST", "/api/v1/agent/heartbeat", headers=node.headers,
        json={"version": "0.9.1-test", "xdp_mode": "native"},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    # Two minutes of the attack before anyone looks: pages opened now draw them at once.
    now = int(time.time())
    history = [
        {"ts": float(t), "pps": 51000.0, "bps": 4e8, "dropped_pps": 47000.0, "dropped_bps": 3.7e8,
         "protocols": {"udp": 49000.0, "tcp": 2000.0}, "attack": True,
         "baseline_avg_pps": 900.0, "baseline_p95_pps": 1400.0}
        for t in range(now - HISTORY_S, now - 1)
    ]  # fmt: skip
    r = srv.request("POST", "/api/v1/agent/metrics", headers=node.headers, json={"points": history})
    assert r.status_code == 200, r.text
    incident = str(uuid.uuid4())
    figures = {
        "seq": 1, "family": "udp_flood", "severity": "critical", "peak_pps": 52000.0,
        "protocols": {"udp": 96.0, "tcp": 4.0},
        "rules": [{"kind": "signature", "match": "signature proto=17 sport=11211",
                   "proto": 17, "src_port": 11211, "dropped_packets": 4242000}],
        "top_sources": [{"ip": "198.51.100.7", "pps": 30000.0},
                        {"ip": "203.0.113.9", "pps": 9000.0}],
    }  # fmt: skip
    r = srv.request(
        "POST", "/api/v1/agent/incidents", headers=node.headers,
        json={"uuid": incident, "started_at": time.time() - 30, "figures": figures},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    pcap = _pcap(5)
    r = srv.request(
        "POST", f"/api/v1/agent/incidents/{incident}/pcap", headers=node.headers,
        files={"file": ("i.pcap", pcap, "application/vnd.tcpdump.pcap")},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    return node, incident, pcap


def test_operator_walks_the_dashboard(srv: Served, receiver: Receiver, tmp_path: Path) -> None:
    require(Path(CHROMIUM).exists(), f"Debian's chromium ({CHROMIUM}; make setup installs it)")
    from playwright.sync_api import ConsoleMessage, Error, Page, expect, sync_playwright

    node, incident, pcap = _setup(srv)
    fleet = _fleet_incident(srv, node)
    agent = Agent(srv, node)
    agent.start()
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    problems: list[str] = []
    foreign: list[str] = []  # requests to anywhere but the control plane

    def console(message: ConsoleMessage) -> None:
        if message.type not in ("error", "assert"):
            return
        # Chromium logs every non-2xx fetch as a console error; these few are the walk's
        # own deliberate refusals. Any other failed request, and every script error, fails.
        url = str(message.location.get("url", "")).removeprefix(srv.base)
        for status, path in EXPECTED_REFUSALS:
            if f"status of {status} " in message.text and url == path.format(node=node.uuid):
                return
        problems.append(f"console {message.type}: {message.text} ({message.location})")

    def page_error(error: Error) -> None:
        problems.append(f"page error: {error.message}")

    def shot(page: Page, name: str) -> None:
        """Every control labelled; screenshots at 1280x800 and at phone width, where the
        page must reflow without a horizontal scroll bar."""
        unlabelled = page.evaluate(UNLABELLED_JS)
        assert unlabelled == [], f"{name}: controls without a label: {unlabelled}"
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        page.set_viewport_size(PHONE)
        page.wait_for_timeout(100)  # the charts redraw on resize
        overflow = page.evaluate(OVERFLOW_JS)
        assert overflow <= 0, f"{name}: {overflow} px wider than a phone screen"
        page.screenshot(path=str(ARTIFACTS / f"{name}-phone.png"), full_page=True)
        page.set_viewport_size(DESKTOP)

    def points(page: Page, chart: str) -> int:
        return int(page.get_attribute(chart, "data-points") or "0")

    def points_above(page: Page, chart: str, count: int) -> int:
        """Waits (bounded) until the chart has drawn more than `count` live points.
        Polled from here: the pages' CSP rightly refuses Playwright's string evaluation."""
        deadline = time.monotonic() + WAIT_MS / 1000
        while (now := points(page, chart)) <= count and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        assert now > count, f"{chart}: still {now} live points, wanted more than {count}"
        return now

    def backfilled(page: Page, chart: str) -> None:
        """The chart drew the stored last minutes when the page opened (then goes live)."""
        expect(page.locator(chart)).to_have_attribute("data-backfill", re.compile(r"^\d+$"))
        drawn = int(page.get_attribute(chart, "data-backfill") or "0")
        assert drawn >= HISTORY_S - 2, f"{chart}: {drawn} stored seconds drawn at open"

    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),  # a fresh profile each run
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport=DESKTOP,
                accept_downloads=True,
            )
            context.set_default_timeout(WAIT_MS)
            expect.set_options(timeout=WAIT_MS)
            page = context.new_page()
            base = srv.base
            page.on("request", lambda r: None if r.url.startswith(base) else foreign.append(r.url))
            page.on("console", console)
            page.on("pageerror", page_error)

            # Signed out: any page leads to the sign-in form. Sign in with the keyboard.
            page.goto(base + "/dash")
            page.wait_for_url("**/dash/login?next=*")
            expect(page.locator("#email")).to_be_focused()
            page.keyboard.type(EMAIL)
            page.keyboard.press("Tab")
            page.keyboard.type("wrong password")
            page.keyboard.press("Enter")
            expect(page.locator("#login-error")).to_contain_text("wrong e-mail or password")
            shot(page, "login")
            page.fill("#password", PASSWORD)
            page.keyboard.press("Enter")
            page.wait_for_url(base + "/dash")

            # Overview: status, nodes, active incidents, banner, live chart advancing.
            expect(page.locator("body")).to_have_attribute("data-ready", "true")
            expect(page.locator("#overall")).to_have_text("under attack")
            expect(page.locator("#banner")).to_be_visible()
            expect(page.locator("#nodes")).to_contain_text("edge-fra-1")
            expect(page.locator("#active")).to_contain_text("udp_flood")
            backfilled(page, "#chart")
            # Keyboard: the first Tab reaches "Skip to content", which moves to the content.
            page.keyboard.press("Tab")
            expect(page.locator("a.skip")).to_be_focused()
            page.keyboard.press("Enter")
            expect(page.locator("#main")).to_be_focused()
            seen = points_above(page, "#chart", 1)
            points_above(page, "#chart", seen)  # the agent's next post reached the open page
            expect(page.locator("#chart-note")).to_contain_text("pps")
            # The fleet incident: a banner of its own (group, family, node count, link),
            # and a row among the active incidents.
            fleet_banner = page.locator("#fleet-banner")
            expect(fleet_banner).to_be_visible()
            expect(fleet_banner).to_contain_text(
                f"Fleet attack: dns_amplification on prefix {FLEET_GROUP}, spread over 1 node"
            )
            expect(page.locator("#active")).to_contain_text(f"fleet: prefix {FLEET_GROUP} (1 node)")
            shot(page, "overview")

            # The fleet incident's page: scope, group, and the nodes table.
            page.click("#fleet-banner a")
            page.wait_for_url(f"**/dash/incidents/{fleet}")
            expect(page.locator("body")).to_have_attribute("data-ready", "true")
            expect(page.locator("#incident-title")).to_have_text(
                f"dns_amplification on fleet: prefix {FLEET_GROUP} (1 node)"
            )
            expect(page.locator("#inc-scope")).to_have_text("fleet")
            expect(page.locator("#inc-node-k")).to_have_text("Group")
            expect(page.locator("#inc-node")).to_have_text(FLEET_GROUP)
            nodes_table = page.locator("#fleet-nodes")
            expect(nodes_table).to_be_visible()
            row = nodes_table.locator("tbody tr")
            expect(row).to_have_count(1)
            expect(row.locator("td")).to_have_text(
                ["edge-fra-1", "reporting", "100", "225,000", "2,200,000,000",
                 "signature proto=17 sport=53", "9,000", "40", re.compile(r"\d")]
            )  # fmt: skip
            expect(page.locator("#sources-section")).to_be_hidden()
            expect(page.locator("#timeline-section")).to_be_hidden()
            expect(page.locator("#summary")).to_contain_text(f"spread over prefix {FLEET_GROUP}")
            shot(page, "incident-fleet")
            page.click("header a:has-text('Overview')")
            page.wait_for_url(base + "/dash")
            expect(page.locator("body")).to_have_attribute("data-ready", "true")

            # Node page: agent facts, live chart, block and unblock an address with a TTL.
            page.click("#nodes a:has-text('edge-fra-1')")
            page.wait_for_url(f"**/dash/nodes/{node.uuid}")
            expect(page.locator("body")).to_have_attribute("data-ready", "true")
            expect(page.locator("#agent-version")).to_have_text("0.9.1-test")
            expect(page.locator("#xdp-mode")).to_have_text("native")
            expect(page.locator("#baseline")).not_to_have_text("…")
            expect(page.locator("#in-force")).to_contain_text("sport=11211")
            expect(page.locator("#in-force")).to_contain_text("4,242,000")
            backfilled(page, "#pps-chart")
            points_above(page, "#pps-chart", points_above(page, "#pps-chart", 0))
            # Upstream mitigation: the API's validation first, then saved.
            expect(page.locator("#upstream-policy")).to_have_text("local")
            page.select_option("#mitigation-policy", "flowspec_then_rtbh")
            page.fill("#uplink-mbps", "0")
            page.click("#upstream-form button[type=submit]")
            expect(page.locator("#upstream-error")).to_contain_text("uplink_mbps")
            expect(page.locator("#uplink-mbps")).to_be_focused()
            page.keyboard.press("Control+A")
            page.keyboard.type("10000")
            page.keyboard.press("Enter")
            expect(page.locator("#upstream-status")).to_contain_text("Saved: flowspec then rtbh")
            expect(page.locator("#uplink")).to_have_text("10,000")
            page.fill("#block-target", "198.51.100.7")
            page.fill("#block-ttl", "600")
            page.click("#block-form button[type=submit]")
            expect(page.locator("#rules")).to_contain_text("198.51.100.7")
            shot(page, "node")
            page.click("button[aria-label='Unblock 198.51.100.7']")
            expect(page.locator("#rules")).not_to_contain_text("198.51.100.7")

            # Incidents: list with a filter, the detail, pcap download, mark resolved.
            page.click("header a:has-text('Incidents')")
            page.select_option("select[name=scope]", "fleet")
            page.click("#filters button[type=submit]")
            expect(page.locator("#incidents-count")).to_contain_text("1 incident(s)")
            expect(page.locator("#incidents")).to_contain_text(f"fleet: prefix {FLEET_GROUP}")
            page.select_option("select[name=scope]", "")
            page.select_option("select[name=severity]", "critical")
            page.click("#filters button[type=submit]")
            expect(page.locator("#incidents-count")).to_contain_text("1 incident(s)")
            shot(page, "incidents")
            page.click(f"a[href='/dash/incidents/{incident}']")
            expect(page.locator("body")).to_have_attribute("data-ready", "true")
            expect(page.locator("#sources")).to_contain_text("198.51.100.7")
            expect(page.locator("#protocols")).to_contain_text("udp")
            expect(page.locator("#mitigation")).to_contain_text("4,242,000")
            expect(page.locator("#summary")).not_to_be_empty()
            # The fresh incident's timeline (opened 30 s ago): its one-second points from a
            # minute before the start, drawn at once (not the one-minute roll-ups).
            expect(page.locator("#timeline-note")).to_contain_text("one-second point")
            drawn = points(page, "#timeline")
            assert drawn >= 60, f"#timeline: {drawn} points"
            assert page.get_attribute("#timeline", "data-seconds") == str(drawn)
            with page.expect_download() as download:
                page.click("#pcap-link")
            saved = download.value.path()
            assert saved is not None and Path(saved).read_bytes() == pcap
            shot(page, "incident")
            page.click("#mark-resolved")
            expect(page.locator("#inc-status")).to_have_text("resolved")

            # Channels: a webhook made with the form (the API's validation first), tested.
            page.click("header a:has-text('Channels')")
            expect(page.locator("body")).to_have_attribute("data-ready", "true")
            page.fill("#channel-name", "ops-hook")
            page.fill("#cfg-url", receiver.url)
            page.fill("#cfg-secret", "short")
            page.click("#channel-form button[type=submit]")
            expect(page.locator("#channel-error")).to_contain_text("config.secret")
            expect(page.locator("#cfg-secret")).to_be_focused()
            page.fill("#cfg-secret", "0123456789abcdef0123456789abcdef")
            page.click("#channel-form button[type=submit]")
            expect(page.locator("#channels")).to_contain_text("ops-hook")
            page.click("button[aria-label='Send a test to ops-hook']")
            expect(page.locator("#channel-status")).to_contain_text("delivered")
            expect(page.locator("#deliveries")).to_contain_text("delivered")
            shot(page, "channels")
            tests = [body for path, _, body in receiver.posts if path == "/hook"]
            assert tests, receiver.posts
            assert json.loads(tests[-1])  # a JSON body was delivered to the receiver

            # Workspace: plan, node usage; users added (a made password shown once),
            # re-roled and removed; then sign out.
            page.click("header a:has-text('Workspace')")
            expect(page.locator("#ws-nodes")).to_have_text(re.compile(r"^1 / \d+$"))
            expect(page.locator("#users")).to_contain_text(EMAIL + " (you)")
            page.fill("#user-email", VIEWER)
            page.click("#user-form button[type=submit]")
            once = page.locator("#user-password-once")
            expect(once).to_contain_text("shown once")
            expect(once).to_be_focused()
            viewer_password = (once.text_content() or "").rsplit(": ", 1)[1]
            role = page.locator(f"select[aria-label='Role of {VIEWER}']")
            expect(role).to_have_value("viewer")
            page.fill("#user-email", "temp@acme.example")
            page.select_option("#user-role", "admin")
            page.fill("#user-password", "a password for temp")
            page.keyboard.press("Enter")
            expect(page.locator("#user-status")).to_contain_text("temp@acme.example added as admin")
            expect(once).to_be_hidden()  # a given password is never shown
            page.select_option("select[aria-label='Role of temp@acme.example']", "viewer")
            expect(page.locator("#user-status")).to_contain_text("is now viewer")
            page.once("dialog", lambda dialog: dialog.accept())
            page.click("button[aria-label='Remove temp@acme.example']")
            expect(page.locator("#users")).not_to_contain_text("temp@acme.example")
            shot(page, "workspace")
            page.click("#logout")
            page.wait_for_url("**/dash/login")
            page.goto(base + "/dash/workspace")
            page.wait_for_url("**/dash/login?next=*")

            # The viewer just made: reads the workspace, sees no user or token controls.
            page.fill("#email", VIEWER)
            page.fill("#password", viewer_password)
            page.keyboard.press("Enter")
            page.wait_for_url(base + "/dash/workspace")
            expect(page.locator("body")).to_have_attribute("data-ready", "true")
            expect(page.locator("#ws-name")).to_have_text("acme")
            expect(page.locator(".viewer-only")).to_be_visible()
            for hidden in ("#users", "#rotate", "#user-form"):
                expect(page.locator(hidden)).to_be_hidden()
            shot(page, "workspace-viewer")
            page.click("#logout")
            page.wait_for_url("**/dash/login")
            context.close()
    finally:
        agent.stop.set()
        agent.join(timeout=10)

    assert problems == [], problems
    assert agent.failures == [], agent.failures[:3]
    names = sorted(p.name for p in ARTIFACTS.iterdir())
    assert names == sorted(
        f"{n}{size}.png"
        for n in ("login", "overview", "incident-fleet", "node", "incidents", "incident",
                  "channels", "workspace", "workspace-viewer")
        for size in ("", "-phone")
    )  # fmt: skip
    assert foreign == [], foreign  # nothing from the internet (no CDN, no fonts)
    for name in names:
        assert (ARTIFACTS / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), name
