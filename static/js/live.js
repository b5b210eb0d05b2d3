// Live status page: one websocket for events, the whole status once and then its deltas (nothing while
// nothing changes; a silent server's age is counted here); on a dropped socket it shows so, resynchronises
// from the status API, and reconnects.
(function () {
  "use strict";
  const root = document.getElementById("live");
  if (!root) return;
  const badge = document.getElementById("connection");
  const feed = document.getElementById("feed");
  const filters = document.getElementById("filters");
  const visible = new Set();
  let socket = null;
  let retry = 1000;
  const timings = (window.liveTimings = []);
  // How the socket fared, read by the browser tests: a healthy page opens once and never closes.
  const connection = (window.liveConnection = { opened: 0, closed: 0, reconnects: 0, closeCodes: [] });

  function setConnection(text, ok) {
    badge.textContent = text;
    badge.className = "badge " + (ok ? "ok" : "bad");
  }

  // The whole status comes once (and again on a resync); then deltas of the rows that changed, each with its
  // system's version. A version that is not the next one means a delta was missed: ask for the whole again.
  const versions = {};  // system id → the version of its status shown
  const lastHeard = {};  // server id → when it was last heard, for a server silent past the fast window
  const freshWithin = Number(root.dataset.freshWithin || "1.5");
  let resyncing = false;
  let statusAt = 0;  // the time of the whole status last received (its parts are aged by it)
  let clockOffset = 0;  // Redis's clock (the status's and the deltas' times) minus this browser's

  function showAge(card, text) {
    card.querySelector('[data-field="age"]').textContent = text;
  }

  function applyServer(server, now) {
    const card = document.getElementById("server-" + server.id);
    if (server.last_heard === null || server.last_heard === undefined) delete lastHeard[server.id];
    else lastHeard[server.id] = server.last_heard;
    if (!card) return;
    card.className = "server-card status-" + server.status;
    const state = card.querySelector('[data-field="status"]');
    state.textContent = server.status;
    state.className = "badge status-" + server.status;
    card.querySelector('[data-field="load"]').textContent = server.ingesting;
    const storage = card.querySelector('[data-field="storage"]');
    storage.hidden = !server.storage_error;
    storage.textContent = server.storage_error ? "Storage: " + server.storage_error : "";
    if (server.heartbeat_age !== undefined) {  // the whole status: ages as read
      showAge(card, server.heartbeat_age === null ? "—" : server.heartbeat_age.toFixed(1) + " s");
    } else if (server.id in lastHeard) {
      showAge(card, Math.max(0, now - lastHeard[server.id]).toFixed(1) + " s");
    } else {
      showAge(card, server.status === "unknown" ? "—" : "< " + freshWithin.toFixed(1) + " s");
    }
    const failBack = card.querySelector('[data-field="fail-back"]');
    if (failBack) failBack.hidden = !server.draining && !server.cameras_away;  // nothing to return
  }

  function applyCamera(camera) {
    const tile = document.getElementById("tile-" + camera.id);
    if (!tile) return;
    tile.dataset.where = camera.recording_on;
    tile.classList.remove("where-primary", "where-backup", "where-both", "where-nobody");
    tile.classList.add("where-" + camera.recording_on);
    tile.querySelector('[data-field="where"]').textContent = camera.recording_on;
    tile.querySelector('[data-field="fps"]').textContent = camera.fps.toFixed(1) + " fps";
  }

  function applyStatus(status, systemIds) {
    resyncing = false;
    statusAt = status.at;
    clockOffset = status.at - Date.now() / 1000;
    for (const system of Object.keys(versions)) delete versions[system];
    Object.assign(versions, status.versions || {});
    for (const server of Object.keys(lastHeard)) delete lastHeard[server];
    const systems = new Set((systemIds || status.servers.map(function (server) { return server.system_id; }))
      .map(String));
    for (const server of status.servers) applyServer(server, status.at);
    for (const camera of status.cameras) applyCamera(camera);
    // A system taken out of the user's reach leaves the page.
    document.querySelectorAll(".server-card[data-system], .tile[data-system]").forEach(function (element) {
      if (!systems.has(element.dataset.system)) element.remove();
    });
    applyFilters();
  }

  function applyPart(part) {
    for (const server of part.servers) applyServer(server, statusAt);
    for (const camera of part.cameras) applyCamera(camera);
    applyFilters();
  }

  function applyDelta(delta) {
    if (resyncing) return;  // the whole status asked for holds it
    const shown = versions[delta.system];
    if (shown !== undefined && delta.version <= shown) return;
    if (shown === undefined || delta.version !== shown + 1) {
      resync();
      return;
    }
    versions[delta.system] = delta.version;
    clockOffset = delta.at - Date.now() / 1000;
    for (const server of delta.servers) applyServer(server, delta.at);
    for (const camera of delta.cameras) applyCamera(camera);
    for (const id of delta.removed_cameras) document.getElementById("tile-" + id)?.remove();
    for (const id of delta.removed_servers) {
      delete lastHeard[id];
      document.getElementById("server-" + id)?.remove();
    }
    applyFilters();
  }

  // A silent server's age goes on without a message: from when it was last heard and the status's time.
  setInterval(function () { applyTick(Date.now() / 1000 + clockOffset); }, 1000);

  function applyTick(at) {
    for (const id of Object.keys(lastHeard)) {
      const card = document.getElementById("server-" + id);
      if (card) showAge(card, Math.max(0, at - lastHeard[id]).toFixed(1) + " s");
    }
  }

  function applyBackupCheck(event) {
    // A backup's readiness check failing or passing again: the tile's warning follows it.
    const tile = event.camera && document.getElementById("tile-" + event.camera);
    const warning = tile && tile.querySelector('[data-field="backup-check"]');
    if (!warning) return;
    if (event.kind === "backup_check_failed") warning.querySelector("span").textContent = event.message;
    if (event.kind === "backup_check_failed" || event.kind === "backup_check_passed") {
      warning.hidden = event.kind === "backup_check_passed";
    }
  }

  function addEvent(event) {
    applyBackupCheck(event);
    const empty = document.getElementById("no-events");
    if (empty) empty.remove();
    const item = document.createElement("li");
    item.className = "event-" + event.kind + " fresh";
    const time = document.createElement("time");
    time.textContent = new Date(event.at).toLocaleTimeString([], { hour12: false });
    time.setAttribute("datetime", event.at);
    time.title = "UTC " + new Date(event.at).toISOString().slice(0, 19).replace("T", " ");
    const text = document.createTextNode(" " + event.message);
    if (event.camera) {
      const link = document.createElement("a");
      link.href = "/cameras/" + event.camera + "/timeline/";
      link.append(time, text);
      const video = document.createElement("a");
      video.className = "video-link";
      video.href = "/cameras/" + event.camera + "/timeline/?at=" + encodeURIComponent(event.at);
      video.title = "Play the video at this moment";
      video.textContent = "video";
      item.append(link, " ", video);
    } else {
      item.append(time, text);
    }
    feed.prepend(item);
    while (feed.children.length > 50) feed.lastElementChild.remove();
  }

  function applyFilters() {
    const server = filters.server.value;
    const where = filters.where.value;
    const mode = filters.mode.value;
    let shown = 0;
    for (const tile of document.querySelectorAll(".tile")) {
      const match = (!server || tile.dataset.servers.split(" ").includes(server)) &&
        (!where || tile.dataset.where === where) && (!mode || tile.dataset.mode === mode);
      tile.hidden = !match;
      if (match) shown += 1;
    }
    document.getElementById("shown").textContent = shown + " shown";
  }

  function resync() {
    resyncing = true;
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "resync" }));
    else fetchStatus();
  }

  async function fetchStatus() {
    try {
      const response = await fetch(root.dataset.statusUrl, { credentials: "same-origin" });
      if (response.ok) applyStatus(await response.json());
    } catch (error) {
      // the next reconnection tries again
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + root.dataset.socket);
    socket.onopen = function () {
      connection.opened += 1;
      retry = 1000;
      setConnection("live", true);
    };
    socket.onmessage = function (message) {
      const began = performance.now();
      const data = JSON.parse(message.data);
      if (data.type === "status") applyStatus(data.status, data.systems);
      else if (data.type === "status_part") applyPart(data);  // the rest of a large status
      else if (data.type === "delta") applyDelta(data);
      else if (data.type === "event") addEvent(data.event);
      timings.push({ type: data.type, ms: performance.now() - began });  // read by bench/live_latency.py
      if (timings.length > 200) timings.shift();
    };
    socket.onclose = function (closing) {
      connection.closed += 1;
      connection.closeCodes.push(closing.code);
      setConnection("reconnecting…", false);
      fetchStatus();
      setTimeout(function () { connection.reconnects += 1; connect(); }, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }

  // Snapshots: only the tiles on screen fetch pictures, so a wall of hundreds stays light.
  const watcher = new IntersectionObserver(function (entries) {
    for (const entry of entries) {
      if (entry.isIntersecting) visible.add(entry.target);
      else visible.delete(entry.target);
    }
  });
  document.querySelectorAll(".tile img").forEach(function (image) {
    watcher.observe(image);
    image.onerror = function () { image.classList.add("missing"); };
    image.onload = function () { image.classList.remove("missing"); };
  });
  function refreshPictures() {
    for (const image of visible) {
      if (!image.closest(".tile").hidden) image.src = image.dataset.src + "?t=" + Date.now();
    }
  }
  setInterval(refreshPictures, 2000);
  setTimeout(refreshPictures, 100);

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  filters.addEventListener("change", applyFilters);
  applyFilters();
  connect();
})();
