// Live status page: one websocket for events and the status pushed each second; on a dropped
// socket it shows so, resynchronises from the status API, and reconnects.
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

  function applyStatus(status) {
    for (const server of status.servers) {
      const card = document.getElementById("server-" + server.id);
      if (!card) continue;
      card.className = "server-card status-" + server.status;
      const state = card.querySelector('[data-field="status"]');
      state.textContent = server.status;
      state.className = "badge status-" + server.status;
      card.querySelector('[data-field="load"]').textContent = server.ingesting;
      const storage = card.querySelector('[data-field="storage"]');
      storage.hidden = !server.storage_error;
      storage.textContent = server.storage_error ? "Storage: " + server.storage_error : "";
      card.querySelector('[data-field="age"]').textContent =
        server.heartbeat_age === null ? "—" : server.heartbeat_age.toFixed(1) + " s";
      const failBack = card.querySelector('[data-field="fail-back"]');
      if (failBack) failBack.hidden = !server.draining && !server.cameras_away;  // nothing to return
    }
    for (const camera of status.cameras) {
      const tile = document.getElementById("tile-" + camera.id);
      if (!tile) continue;
      tile.dataset.where = camera.recording_on;
      tile.classList.remove("where-primary", "where-backup", "where-both", "where-nobody");
      tile.classList.add("where-" + camera.recording_on);
      tile.querySelector('[data-field="where"]').textContent = camera.recording_on;
      tile.querySelector('[data-field="fps"]').textContent = camera.fps.toFixed(1) + " fps";
    }
    applyFilters();
  }

  function addEvent(event) {
    const empty = document.getElementById("no-events");
    if (empty) empty.remove();
    const item = document.createElement("li");
    item.className = "event-" + event.kind + " fresh";
    const time = document.createElement("time");
    time.textContent = new Date(event.at).toLocaleTimeString([], { hour12: false });
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

  async function resync() {
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
      if (data.type === "status") applyStatus(data.status);
      if (data.type === "event") addEvent(data.event);
      timings.push({ type: data.type, ms: performance.now() - began });  // read by bench/live_latency.py
      if (timings.length > 200) timings.shift();
    };
    socket.onclose = function (closing) {
      connection.closed += 1;
      connection.closeCodes.push(closing.code);
      setConnection("reconnecting…", false);
      resync();
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
