// fasttrace dashboard: one small script for every page (no build step, no framework).
// Data comes from /api/dash/* (the REST API v1 handlers behind the session cookie); live
// points come from one server-sent-event stream per page. Text from the API is always
// set with textContent, never parsed as HTML.
"use strict";

const state = { me: null };

// ---- helpers --------------------------------------------------------------------------

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function num(v, digits = 0) {
  if (v === null || v === undefined) return "–";
  return Number(v).toLocaleString("en-US", { maximumFractionDigits: digits });
}

// Axis labels: 1.2k, 3.4M, 5.6G (full numbers stay in tables and notes).
function si(v) {
  const a = Math.abs(v);
  for (const [size, suffix] of [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
    if (a >= size) return (v / size).toLocaleString("en-US", { maximumFractionDigits: 1 }) + suffix;
  }
  return num(v, 1);
}

function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleString("en-GB", { dateStyle: "short", timeStyle: "medium" });
}

function cell(text, cls) { return el("td", { class: cls, text: text }); }

function plural(n, word) { return `${num(n)} ${word}${n === 1 ? "" : "s"}`; }

// A fleet incident's group as people read it.
function groupLabel(group) { return group === "workspace" ? "the whole workspace" : "prefix " + group; }

// Where an incident is: its node, or (a fleet incident: no node) its group and node count.
function where(i) {
  if (i.scope !== "fleet") return i.node ? i.node.name : "–";
  return `fleet: ${groupLabel(i.group)} (${plural(i.nodes.length, "node")})`;
}

function fill(tbody, rows, emptyText, columns) {
  tbody.replaceChildren();
  if (!rows.length) {
    tbody.append(el("tr", {}, el("td", { colspan: columns, class: "muted", text: emptyText })));
    return;
  }
  for (const r of rows) tbody.append(r);
}

function showError(target, message) {
  target.textContent = message || "";
  target.hidden = !message;
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.field = body && body.field;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.me) headers["X-CSRF-Token"] = state.me.csrf_token;
  const response = await fetch("/api/dash" + path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (response.status === 401 && path !== "/login") {
    signIn();
    throw new ApiError(401, data);
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function signIn() {
  const next = location.pathname + location.search;
  location.assign("/dash/login?next=" + encodeURIComponent(next));
}

// One EventSource per page; `handlers` maps event names to functions of the parsed data.
function live(path, handlers) {
  const source = new EventSource("/api/dash" + path);
  for (const [name, fn] of Object.entries(handlers)) {
    source.addEventListener(name, (e) => fn(JSON.parse(e.data)));
  }
  source.addEventListener("error", () => {
    // The browser reconnects by itself; a signed-out session gets 401 and stops: check.
    if (source.readyState === EventSource.CLOSED) api("GET", "/me").catch(() => {});
  });
  window.addEventListener("pagehide", () => source.close());
  return source;
}

// A rolling window of one-second points drawn with uPlot.
const WINDOW_S = 300;

function timeChart(container, series, opts = {}) {
  const width = () => Math.max(280, container.clientWidth - 10);
  const chart = new uPlot({
    width: width(), height: opts.height || 260,
    scales: { x: { time: true } },
    series: [{}, ...series],
    axes: [{}, { size: 60, values: (u, vals) => vals.map(si) }],
    bands: opts.bands || [],
    legend: { live: false },
  }, [[], ...series.map(() => [])], container);
  window.addEventListener("resize", () => chart.setSize({ width: width(), height: opts.height || 260 }));
  return chart;
}

function roleGate() {
  const admin = state.me && state.me.role === "admin";
  for (const node of document.querySelectorAll(".admin-only")) node.hidden = !admin;
  for (const node of document.querySelectorAll(".viewer-only")) node.hidden = admin;
}

// ---- pages --------------------------------------------------------------------------------

const pages = {};

pages.login = async function () {
  const form = $("login-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("login-error"), "");
    try {
      await api("POST", "/login", { email: $("email").value, password: $("password").value });
      const next = new URLSearchParams(location.search).get("next") || "/dash";
      location.assign(next.startsWith("/dash") ? next : "/dash");
    } catch (e) {
      showError($("login-error"), e.message);
      $("password").focus();
    }
  });
  $("email").focus();
};

pages.overview = async function () {
  const chart = timeChart($("chart"), [
    { label: "Total pps", stroke: "#0550ae", width: 2 },
    { label: "Dropped pps", stroke: "#a40e26", width: 2, fill: "rgba(164,14,38,0.15)" },
  ]);
  // Per second, pps and dropped pps summed over the nodes: the stream's backfill (the
  // server's running totals when the page opened), then the live points, each node's
  // second once (an agent's resend of a second it already sent live is left out).
  const totals = new Map(); // second -> {pps, dropped}
  const lastByNode = new Map(); // node -> newest second added
  let points = 0;

  function add(node, ts, pps, dropped) {
    const s = Math.floor(ts);
    if (s <= (lastByNode.get(node) ?? -1)) return;
    lastByNode.set(node, s);
    const t = totals.get(s) || { pps: 0, dropped: 0 };
    t.pps += pps; t.dropped += dropped;
    totals.set(s, t);
  }

  async function refresh() {
    const [status, active, fleet] = await Promise.all([
      api("GET", "/status"), api("GET", "/incidents?status=active&limit=20"),
      api("GET", "/incidents?status=active&scope=fleet&limit=20"),
    ]);
    const overall = $("overall");
    overall.textContent = status.overall.replace("_", " ");
    overall.className = "v status-" + status.overall;
    $("nodes-online").textContent = `${status.nodes_online} / ${status.nodes_total}`;
    $("under-attack").textContent = status.under_attack;
    const banner = $("banner");
    banner.hidden = status.under_attack === 0;
    banner.textContent = `Under attack: ${status.under_attack} node(s), ${active.total} active incident(s).`;
    // An attack spread over a group of nodes: one line per active fleet incident.
    const fleetBanner = $("fleet-banner");
    fleetBanner.hidden = fleet.incidents.length === 0;
    fleetBanner.replaceChildren(...fleet.incidents.map((i) => el("p", { class: "fleet-line" },
      `Fleet attack: ${i.family} on ${groupLabel(i.group)}, spread over ${plural(i.nodes.length, "node")} (${i.severity}). `,
      el("a", { href: "/dash/incidents/" + encodeURIComponent(i.uuid), text: "Open the fleet incident" }))));
    fill($("nodes").tBodies[0], status.nodes.map((n) => el("tr", {},
      el("td", {}, el("a", { href: "/dash/nodes/" + encodeURIComponent(n.uuid), text: n.name })),
      cell(n.status, "status-" + n.status), cell(num(n.pps), "num"),
      cell(num(n.active_incidents), "num"))), "No nodes yet: deploy an agent.", 4);
    fill($("active").tBodies[0], active.incidents.map(incidentRow), "No active incident.", 5);
  }

  function incidentRow(i) {
    return el("tr", {},
      el("td", {}, el("a", { href: "/dash/incidents/" + encodeURIComponent(i.uuid), text: i.family })),
      cell(where(i)), cell(i.severity, "status-" + (i.severity === "critical" ? "active" : "")),
      cell(when(i.started_at)), cell(num(i.peak_pps), "num"));
  }

  function draw() {
    const oldest = Math.floor(Date.now() / 1000) - WINDOW_S;
    for (const s of totals.keys()) if (s < oldest) totals.delete(s);
    const secs = [...totals.keys()].sort((a, b) => a - b);
    const sums = secs.map((s) => totals.get(s));
    chart.setData([secs, sums.map((v) => v.pps), sums.map((v) => v.dropped)]);
    $("chart").dataset.points = String(points);
    if (secs.length) {
      const last = sums[sums.length - 1];
      $("total-pps").textContent = num(last.pps);
      $("chart-note").textContent = `Last point ${new Date(secs[secs.length - 1] * 1000).toLocaleTimeString("en-GB")}: ${num(last.pps)} pps, ${num(last.dropped)} dropped.`;
    }
  }

  live("/live", {
    backfill: (b) => {
      for (const [ts, pps, dropped] of b.totals) totals.set(ts, { pps, dropped });
      $("chart").dataset.backfill = String(b.totals.length);
      draw();
    },
    point: (p) => { add(p.node, p.ts, p.pps, p.dropped_pps); points += 1; },
    incident: () => { refresh().catch(() => {}); },
  });
  setInterval(draw, 1000);
  setInterval(() => refresh().catch(() => {}), 15000); // node statuses (heartbeats) age
  await refresh();
};

const PROTOCOLS = [["tcp", "#0550ae"], ["udp", "#8250df"], ["icmp", "#1a7f37"], ["other", "#9a6700"], ["fragment", "#57606a"]];

pages.node = async function () {
  const uuid = decodeURIComponent(location.pathname.split("/").pop());
  const base = "/nodes/" + encodeURIComponent(uuid);
  const pps = timeChart($("pps-chart"), [
    { label: "Baseline p95", stroke: "#8c959f", dash: [4, 4] },
    { label: "Baseline avg", stroke: "#8c959f" },
    ...PROTOCOLS.map(([name, color]) => ({ label: name + " pps", stroke: color, width: 1.5 })),
    { label: "Dropped pps", stroke: "#a40e26", width: 2 },
  ], { bands: [{ series: [1, 2], fill: "rgba(140,149,159,0.18)" }] });
  const bps = timeChart($("bps-chart"), [
    { label: "Received bps", stroke: "#0550ae", width: 2 },
    { label: "Dropped bps", stroke: "#a40e26", width: 2 },
  ], { height: 200 });
  const rows = []; // one point per second, oldest first (backfill, then live)

  function upsert(p) {
    p.ts = Math.floor(p.ts); // stored points are whole seconds: keep one per second
    const at = rows.findLastIndex((r) => r.ts <= p.ts);
    if (at !== -1 && rows[at].ts === p.ts) rows[at] = p; // agents resend: the newest wins
    else rows.splice(at + 1, 0, p);
  }
  let points = 0;

  async function refresh() {
    const [node, agent, rules, recent] = await Promise.all([
      api("GET", base), api("GET", base + "/agent"), api("GET", base + "/rules"),
      api("GET", "/incidents?limit=10&node=" + encodeURIComponent(uuid)),
    ]);
    const n = node.node;
    document.title = n.name + " · fasttrace";
    $("node-name").textContent = `Node ${n.name} (${n.ip})`;
    const status = $("node-status");
    status.textContent = n.status; status.className = "v status-" + n.status;
    $("banner").hidden = n.status !== "attack";
    $("banner").textContent = `${n.name} is under attack: ${n.active_incidents} active incident(s).`;
    $("agent-version").textContent = agent.agent.version || "–";
    $("xdp-mode").textContent = agent.agent.xdp_mode || "–";
    $("heartbeat").textContent = when(agent.agent.last_heartbeat);
    $("baseline").textContent = n.baseline ? `${num(n.baseline.avg_pps)} / ${num(n.baseline.p95_pps)}` : "learning";
    showUpstream(n);
    const admin = state.me.role === "admin";
    fill($("rules").tBodies[0], rules.rules.filter((r) => !r.removed_at).map((r) => el("tr", {},
      cell(r.target), cell(r.status), cell(num(r.ttl_s), "num"), cell(when(r.expires_at)), cell(r.error || ""),
      el("td", {}, admin ? el("button", { type: "button", class: "secondary", text: "Unblock",
        "aria-label": "Unblock " + r.target,
        onclick: () => api("DELETE", `${base}/rules/${r.id}`).then(refresh).catch((e) => showError($("block-error"), e.message)) }) : ""))),
    "No operator rule.", 6);
    // The agent reports each mitigation rule's drop counter with its incident.
    const active = recent.incidents.filter((i) => i.status === "active");
    const details = await Promise.all(active.map((i) => api("GET", "/incidents/" + encodeURIComponent(i.uuid))));
    const inForce = details.flatMap(({ incident: i }) => i.mitigation_rules.map((r) => el("tr", {},
      el("td", {}, el("a", { href: "/dash/incidents/" + encodeURIComponent(i.uuid), text: i.family })),
      cell(r.kind), cell(r.match), cell(r.action), cell(num(r.dropped_packets), "num"))));
    fill($("in-force").tBodies[0], inForce, "No mitigation rule in force.", 5);
    fill($("recent").tBodies[0], recent.incidents.map((i) => el("tr", {},
      el("td", {}, el("a", { href: "/dash/incidents/" + encodeURIComponent(i.uuid), text: i.family })),
      cell(i.status, "status-" + i.status), cell(i.severity), cell(when(i.started_at)), cell(num(i.peak_pps), "num"))),
    "No incident yet.", 5);
  }

  let lastAttack = null; // of the newest live point
  let upstreamShown = false;
  function showUpstream(n) {
    $("upstream-policy").textContent = (n.mitigation_policy || "local").replaceAll("_", " ");
    $("uplink").textContent = n.uplink_mbps === null || n.uplink_mbps === undefined ? "not declared" : num(n.uplink_mbps);
    if (upstreamShown) return; // the periodic refresh never overwrites what is being edited
    upstreamShown = true;
    $("mitigation-policy").value = n.mitigation_policy || "local";
    $("uplink-mbps").value = n.uplink_mbps ?? "";
  }

  $("upstream-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("upstream-error"), "");
    const raw = $("uplink-mbps").value.trim();
    try {
      const { node: n } = await api("PATCH", base, {
        mitigation_policy: $("mitigation-policy").value,
        uplink_mbps: raw === "" ? null : Number(raw),
      });
      upstreamShown = false;
      showUpstream(n);
      $("upstream-status").textContent = `Saved: ${n.mitigation_policy.replaceAll("_", " ")}, uplink ${n.uplink_mbps === null ? "not declared" : num(n.uplink_mbps) + " Mbit/s"}.`;
    } catch (e) {
      showError($("upstream-error"), e.message);
      (e.field === "uplink_mbps" ? $("uplink-mbps") : $("mitigation-policy")).focus();
    }
  });

  $("block-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("block-error"), "");
    try {
      await api("POST", base + "/rules", { target: $("block-target").value.trim(), ttl_s: Number($("block-ttl").value) });
      $("block-target").value = "";
      await refresh();
    } catch (e) {
      showError($("block-error"), e.message);
      (e.field === "ttl_s" ? $("block-ttl") : $("block-target")).focus();
    }
  });

  function draw() {
    const now = Date.now() / 1000;
    while (rows.length && rows[0].ts < now - WINDOW_S) rows.shift();
    const xs = rows.map((p) => p.ts);
    pps.setData([xs,
      rows.map((p) => p.baseline_p95_pps), rows.map((p) => p.baseline_avg_pps),
      ...PROTOCOLS.map(([name]) => rows.map((p) => (p.protocols[name] ?? null))),
      rows.map((p) => p.dropped_pps)]);
    bps.setData([xs, rows.map((p) => p.bps), rows.map((p) => p.dropped_bps)]);
    $("pps-chart").dataset.points = String(points);
    if (rows.length) {
      const p = rows[rows.length - 1];
      $("chart-note").textContent = `Last point ${new Date(p.ts * 1000).toLocaleTimeString("en-GB")}: ${num(p.pps)} pps (${num(p.dropped_pps)} dropped), ${num(p.bps)} bps.`;
    }
  }

  await refresh();
  live("/live/nodes/" + encodeURIComponent(uuid), {
    backfill: (b) => {
      for (const p of b.points) upsert(p);
      $("pps-chart").dataset.backfill = String(b.points.length);
      draw();
    },
    point: (p) => {
      upsert(p);
      points += 1;
      // The first point, and an attack starting or ending: the status, banner, rules and
      // incidents change now, not at the next periodic refresh.
      if (p.attack !== lastAttack) {
        lastAttack = p.attack;
        refresh().catch(() => {});
      }
    },
  });
  setInterval(draw, 1000);
  setInterval(() => refresh().catch(() => {}), 15000);
};

pages.incidents = async function () {
  const form = $("filters");
  const params = new URLSearchParams(location.search);
  for (const name of ["status", "severity", "scope"]) form.elements[name].value = params.get(name) || "";
  const limit = 50;
  let offset = Number(params.get("offset") || 0);

  const nodes = await api("GET", "/nodes?limit=100");
  for (const n of nodes.nodes) $("node-filter").append(el("option", { value: n.uuid, text: n.name }));
  form.elements.node.value = params.get("node") || "";

  async function load() {
    const query = new URLSearchParams({ limit, offset });
    for (const name of ["status", "severity", "node", "scope"]) if (form.elements[name].value) query.set(name, form.elements[name].value);
    showError($("list-error"), "");
    try {
      const list = await api("GET", "/incidents?" + query);
      $("incidents-count").textContent = `${list.total} incident(s); showing ${list.total ? offset + 1 : 0}–${offset + list.incidents.length}`;
      fill($("incidents").tBodies[0], list.incidents.map((i) => el("tr", {},
        el("td", {}, el("a", { href: "/dash/incidents/" + encodeURIComponent(i.uuid), text: `${i.family}${i.subtype ? " / " + i.subtype : ""}` })),
        cell(where(i)), cell(i.status, "status-" + i.status), cell(i.severity), cell(when(i.started_at)),
        cell(num(i.duration_sec), "num"), cell(num(i.peak_pps), "num"))), "No incident matches.", 7);
      $("prev").disabled = offset === 0;
      $("next").disabled = offset + list.incidents.length >= list.total;
      query.delete("limit");
      history.replaceState(null, "", "/dash/incidents?" + query);
    } catch (e) {
      showError($("list-error"), e.message);
    }
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); offset = 0; load(); });
  $("prev").addEventListener("click", () => { offset = Math.max(0, offset - limit); load(); });
  $("next").addEventListener("click", () => { offset += limit; load(); });
  await load();
};

pages.incident = async function () {
  const uuid = decodeURIComponent(location.pathname.split("/").pop());
  const path = "/incidents/" + encodeURIComponent(uuid);

  async function load() {
    const { incident: i } = await api("GET", path);
    const fleet = i.scope === "fleet";
    document.title = `${i.family} on ${where(i)} · fasttrace`;
    $("incident-title").textContent = `${i.family}${i.subtype ? " / " + i.subtype : ""} on ${where(i)}`;
    $("summary").textContent = i.summary;
    const status = $("inc-status");
    status.textContent = i.status.replace("_", " "); status.className = "v status-" + i.status;
    $("inc-severity").textContent = i.severity;
    $("inc-scope").textContent = fleet ? "fleet" : "node";
    $("inc-node-k").textContent = fleet ? "Group" : "Node";
    if (fleet) $("inc-node").textContent = i.group === "workspace" ? "whole workspace" : i.group;
    else $("inc-node").replaceChildren(el("a", { href: "/dash/nodes/" + encodeURIComponent(i.node.uuid), text: i.node.name }));
    $("inc-peak").textContent = num(i.peak_pps);
    $("inc-sources").textContent = num(i.source_count);
    // A fleet incident has no sources of its own (each node sees its own) and no one
    // node's timeline: its nodes table instead.
    $("inc-sources-card").hidden = fleet;
    $("sources-section").hidden = fleet;
    $("timeline-section").hidden = fleet;
    $("fleet-section").hidden = !fleet;
    $("mit-note").hidden = !fleet;
    const link = $("fleet-link");
    link.hidden = !i.fleet_incident_uuid;
    if (i.fleet_incident_uuid) {
      link.replaceChildren("Opened during a fleet incident of this node's group: ",
        el("a", { href: "/dash/incidents/" + encodeURIComponent(i.fleet_incident_uuid), text: "open the fleet incident" }), ".");
    }
    if (fleet) {
      fill($("fleet-nodes").tBodies[0], i.nodes.map((n) => el("tr", {},
        el("td", {}, el("a", { href: "/dash/nodes/" + encodeURIComponent(n.node_uuid), text: n.node_name })),
        cell(n.state, n.state === "reporting" ? "status-online" : "status-offline"),
        cell(num(n.share * 100, 1), "num"), cell(num(n.peak_pps), "num"), cell(num(n.peak_bps), "num"),
        cell(n.rules.length ? n.rules.map((r) => r.match).join("; ") : "none reported"),
        cell(num(n.dropped_packets), "num"), cell(num(n.spared_packets), "num"),
        cell(n.in_force_since ? when(n.in_force_since) : "–"))),
      "No node reported yet.", 9);
    }
    $("times").textContent = `Started ${when(i.started_at)}; ${i.ended_at ? "ended " + when(i.ended_at) : "still active"}; mitigated ${when(i.mitigated_at)}; ${num(i.duration_sec)} s.`;
    $("actions").hidden = !(state.me.role === "admin" && i.status === "active");
    const pcap = $("pcap");
    if (i.pcap) {
      pcap.replaceChildren(el("a", { href: "/api/dash" + path + "/pcap", download: uuid + ".pcap", id: "pcap-link", text: `Download pcap (${num(i.pcap.size)} bytes)` }),
        el("span", { class: "muted", text: ` sha256 ${i.pcap.sha256}` }));
    } else {
      pcap.textContent = "No pcap uploaded (yet).";
    }
    const shares = Object.entries(i.protocols).sort((a, b) => b[1] - a[1]);
    fill($("protocols").tBodies[0], shares.map(([p, s]) => el("tr", {}, cell(p), cell(num(s, 1), "num"))), "No breakdown reported.", 2);
    fill($("sources").tBodies[0], i.top_sources.map((s) => el("tr", {}, cell(s.ip), cell(s.country || "unknown"), cell(num(s.pps), "num"), cell(num(s.bps), "num"))), "No sources reported.", 4);
    fill($("geo").tBodies[0], i.geo_origin.map((g) => el("tr", {}, cell(g.country), cell(num(g.share, 1), "num"))), "–", 2);
    fill($("mitigation").tBodies[0], i.mitigation_rules.map((r) => el("tr", {}, cell(r.kind), cell(r.match), cell(r.action),
      cell(fleet ? "per node" : num(r.dropped_packets), "num"))), "No mitigation rule.", 4);
    if (!fleet) await timeline(i);
  }

  // The node's traffic over the incident: one-second points while the store keeps them
  // (the last hour: a fresh incident draws at once), one-minute roll-ups before that.
  async function timeline(i) {
    const tl = await api("GET", `/incidents/${encodeURIComponent(i.uuid)}/timeline`);
    const pts = tl.points.map((p) => ({ ...p, t: Date.parse(p.t) / 1000 }));
    const container = $("timeline");
    container.replaceChildren();
    const chart = timeChart(container, [
      { label: "Received pps", stroke: "#0550ae", width: 2 },
      { label: "Dropped pps", stroke: "#a40e26", width: 2, fill: "rgba(164,14,38,0.15)" },
    ]);
    chart.setData([pts.map((p) => p.t), pts.map((p) => p.pps), pts.map((p) => p.dropped_pps)]);
    const seconds = pts.filter((p) => p.step_sec === 1).length;
    const minutes = pts.length - seconds;
    container.dataset.points = String(pts.length);
    container.dataset.seconds = String(seconds);
    const parts = [];
    if (minutes) parts.push(`${plural(minutes, "one-minute roll-up")} before ${when(tl.seconds_since)}`);
    if (seconds) parts.push(plural(seconds, "one-second point"));
    $("timeline-note").textContent = pts.length ? parts.join(", then ") + "." : "No stored traffic for this period yet.";
  }

  async function mark(status) {
    showError($("action-error"), "");
    try {
      await api("PATCH", path, { status });
      await load();
      $("inc-status").focus?.();
    } catch (e) {
      showError($("action-error"), e.message);
    }
  }
  $("mark-resolved").addEventListener("click", () => mark("resolved"));
  $("mark-fp").addEventListener("click", () => mark("false_positive"));
  await load();
};

pages.channels = async function () {
  const admin = state.me.role === "admin";
  const { forms } = await api("GET", "/channel-forms");
  const typeSelect = $("channel-type");
  for (const f of forms) typeSelect.append(el("option", { value: f.type, text: f.type }));

  function renderFields() {
    const form = forms.find((f) => f.type === typeSelect.value);
    const box = $("channel-fields");
    box.replaceChildren(el("legend", { text: `Settings of a ${form.type} channel` }));
    for (const f of form.fields) {
      const id = "cfg-" + f.name;
      const hint = f.kind === "list" ? " (comma-separated)" : f.kind === "json" ? " (JSON)" : "";
      let input;
      if (f.kind === "select") {
        input = el("select", { id, name: f.name }, ...f.options.map((o) => el("option", { value: o, text: o, selected: o === f.default })));
      } else {
        input = el(f.kind === "json" ? "textarea" : "input", {
          id, name: f.name, required: f.required,
          type: f.kind === "number" ? "number" : f.secret ? "password" : f.kind === "json" ? null : "text",
          placeholder: f.default ?? "", autocomplete: f.secret ? "new-password" : "off",
        });
      }
      box.append(el("label", { for: id }, `${f.name}${f.required ? " (required)" : ""}${hint}`, input));
    }
  }

  function config() {
    const form = forms.find((f) => f.type === typeSelect.value);
    const out = {};
    for (const f of form.fields) {
      const raw = $("cfg-" + f.name).value.trim();
      if (raw === "" && f.kind !== "select") continue;
      if (f.kind === "number") out[f.name] = Number(raw);
      else if (f.kind === "list") out[f.name] = raw.split(",").map((s) => s.trim()).filter(Boolean);
      else if (f.kind === "json") {
        try { out[f.name] = JSON.parse(raw); } catch (e) { throw new ApiError(400, { error: `config.${f.name}: not valid JSON`, field: "config." + f.name }); }
      } else out[f.name] = raw;
    }
    return out;
  }

  async function showLog(channel) {
    const list = await api("GET", `/channels/${channel.id}/deliveries?limit=20`);
    $("log-section").hidden = false;
    $("log-channel").textContent = channel.name;
    fill($("deliveries").tBodies[0], list.deliveries.map((d) => el("tr", {},
      cell(when(d.attempted_at)), cell(d.event), cell(d.attempt, "num"), cell(d.outcome, d.outcome === "delivered" ? "status-online" : "status-active"),
      cell(d.http_status ?? "–", "num"), cell(d.error || ""))), "No delivery yet.", 6);
  }

  async function loadList() {
    const { channels } = await api("GET", "/channels");
    fill($("channels").tBodies[0], channels.map((c) => el("tr", {},
      cell(c.name), cell(c.type), cell(c.enabled ? "yes" : "no"), cell(when(c.created_at)),
      el("td", {},
        admin ? el("button", { type: "button", text: "Send test", "aria-label": "Send a test to " + c.name, onclick: async () => {
          $("channel-status").textContent = `Sending a test to ${c.name}…`;
          try {
            const r = await api("POST", `/channels/${c.id}/test`);
            $("channel-status").textContent = `Test to ${c.name}: ${r.delivery.status}${r.delivery.http_status ? " (HTTP " + r.delivery.http_status + ")" : ""}${r.delivery.error ? ": " + r.delivery.error : ""}.`;
          } catch (e) { $("channel-status").textContent = `Test to ${c.name} failed: ${e.message}`; }
          await showLog(c);
        } }) : "",
        " ",
        el("button", { type: "button", class: "secondary", text: "Delivery log", "aria-label": "Delivery log of " + c.name, onclick: () => showLog(c) })))),
    "No channel yet.", 5);
  }

  typeSelect.addEventListener("change", renderFields);
  typeSelect.value = "webhook";
  renderFields();
  $("channel-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("channel-error"), "");
    try {
      const body = { name: $("channel-name").value.trim(), type: typeSelect.value, config: config() };
      const created = await api("POST", "/channels", body);
      $("channel-status").textContent = `Channel ${created.channel.name} created.`;
      $("channel-form").reset();
      typeSelect.value = body.type;
      renderFields();
      await loadList();
    } catch (e) {
      showError($("channel-error"), e.message);
      const key = (e.field || "").replace(/^config\./, "").split(".")[0];
      const target = e.field === "name" ? $("channel-name") : $("cfg-" + key);
      if (target) target.focus();
    }
  });
  await loadList();
};

pages.workspace = async function () {
  const { workspace: w } = await api("GET", "/workspace");
  $("ws-name").textContent = w.name;
  $("ws-plan").textContent = w.plan;
  $("ws-sub").textContent = w.subscription_status.replace("_", " ");
  $("ws-nodes").textContent = `${w.node_count} / ${w.node_limit}`;
  if (state.me.role !== "admin") return;

  async function loadUsers() {
    const { users } = await api("GET", "/users");
    fill($("users").tBodies[0], users.map((u) => {
      const self = u.email === state.me.email;
      const role = el("select", { "aria-label": "Role of " + u.email, disabled: self },
        ...["viewer", "admin"].map((r) => el("option", { value: r, text: r, selected: r === u.role })));
      role.addEventListener("change", () => userChange(`Role of ${u.email} is now ${role.value}.`,
        () => api("PATCH", "/users/" + u.id, { role: role.value })));
      return el("tr", {}, cell(u.email + (self ? " (you)" : "")), el("td", {}, role), cell(when(u.created_at)),
        el("td", {}, self ? "" : el("button", { type: "button", class: "danger", text: "Remove",
          "aria-label": "Remove " + u.email,
          onclick: () => confirm(`Remove ${u.email}? Their sessions end at once.`) &&
            userChange(`${u.email} removed.`, () => api("DELETE", "/users/" + u.id)) })));
    }), "No user.", 4);
  }

  async function userChange(done, call) {
    showError($("user-error"), "");
    try {
      await call();
      $("user-status").textContent = done;
    } catch (e) {
      showError($("user-error"), e.message);
    }
    await loadUsers();
  }

  $("user-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("user-error"), "");
    const once = $("user-password-once");
    once.hidden = true;
    const body = { email: $("user-email").value.trim(), role: $("user-role").value };
    if ($("user-password").value) body.password = $("user-password").value;
    try {
      const r = await api("POST", "/users", body);
      $("user-form").reset();
      $("user-status").textContent = `${r.user.email} added as ${r.user.role}.`;
      if (r.password) {
        once.textContent = `Password of ${r.user.email} (shown once, copy it now): ${r.password}`;
        once.hidden = false;
        once.focus();
      }
      await loadUsers();
    } catch (e) {
      showError($("user-error"), e.message);
      (e.field === "password" ? $("user-password") : e.field === "role" ? $("user-role") : $("user-email")).focus();
    }
  });
  await loadUsers();
  $("rotate").addEventListener("click", async () => {
    if (!confirm("Revoke the current deploy token and make a new one?")) return;
    const out = $("new-token");
    try {
      const r = await api("POST", "/workspace/deploy-token");
      out.textContent = `New deploy token (shown once, copy it now): ${r.token}`;
    } catch (e) {
      out.textContent = "Rotation failed: " + e.message;
    }
    out.hidden = false;
    out.focus?.();
  });
};

// ---- start ----------------------------------------------------------------------------

async function start() {
  const page = document.body.dataset.page;
  if (page !== "login") {
    try {
      state.me = await api("GET", "/me");
    } catch (e) {
      return; // signIn() is on its way
    }
    $("who").textContent = `${state.me.email} (${state.me.role}, ${state.me.workspace})`;
    const logout = $("logout");
    logout.hidden = false;
    logout.addEventListener("click", async () => {
      try { await api("POST", "/logout"); } finally { location.assign("/dash/login"); }
    });
    roleGate();
  }
  try {
    await pages[page]();
    document.body.dataset.ready = "true";
  } catch (e) {
    if (e.status === 401) return;
    const main = $("main");
    main.prepend(el("p", { class: "error", role: "alert", text: "Could not load this page: " + e.message }));
    throw e;
  }
}

document.addEventListener("DOMContentLoaded", start);
