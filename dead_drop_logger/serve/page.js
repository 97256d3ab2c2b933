"use strict";
// The live page: every text from the logs goes into the DOM as textContent, never as
// HTML, so a message holding <script> or <img onerror> is shown, not run.
(function () {
  const FEED_MAX = 500;
  const $ = (id) => document.getElementById(id);
  const state = { token: sessionStorage.getItem("ddl-token"), source: null, q: "",
    agentsAt: 0, agents: [], keys: new Set(), teamTimer: null };

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function withToken(url) {
    if (!state.token) return url;
    return url + (url.includes("?") ? "&" : "?") + "access_token=" + encodeURIComponent(state.token);
  }

  async function get(url, accept) {
    const headers = { Accept: accept || "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    const response = await fetch(url, { headers, cache: "no-store" });
    if (response.status === 401) { askToken(); throw new Error("a token is needed"); }
    const body = await response.text();
    if (!response.ok) {
      let message = response.status + "";
      try { message = JSON.parse(body).error.message; } catch (e) { /* not JSON */ }
      const error = new Error(message); error.status = response.status; throw error;
    }
    return body;
  }

  function askToken() {
    $("token").classList.add("open");
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token-input").value.trim();
    sessionStorage.setItem("ddl-token", state.token);
    $("token").classList.remove("open");
    start();
  });

  function ago(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return seconds + "s";
    if (seconds < 3600) return Math.floor(seconds / 60) + "m";
    if (seconds < 86400) return Math.floor(seconds / 3600) + "h";
    return Math.floor(seconds / 86400) + "d";
  }

  function since(stamp) {
    if (!stamp) return null;
    const at = Date.parse(stamp);
    return isNaN(at) ? null : (Date.now() - at) / 1000;
  }

  // -- the agent board -------------------------------------------------------------
  function renderAgents() {
    const box = $("agents");
    const elapsed = (Date.now() - state.agentsAt) / 1000;
    const plus = (value) => (value === null || value === undefined ? null : value + elapsed);
    box.replaceChildren();
    for (const a of state.agents) {
      const card = el("div", "card");
      card.dataset.agent = a.agent;
      const name = el("div", "name", a.agent);
      if (a.room) name.append(" ", el("span", "room", "[" + a.room + "]"));
      if (a.health) name.append(el("span", "health " + a.health, a.health));
      card.append(name);
      if (a.status) card.append(el("div", "row", a.status));
      if (a.task) card.append(el("div", "row", "task " + a.task + " " + (a.task_status || "")));
      const lastAge = a.last_message_age !== undefined ? plus(a.last_message_age) : since(a.last_seen);
      const to = a.last_message_to ? " → " + a.last_message_to : "";
      card.append(el("div", "row", "last message " + ago(lastAge) + " ago" + to));
      if (a.unanswered) {
        card.append(el("div", "row", a.unanswered + " unanswered, oldest " +
          ago(plus(a.oldest_unanswered_wait))));
      }
      card.append(el("div", "row", "24 h: sent " + a.sent + " · received " +
        (a.received.direct + a.received.broadcast)));
      box.append(card);
    }
    if (!state.agents.length) box.append(el("div", "muted", "no agents in the logs yet"));
  }

  async function loadAgents() {
    try {
      state.agents = JSON.parse(await get("/v1/agents?since=1d"));  // the board is about now
      state.agentsAt = Date.now();
      renderAgents();
    } catch (e) { $("agents").replaceChildren(el("div", "muted", e.message)); }
  }

  // -- the task board --------------------------------------------------------------
  async function loadTasks() {
    let tasks = [];
    try { tasks = JSON.parse(await get("/v1/tasks")); } catch (e) { tasks = []; }
    const section = $("tasks-section");
    section.hidden = tasks.length === 0;
    const board = $("board");
    board.replaceChildren();
    const columns = new Map();
    for (const t of tasks) {
      if (!columns.has(t.status)) columns.set(t.status, []);
      columns.get(t.status).push(t);
    }
    for (const [status, list] of columns) {
      const column = el("div", "column");
      column.append(el("h3", null, status + " (" + list.length + ")"));
      for (const t of list) {
        const who = t.assignee || t.assigned_to || "-";
        column.append(el("div", "task", t.task + " · " + who + (t.title ? " · " + t.title : "")));
      }
      board.append(column);
    }
  }

  // -- the feed --------------------------------------------------------------------
  function keyOf(m, room) { return (room || "") + ":" + m.id; }

  function messageNode(m, room, fresh) {
    const li = el("li", fresh ? "new" : null);
    li.dataset.key = keyOf(m, room);
    li.dataset.id = m.id;
    if (room) li.dataset.room = room;
    const head = el("div", "head");
    head.append(String(m.timestamp || "").replace("T", " ").slice(0, 19), "  ");
    if (room) head.append("[" + room + "] ");
    head.append(el("span", "who", (m.from_agent ?? "?") + " → " + (m.to_agent ?? "?")));
    head.append("  #" + m.id);
    if (m.task_id) head.append("  task " + m.task_id);
    if (m.reply_to) head.append("  re #" + m.reply_to);
    if (m.is_cc) head.append("  cc" + (m.cc_original_to ? " of → " + m.cc_original_to : ""));
    li.append(head);
    const content = typeof m.content === "string" ? m.content : JSON.stringify(m.content);
    li.append(el("div", "content", content));
    li.addEventListener("click", () => openThread(m.id, room));
    return li;
  }

  function roomOfKey(key) {
    const colon = (key || "").lastIndexOf(":");
    return colon > 0 ? decodeURIComponent(key.slice(0, colon)) : null;
  }

  async function loadFeed() {
    const feed = $("feed");
    const params = new URLSearchParams({ limit: "100", order: "newest" });
    if (state.q) params.set("q", state.q);
    $("filter-error").textContent = "";
    let page;
    try { page = JSON.parse(await get("/v1/messages?" + params)); }
    catch (e) { $("filter-error").textContent = e.message; feed.replaceChildren(); return false; }
    feed.replaceChildren();
    state.keys.clear();
    page.messages.forEach((m, i) => {
      const node = messageNode(m, roomOfKey(page.keys[i]), false);
      state.keys.add(node.dataset.key);
      feed.append(node);
    });
    return true;
  }

  function addLive(data, id) {
    const m = JSON.parse(data);
    const room = roomOfKey((id || "").split(",")[0]);
    const node = messageNode(m, room, true);
    if (state.keys.has(node.dataset.key)) return;
    state.keys.add(node.dataset.key);
    const feed = $("feed");
    feed.prepend(node);
    while (feed.children.length > FEED_MAX) {
      state.keys.delete(feed.lastElementChild.dataset.key);
      feed.lastElementChild.remove();
    }
    $("count").textContent = String(Number($("count").textContent || "0") + 1);
  }

  function connect() {
    if (state.source) state.source.close();
    const params = new URLSearchParams();
    if (state.q) params.set("q", state.q);
    const url = withToken("/v1/events" + (params.toString() ? "?" + params : ""));
    const source = new EventSource(url);
    state.source = source;
    source.onopen = () => { $("live").textContent = "live"; };
    source.onerror = () => { $("live").textContent = "reconnecting…"; };
    source.onmessage = (event) => addLive(event.data, event.lastEventId);
    source.addEventListener("team", () => {
      clearTimeout(state.teamTimer);
      state.teamTimer = setTimeout(() => { loadAgents(); loadTasks(); }, 200);
    });
  }

  // -- the thread view -------------------------------------------------------------
  async function openThread(id, room) {
    const body = $("thread-body");
    body.replaceChildren(el("div", "muted", "loading…"));
    $("thread").classList.add("open");
    const params = room ? "?room=" + encodeURIComponent(room) : "";
    let thread;
    try { thread = JSON.parse(await get("/v1/threads/" + id + params)); }
    catch (e) { body.replaceChildren(el("div", "muted", e.message)); return; }
    body.replaceChildren();
    const stack = [body];
    for (const post of thread.posts) {
      const m = post.message;
      const details = el("details");
      details.open = true;
      const summary = el("summary", "head");
      summary.append(el("span", "who", (m.from_agent ?? "?") + " → " + (m.to_agent ?? "?")),
        "  #" + m.id + "  " + String(m.timestamp || "").replace("T", " ").slice(0, 19));
      details.append(summary);
      if (post.note) details.append(el("div", "muted", post.note));
      const content = typeof m.content === "string" ? m.content : JSON.stringify(m.content);
      details.append(el("div", "content", content));
      stack.length = Math.min(stack.length, post.depth + 1);
      (stack[stack.length - 1] || body).append(details);
      stack.push(details);
    }
  }

  $("thread-close").addEventListener("click", () => $("thread").classList.remove("open"));
  $("thread").addEventListener("click", (event) => {
    if (event.target === $("thread")) $("thread").classList.remove("open");
  });

  $("filter").addEventListener("submit", async (event) => {
    event.preventDefault();
    state.q = $("q").value.trim();
    if (await loadFeed()) connect();
  });

  setInterval(renderAgents, 10000); // ages move with time alone: no request

  async function start() {
    $("report").href = withToken("/report");
    await loadAgents();
    await loadTasks();
    await loadFeed();
    connect();
    document.body.dataset.ready = "1";
  }
  start();
})();
