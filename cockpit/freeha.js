/* The FreeHA page of Cockpit: shows freehad's status document (GetStatus() on
 * org.freeha1, freeha-status(5): one document, one builder, the same facts as
 * freehactl status) and carries out the admin's actions through the same
 * D-Bus methods as freehactl.
 *
 * Live: the document is fetched again as soon as freehad signals a change of
 * any property (PropertiesChanged, on the manager, a node or a service group
 * object) or adds or removes an object (a node first heard, a group added or
 * removed by a reload), so a failover shows within a round trip of the
 * signal. What moves with every heartbeat (ages, link counts) is
 * deliberately not signalled by freehad; for it the page asks again every
 * few seconds, over D-Bus (never a file).
 *
 * Who may act is the bus policy's call (org.freeha1.conf: anyone reads, only
 * root changes): the page offers every action to everyone and shows the
 * refusal's own text, so that a user learns why, from the one that decides.
 */
"use strict";

const BUS_NAME = "org.freeha1";
const MANAGER_PATH = "/org/freeha1";
const MANAGER = "org.freeha1.Manager";
const GROUP_PATH_PREFIX = "/org/freeha1/group";
const GROUP = "org.freeha1.Group";
// freehad's journal entry for a change of state (freehad(8), JOURNAL).
const STATE_CHANGED = "80d372c04a184ba8a9b11d31582862bb";
const AGES_REFRESH_MS = 5000;
const RECONNECT_MS = 2000;
const JOURNAL_ROWS = 15;

let client = null;
let status = null; // the last status document, or null while freehad does not answer
let fetching = false;
let fetchAgain = false;
let busy = false; // an action is under way

function $(id) {
    return document.getElementById(id);
}

function text(id, value) {
    $(id).textContent = value;
}

function element(tag, content, className) {
    const e = document.createElement(tag);
    if (content !== undefined && content !== null) e.textContent = String(content);
    if (className) e.className = className;
    return e;
}

function yesNo(b) {
    return b ? "yes" : "no";
}

function seconds(usec) {
    if (usec === null || usec === undefined) return "never";
    if (usec < 1000000) return (usec / 1000).toFixed(0) + " ms ago";
    return (usec / 1000000).toFixed(1) + " s ago";
}

function wallClock(realtimeUsec) {
    const d = new Date(Number(realtimeUsec) / 1000);
    const pad = n => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
           `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// --- the status document --------------------------------------------------

function showDown(why) {
    status = null;
    const e = $("error");
    e.textContent = why;
    e.hidden = false;
    text("active-node", "unknown");
    document.body.dataset.state = "down";
    updateActions();
}

// Fetches the document; calls that arrive meanwhile make one more fetch after it.
function refresh() {
    if (!client) return;
    if (fetching) {
        fetchAgain = true;
        return;
    }
    fetching = true;
    const done = () => {
        fetching = false;
        if (fetchAgain) {
            fetchAgain = false;
            refresh();
        }
    };
    client.call(MANAGER_PATH, MANAGER, "GetStatus", [])
            .then(reply => {
                try {
                    status = JSON.parse(reply[0]);
                    $("error").hidden = true;
                    render();
                } catch (e) {
                    showDown("cannot show freehad's status document: " + e);
                }
                done();
            }, ex => {
                showDown("freehad does not answer on the system bus: " + ex.message);
                done();
            });
}

function render() {
    const s = status;
    text("cluster-name", s.cluster);
    text("active-node", s.active_node || "none");
    text("this-node", s.node);
    text("this-state", `${s.state} (${s.phase})`);
    text("quorate", s.quorate ? `quorate (${s.expected_nodes} nodes expected)`
        : `NO QUORUM (${s.expected_nodes} nodes expected)`);
    $("quorate").className = s.quorate ? "" : "bad";
    text("term", s.term);
    const m = s.maintenance || { on: false, since_realtime_usec: null };
    text("maintenance", m.on ? "ON" + (m.since_realtime_usec ? " since " + wallClock(m.since_realtime_usec) : "") : "off");
    $("maintenance-banner").hidden = !m.on;
    text("maintenance-banner", "Maintenance mode is on: no node starts, stops, monitors or fails over anything.");
    text("standby", yesNo(s.standby));
    text("errored", s.errored ? "SET: " + (s.last_error || "error") : "clear");
    $("errored").className = s.errored ? "bad" : "";
    text("services", s.mode === "target" ? `target mode (${s.services_target})` : "scripts mode (hooks)");
    text("version", s.version);
    document.body.dataset.state = s.state;
    // With service groups the keys above are the default group's (freeha-status(5)).
    const grouped = hasGroups(s);
    text("active-node-label", grouped ? "Active node (default group)" : "Active node");
    text("switchover-label", grouped ? "Switch the default group over to" : "Switch the services over to");
    renderNodes(s);
    renderGroups(s);
    renderAddresses(s);
    updateActions();
}

function renderNodes(s) {
    const body = $("nodes").tBodies[0];
    body.replaceChildren();
    for (const n of s.nodes) {
        const row = document.createElement("tr");
        row.dataset.node = n.name;
        const name = element("td", n.name + (n.self ? " (this node) " : " "), "name");
        if (n.name === s.active_node) name.append(element("span", "active", "badge active"));
        row.append(name);
        row.append(element("td", n.state, "state state-" + n.state.toLowerCase()));
        row.append(element("td", yesNo(n.reachable), n.reachable ? "reachable" : "reachable bad"));
        row.append(element("td", n.self ? "" : seconds(n.last_heard_usec_ago)));
        const flags = [];
        if (n.role !== "member") flags.push(n.role);
        if (n.standby) flags.push("standby");
        if (n.errored) flags.push("errored");
        if (n.maintenance) flags.push("maintenance");
        if (n.left) flags.push("left");
        if (n.not_counted) flags.push("not counted: " + n.not_counted);
        row.append(element("td", flags.join(", ")));
        row.append(element("td", n.version || ""));
        const links = element("td", null, "links");
        if (!n.self) {
            for (const c of n.channels || []) {
                const ratio = c.recent_loss_ratio === null ? "none judged"
                    : (c.recent_loss_ratio * 100).toFixed(0) + " %";
                const line = element("div", `${c.name}: ${c.received} / ${c.lost}, ${ratio}` +
                    (c.lossy ? " (LOSSY)" : ""), c.lossy ? "bad" : "");
                links.append(line);
            }
        }
        row.append(links);
        body.append(row);
    }
}

function renderAddresses(s) {
    const list = s.addresses || [];
    $("addresses").hidden = list.length === 0;
    $("no-addresses").hidden = list.length !== 0;
    const body = $("addresses").tBodies[0];
    body.replaceChildren();
    for (const a of list) {
        const row = document.createElement("tr");
        row.append(element("td", a.address), element("td", a.device), element("td", yesNo(a.up)));
        row.append(element("td", a.conflicts + (a.foreign_mac ? ` (last seen from ${a.foreign_mac})` : ""),
                           a.conflicts ? "bad" : ""));
        body.append(row);
    }
}

// --- service groups ----------------------------------------------------------

// The groups x nodes table shows only when there is more than the default
// group, as in freehactl status: the default group alone is what the summary
// and the node table already show.
function hasGroups(s) {
    return (s.groups || []).length > 1;
}

// The object of a group: its name bus-escaped as sd_bus_path_encode() does
// (freehad(8), D-Bus): every byte but A-Z a-z and a digit not in front becomes
// _ and two lowercase hex digits.
function groupPath(name) {
    let label = "";
    for (const byte of new TextEncoder().encode(name)) {
        const c = String.fromCharCode(byte);
        const keep = /[A-Za-z]/.test(c) || (label !== "" && /[0-9]/.test(c));
        label += keep ? c : "_" + byte.toString(16).padStart(2, "0");
    }
    return GROUP_PATH_PREFIX + "/" + (label || "_");
}

// What a node announces of a group, as freehactl status writes it.
function groupCell(m) {
    if (!m) return "-";
    if (m.aside && m.state === "STANDBY") return "ASIDE"; // the group cannot run there now
    return m.state + (m.errored && m.state !== "ERRORED" ? " (errored)" : "");
}

function renderGroups(s) {
    const grouped = hasGroups(s);
    $("groups-section").hidden = !grouped;
    const body = $("groups").tBodies[0];
    if (!grouped) {
        body.replaceChildren();
        return;
    }
    const head = $("groups").tHead.rows[0];
    const columns = s.nodes.map(n => n.name);
    const heads = ["Group", "Active node", "State here", "Term", "Error latch here", ...columns, "Actions"];
    if (Array.from(head.cells, c => c.textContent).join("\n") !== heads.join("\n"))
        head.replaceChildren(...heads.map(h => element("th", h)));
    const rows = new Map(Array.from(body.rows, r => [r.dataset.group, r]));
    s.groups.forEach((g, i) => {
        let row = rows.get(g.name);
        rows.delete(g.name);
        if (!row) row = newGroupRow(g.name);
        if (body.rows[i] !== row) body.insertBefore(row, body.rows[i] || null);
        // The facts are redrawn; the actions cell stays, so that a list the
        // admin has open, and what they picked, survive an update.
        const actions = row.cells[row.cells.length - 1];
        while (row.firstChild !== actions) row.firstChild.remove();
        const name = element("td", g.name, "name");
        const active = element("td", g.active_node || "none", "active");
        let here = `${g.state} (${g.phase})`;
        if (g.handover_to) here += `, handing over to ${g.handover_to}`;
        if (g.unavailable) here += `; cannot run here: ${g.unavailable}`;
        const state = element("td", here, "state state-" + g.state.toLowerCase());
        const term = element("td", g.term, "term");
        const errored = element("td", g.errored ? "SET: " + (g.last_error || "error") : "clear",
                                g.errored ? "errored bad" : "errored");
        const cells = columns.map(node => {
            const m = (g.nodes || []).find(n => n.name === node);
            const runsIt = m && node === g.active_node;
            const cell = element("td", groupCell(m) + (runsIt ? " " : ""),
                                 "node state-" + (m ? m.state.toLowerCase() : "none"));
            cell.dataset.node = node;
            if (runsIt) cell.append(element("span", "active", "badge active"));
            return cell;
        });
        actions.before(name, active, state, term, errored, ...cells);
    });
    for (const stale of rows.values()) stale.remove();
    const notes = [];
    if ((s.rebalance || []).length)
        notes.push(`Spread uneven: ${s.rebalance.length} planned switchover(s) would even it (` +
                   s.rebalance.map(m => `group ${m.group}: ${m.from} -> ${m.to}`).join("; ") + ", freehactl rebalance).");
    text("groups-note", notes.join(" "));
    $("groups-note").hidden = notes.length === 0;
}

function newGroupRow(name) {
    const row = document.createElement("tr");
    row.dataset.group = name;
    const actions = element("td", null, "actions-cell");
    const select = element("select", null, "switchover-target");
    select.setAttribute("aria-label", `Switch group ${name} over to`);
    const switchover = element("button", "Switch over", "switchover");
    switchover.type = "button";
    switchover.addEventListener("click", () => {
        const to = select.value;
        act(`Switchover of group ${name} to ${to}`, "Switchover", [to], groupPath(name), GROUP, "group-action-result");
    });
    const clear = element("button", "Clear error", "clear-error");
    clear.type = "button";
    clear.addEventListener("click", () =>
        act(`Clear error of group ${name}`, "ClearError", [], groupPath(name), GROUP, "group-action-result"));
    actions.append(select, switchover, clear, element("span", "", "hint muted"));
    row.append(actions);
    return row;
}

// The nodes a switchover of group `g` may go to, as freehad will judge them (Group::switchover).
function groupSwitchoverTargets(s, g) {
    return (g.nodes || []).filter(m => {
        const n = s.nodes.find(node => node.name === m.name);
        return n && !m.self && n.reachable && n.role === "member" && !n.standby &&
               m.state === "STANDBY" && !m.aside && !m.errored;
    }).map(m => m.name);
}

function updateGroupActions(s) {
    if (!s || !hasGroups(s)) return;
    for (const row of $("groups").tBodies[0].rows) {
        const g = s.groups.find(group => group.name === row.dataset.group);
        if (!g) continue;
        const select = row.querySelector("select.switchover-target");
        const targets = groupSwitchoverTargets(s, g);
        setOptions(select, targets);
        const running = g.state === "RUNNING";
        select.disabled = busy || !running || targets.length === 0;
        row.querySelector("button.switchover").disabled = select.disabled;
        row.querySelector("button.clear-error").disabled = busy || !g.errored;
        let hint = "";
        if (!running)
            hint = g.active_node ? `a switchover is run on ${g.active_node}` : "no node runs it";
        else if (targets.length === 0)
            hint = "no other node can take it now";
        row.querySelector(".hint").textContent = hint;
    }
}

// --- actions ---------------------------------------------------------------

// The nodes a switchover may go to, as freehad will judge them (Node::switchover).
function switchoverTargets(s) {
    return s.nodes.filter(n => !n.self && n.reachable && n.role === "member" && n.state === "STANDBY" &&
                               !n.standby && !n.errored).map(n => n.name);
}

// Rebuilt only when the choice changes: every update of the status would
// otherwise close a list the admin has open and drop what they picked.
function setOptions(select, targets) {
    const shown = Array.from(select.options, o => o.value);
    if (shown.join("\n") === targets.join("\n")) return;
    const chosen = select.value;
    select.replaceChildren();
    for (const t of targets) select.append(new Option(t, t));
    if (targets.includes(chosen)) select.value = chosen;
}

function updateActions() {
    const s = status;
    const select = $("switchover-target");
    const targets = s ? switchoverTargets(s) : [];
    setOptions(select, targets);
    const active = s !== null && s.state === "RUNNING";
    $("switchover").disabled = busy || !active || targets.length === 0;
    select.disabled = busy || !active || targets.length === 0;
    let hint = "";
    if (s && !active)
        hint = "A switchover is run on the active node" + (s.active_node ? ` (${s.active_node})` : "") + ".";
    else if (s && targets.length === 0)
        hint = "No other node can take the services now.";
    text("switchover-hint", hint);
    $("standby-toggle").textContent = s && s.standby ? "Standby off" : "Standby on";
    $("maintenance-toggle").textContent = s && s.maintenance && s.maintenance.on ? "Maintenance off" : "Maintenance on";
    $("standby-toggle").disabled = busy || !s;
    $("maintenance-toggle").disabled = busy || !s;
    $("clear-error").disabled = busy || !s || !s.errored;
    updateGroupActions(s);
}

// Calls `method` of the manager (or of `path`, `iface`: a group object) and
// shows the answer, "done" or the refusal in the bus's words, in `resultId`.
function act(what, method, args, path = MANAGER_PATH, iface = MANAGER, resultId = "action-result") {
    const result = $(resultId);
    busy = true;
    updateActions();
    result.hidden = false;
    result.classList.remove("ok", "refused");
    result.textContent = what + ": asking freehad\u2026";
    const finish = (ok, message) => {
        busy = false;
        result.classList.add(ok ? "ok" : "refused");
        result.textContent = message;
        updateActions();
        refresh();
    };
    client.call(path, iface, method, args)
            .then(() => finish(true, what + ": done."),
                  ex => finish(false, `${what} refused: ${ex.message}` + (ex.name ? ` (${ex.name})` : "")));
}

function setUpActions() {
    $("switchover").addEventListener("click", () => {
        const to = $("switchover-target").value;
        act(`Switchover to ${to}`, "Switchover", [to]);
    });
    $("standby-toggle").addEventListener("click", () => {
        const on = !(status && status.standby);
        act(on ? "Standby on" : "Standby off", "SetStandby", [on]);
    });
    $("clear-error").addEventListener("click", () => act("Clear error", "ClearError", []));
    $("maintenance-toggle").addEventListener("click", () => {
        const on = !(status && status.maintenance && status.maintenance.on);
        act(on ? "Maintenance on" : "Maintenance off", "SetMaintenance", [on]);
    });
}

// --- the journal -------------------------------------------------------------

// The last state changes, then each new one as journald has it: `journalctl
// --follow` streams them, so the page learns of one without asking again.
function followJournal() {
    const body = $("journal").tBodies[0];
    let pending = "";
    const note = line => {
        const n = $("journal-note");
        n.hidden = false;
        n.textContent = (n.textContent ? n.textContent + " " : "") + line;
    };
    const add = entry => {
        const row = document.createElement("tr");
        row.append(element("td", wallClock(entry.__REALTIME_TIMESTAMP)));
        const message = Array.isArray(entry.MESSAGE) ? "(binary message)" : entry.MESSAGE;
        row.append(element("td", (entry.FREEHA_NODE ? entry.FREEHA_NODE + ": " : "") + message));
        body.prepend(row);
        while (body.rows.length > JOURNAL_ROWS) body.deleteRow(body.rows.length - 1);
    };
    cockpit.spawn(["journalctl", "--unit=freehad.service", "--output=json", "--lines=" + JOURNAL_ROWS,
        "--follow", "--no-pager", "MESSAGE_ID=" + STATE_CHANGED], { err: "out", superuser: "try" })
            .stream(data => {
                pending += data;
                const lines = pending.split("\n");
                pending = lines.pop();
                for (const line of lines) {
                    if (!line.trim()) continue;
                    let entry = null;
                    try {
                        entry = JSON.parse(line);
                    } catch (e) {
                        note(line); // journalctl's own word, e.g. that this user may not read the system journal
                        continue;
                    }
                    add(entry);
                }
            })
            .catch(ex => note("journalctl failed: " + ex.message));
}

// --- start -------------------------------------------------------------------

function connect() {
    client = cockpit.dbus(BUS_NAME, { bus: "system", superuser: "try" });
    // The manager, every node and every group object (all under /org/freeha1).
    client.subscribe({ path_namespace: MANAGER_PATH, interface: "org.freedesktop.DBus.Properties",
        member: "PropertiesChanged" }, () => refresh());
    // InterfacesAdded and InterfacesRemoved: a node first heard, a group a reload added or removed.
    client.subscribe({ path: MANAGER_PATH, interface: "org.freedesktop.DBus.ObjectManager" }, () => refresh());
    // freehad (re)started or went away: its unique name changed.
    client.addEventListener("owner", (ev, owner) => {
        if (owner) refresh();
        else showDown("freehad is not running: nobody owns org.freeha1 on the system bus.");
    });
    client.addEventListener("close", (ev, options) => {
        showDown("the connection to the system bus closed: " + (options.problem || options.message || "no reason given"));
        client = null;
        window.setTimeout(connect, RECONNECT_MS);
    });
    refresh();
}

// Who acts: the logged-in user, or root with Cockpit's administrative access
// (superuser "try" below). The banner only forewarns; the bus decides.
function showIdentity() {
    cockpit.user().then(user => text("identity", `Signed in to Cockpit as ${user.name}.`));
    const admin = cockpit.permission({ admin: true });
    const update = () => {
        const r = $("read-only");
        r.hidden = admin.allowed !== false;
        r.textContent = "Read-only: freehad's bus policy (org.freeha1.conf) lets anyone read the cluster and only " +
            "root change it. An action tried here shows its refusal; log in as root or turn on administrative " +
            "access to act.";
    };
    admin.addEventListener("changed", update);
    update();
}

document.addEventListener("DOMContentLoaded", () => {
    setUpActions();
    showIdentity();
    connect();
    followJournal();
    window.setInterval(refresh, AGES_REFRESH_MS);
    cockpit.transport.wait(() => document.body.dataset.ready = "yes");
});
