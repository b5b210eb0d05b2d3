// The camera's playback page (templates/redundancy/timeline.html). The lanes show what each server
// recorded over a span that zooms from a day down to seconds, drawn from the recordings API; a click
// on a lane or on the time axis plays from that moment. The video comes through hls.js from the
// camera's playlist, where video.currentTime is the wall time less the playlist's `since`, and
// where a gap is an EXT-X-GAP fragment: the page skips it and says so.
//
// For the browser tests and bench/playback.py: window.playback = {since, until (the playlist's, epoch
// ms), wallTime() (epoch ms), source() (a server's name), stalls (each stop: {kind: "gap" | "waiting",
// at, from, to, seconds}), hls, clicks ({at, clicked, playing, frame}: performance.now() times)}.
(function () {
  "use strict";
  const root = document.getElementById("timeline");
  if (!root || !root.dataset.recordings) return;

  const ZOOMS = [86400, 3600, 600, 60, 10]; // seconds across the lanes
  const TICKS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600];
  const PLAY_BEFORE = 10 * 60e3; // a click's playlist reaches this far back (ms)...
  const PLAY_AFTER = 50 * 60e3; // ...and this far on, so that nearby clicks only seek
  const HEVC = 'video/mp4; codecs="hvc1.1.6.L93.B0"';

  const form = document.getElementById("moment");
  const input = document.getElementById("moment-at");
  const lanes = document.getElementById("lanes");
  const rangeText = document.getElementById("range");
  const player = document.getElementById("player");
  const video = document.getElementById("video");
  const wallText = document.getElementById("wall-time");
  const sourceText = document.getElementById("source");
  const skipping = document.getElementById("skipping");
  const problem = document.getElementById("playback-problem");
  const exportBox = document.getElementById("export");
  const gapList = document.getElementById("gaps");
  const eventList = document.getElementById("events");

  // start and span: what the lanes show (epoch ms); cursor: the moment the keyboard picked on the time axis.
  const view = { start: 0, span: 3600e3, cursor: null, answer: null, asked: 0 };
  // target: the moment asked for last; lastWall: the wall time at the last look; ourSeek: the page moved the video
  // itself since; started: it plays since the last click or seek (a wait before is theirs, not a stall);
  // skipped: the last gap skipped.
  const play = { answer: null, target: null, lastWall: null, ourSeek: false, started: false, waitingSince: null,
    skipped: null, skipTimer: null };
  const playback = (window.playback = {
    since: null, until: null, stalls: [], hls: null, clicks: [],
    wallTime: function () { return playback.since === null ? null : playback.since + video.currentTime * 1000; },
    source: function () { return sourceAt(playback.wallTime()); },
  });

  // -- times: local on the page, UTC in the tooltips ------------------------------------------

  function two(n) { return String(n).padStart(2, "0"); }
  function localTime(ms, seconds) {
    const d = new Date(ms);
    return two(d.getHours()) + ":" + two(d.getMinutes()) + (seconds === false ? "" : ":" + two(d.getSeconds()));
  }
  function localDate(ms) {
    const d = new Date(ms);
    return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate());
  }
  function localInput(ms) { return localDate(ms) + "T" + localTime(ms); }
  function utc(ms) { return new Date(ms).toISOString().replace("T", " ").replace("Z", " UTC"); }
  function iso(ms) { return new Date(ms).toISOString(); }
  function seconds(ms) { return (ms / 1000).toFixed(ms < 10e3 ? 1 : 0) + " s"; }
  function localize(scope) {
    scope.querySelectorAll("time[datetime]").forEach(function (element) {
      const ms = Date.parse(element.getAttribute("datetime"));
      if (isNaN(ms)) return;
      element.textContent = (element.closest("#range") && !element.previousElementSibling ? localDate(ms) + " " : "") +
        localTime(ms);
      element.title = utc(ms);
    });
  }

  // -- the lanes ------------------------------------------------------------------------------

  function clampView() {
    const now = Date.now();
    if (view.start + view.span > now + view.span * 0.02) view.start = now - view.span * 0.98;
  }

  function element(tag, className, parent) {
    const made = document.createElement(tag);
    if (className) made.className = className;
    if (parent) parent.append(made);
    return made;
  }

  function place(item, from, to) {
    const left = Math.max(0, (from - view.start) / view.span);
    const right = Math.min(1, (to - view.start) / view.span);
    item.style.left = left * 100 + "%";
    item.style.width = Math.max(0.15, (right - left) * 100) + "%";
    return right > 0 && left < 1;
  }

  function render() {
    const answer = view.answer;
    const end = view.start + view.span;
    const focused = document.activeElement && document.activeElement.matches("#lanes .axis");
    lanes.replaceChildren();
    rangeText.firstElementChild.setAttribute("datetime", iso(view.start));
    rangeText.firstElementChild.nextElementSibling.setAttribute("datetime", iso(end));
    localize(rangeText);
    // The range shown, for the export's form (static/js/export.js reads it from #timeline).
    root.dataset.since = exportBox.dataset.since = iso(view.start);
    root.dataset.until = exportBox.dataset.until = iso(end);

    const axisRow = element("div", "lane-row", lanes);
    element("span", "lane-label muted small", axisRow).textContent = "time";
    const axis = element("div", "axis track", axisRow);
    axis.tabIndex = 0;
    axis.setAttribute("role", "slider");
    axis.setAttribute("aria-label", "Moment to play: arrows move it, Enter plays, + and - zoom");
    axis.setAttribute("aria-valuemin", String(view.start));
    axis.setAttribute("aria-valuemax", String(end));
    const cursor = view.cursor >= view.start && view.cursor <= end ? view.cursor : view.start + view.span / 2;
    axis.setAttribute("aria-valuenow", String(cursor));
    axis.setAttribute("aria-valuetext", localDate(cursor) + " " + localTime(cursor));
    const step = TICKS.find(function (s) { return view.span / (s * 1000) <= 8; }) || 86400;
    for (let t = Math.ceil(view.start / (step * 1000)) * step * 1000; t < end; t += step * 1000) {
      const tick = element("span", "tick", axis);
      tick.style.left = ((t - view.start) / view.span) * 100 + "%";
      const midnight = new Date(t).getHours() === 0 && new Date(t).getMinutes() === 0 && step >= 3600;
      tick.textContent = midnight ? localDate(t) : localTime(t, step < 60);
      tick.title = utc(t);
    }

    if (!answer) {
      element("p", "muted", lanes).textContent = "Loading the recordings…";
    } else {
      const roles = {};
      answer.servers.forEach(function (server) { roles[server.name] = server.role; });
      const names = Object.keys(answer.lanes);
      if (!names.length) element("p", "muted", lanes).textContent = "Nothing was recorded in this span.";
      names.forEach(function (name) {
        const row = element("div", "lane-row", lanes);
        const label = element("span", "lane-label small", row);
        label.textContent = name + (roles[name] ? " · " + roles[name] : "");
        const track = element("div", "timeline track", row);
        track.dataset.server = name;
        answer.lanes[name].forEach(function (span) {
          const from = Date.parse(span.started_at), to = Date.parse(span.ended_at);
          const merged = span.recorded_by && span.recorded_by !== name;
          const seg = element("div", "seg" + (roles[name] === "primary" ? "" : " backup") + (merged ? " merged" : ""));
          if (!place(seg, from, to)) return;
          seg.title = localTime(from) + "–" + localTime(to) + " (" + utc(from) + " – " + utc(to) + "), " +
            span.frames + " frames" + (merged ? ", copied from " + span.recorded_by + " after failback" : "");
          track.append(seg);
        });
      });
      const row = element("div", "lane-row", lanes);
      element("span", "lane-label muted small", row).textContent = "gaps and events";
      const marks = element("div", "timeline track marks", row);
      answer.gaps.forEach(function (gap) {
        const from = Date.parse(gap.started_at), to = Date.parse(gap.ended_at);
        const block = element("div", "gap");
        if (!place(block, from, to)) return;
        block.title = "nothing recorded for " + gap.seconds.toFixed(1) + " s from " + localTime(from) + " (" + utc(from) + ")";
        marks.append(block);
      });
      answer.events.forEach(function (event) {
        const at = Date.parse(event.at);
        if (at < view.start || at > end) return;
        const mark = element("button", "mark event-" + event.kind, marks);
        mark.type = "button";
        mark.style.left = ((at - view.start) / view.span) * 100 + "%";
        mark.title = localTime(at) + " " + event.message + " (" + utc(at) + "): click to play";
        mark.setAttribute("aria-label", "Play from " + localTime(at) + ": " + event.message);
        mark.dataset.at = String(at);
      });
    }
    if (answer) lists(answer, end);
    lanes.querySelectorAll(".track").forEach(function (track) { element("div", "playhead", track).hidden = true; });
    movePlayhead(play.started ? playback.wallTime() : play.target);
    if (focused) axis.focus(); // the keys go on where they were
  }

  // The gaps and events of the span shown, listed under the lanes (the page came with the first hour's).
  function lists(answer, end) {
    const gaps = answer.gaps.filter(function (gap) {
      return Date.parse(gap.ended_at) > view.start && Date.parse(gap.started_at) < end;
    });
    gapList.replaceChildren();
    gaps.forEach(function (gap) {
      const item = element("li", "", gapList);
      const time = element("time", "", item);
      time.setAttribute("datetime", gap.started_at);
      item.append(": nothing recorded for " + gap.seconds.toFixed(1) + " s");
    });
    if (!gaps.length) element("li", "muted", gapList).textContent = "No gap in this span.";
    eventList.replaceChildren();
    answer.events.slice().reverse().forEach(function (event) {
      const item = element("li", "", eventList);
      const link = element("a", "", item);
      link.href = "?at=" + encodeURIComponent(event.at);
      link.title = "Play the video at this moment";
      element("time", "", link).setAttribute("datetime", event.at);
      item.append(" " + event.message);
    });
    if (!answer.events.length) element("li", "muted", eventList).textContent = "No events in this span.";
    localize(gapList);
    localize(eventList);
  }

  async function load() {
    clampView();
    const asked = ++view.asked;
    render();
    const answer = await recordings(view.start, view.start + view.span);
    if (asked !== view.asked) return; // a newer view was asked for meanwhile
    view.answer = answer;
    render();
  }

  async function recordings(from, to) {
    const url = root.dataset.recordings + "?since=" + encodeURIComponent(iso(from)) + "&until=" + encodeURIComponent(iso(to));
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) return await response.json();
      say("The recordings could not be listed (the server answered " + response.status + ").");
    } catch (error) {
      say("The recordings could not be listed: the web server did not answer.");
    }
    return { servers: [], lanes: {}, gaps: [], sources: [], events: [] };
  }

  let reloading = null;
  function reloadSoon() {
    clearTimeout(reloading);
    render();
    reloading = setTimeout(load, 150);
  }

  function zoomTo(span, around) {
    const at = around === undefined ? view.start + view.span / 2 : around;
    const share = (at - view.start) / view.span;
    view.start = at - span * (around === undefined ? 0.5 : share);
    view.span = span;
    document.querySelectorAll("[data-zoom]").forEach(function (button) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.zoom) * 1000 === span));
    });
    reloadSoon();
  }

  function timeAt(track, clientX) {
    const box = track.getBoundingClientRect();
    return view.start + ((clientX - box.left) / box.width) * view.span;
  }

  // -- playing --------------------------------------------------------------------------------

  function say(text) {
    problem.textContent = text;
    problem.hidden = !text;
  }

  function cannotPlay() {
    if (!window.Hls || !window.Hls.isSupported()) {
      return "This browser cannot play the recordings here (it has no Media Source Extensions). Export the range " +
        "as an MP4 file below and play it in a video player.";
    }
    const codec = (view.answer && view.answer.codec) || root.dataset.codec;
    if (codec === "h265" && !window.MediaSource.isTypeSupported(HEVC)) {
      return "This camera records H.265, which this browser cannot play. Export the range as an MP4 file below " +
        "and play it in a player that can (VLC, for one), or use a browser with H.265 support.";
    }
    return "";
  }

  function startAt(at) {
    const refusal = cannotPlay();
    say(refusal);
    if (refusal) return;
    const click = { at: at, clicked: performance.now(), playing: null, frame: null };
    playback.clicks.push(click);
    player.hidden = false;
    history.replaceState(null, "", "?at=" + encodeURIComponent(iso(at)));
    input.value = localInput(at);
    if (playback.hls && at >= playback.since && at < playback.until - 1000) {
      seek(at);
    } else {
      open(Math.floor((at - PLAY_BEFORE) / 1000) * 1000, Math.ceil(Math.min(Date.now(), at + PLAY_AFTER) / 1000) * 1000, at);
    }
    video.play().catch(function () { /* paused by the user or replaced by a newer click */ });
    waitForFrame(click);
  }

  // The first frame shown of the moment asked for (or of the recording after it, past a gap).
  function waitForFrame(click) {
    function shown(now, frame) {
      if (playback.clicks[playback.clicks.length - 1] !== click) return; // a newer click took over
      const wall = playback.since + frame.mediaTime * 1000;
      if (Math.abs(wall - play.target) < 1500) click.frame = now; // (play.target: after the gap, for one in a gap)
      else video.requestVideoFrameCallback(shown);
    }
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(shown);
    video.addEventListener("playing", function () { click.playing = performance.now(); }, { once: true });
  }

  function seek(at) {
    play.ourSeek = true;
    play.started = false;
    play.target = at;
    play.lastWall = at;
    video.currentTime = (at - playback.since) / 1000;
  }

  function open(since, until, at) {
    if (playback.hls) playback.hls.destroy();
    playback.since = since;
    playback.until = until;
    play.answer = null;
    play.lastWall = at;
    play.target = at;
    play.ourSeek = true;
    play.started = false;
    play.skipped = null;
    recordings(since, until).then(function (answer) { if (playback.since === since) play.answer = answer; });
    // No worker: the policy allows no blob: scripts, and one camera's stream is light work.
    const hls = new window.Hls({ enableWorker: false, startPosition: (at - since) / 1000, maxBufferLength: 30,
      backBufferLength: 60 });
    playback.hls = hls;
    hls.on(window.Hls.Events.ERROR, function (event, data) {
      if (!data.fatal) return;
      say(data.type === window.Hls.ErrorTypes.NETWORK_ERROR
        ? "The recording could not be played: the web server or the video server that holds it did not answer (" +
          data.details + "). Try again in a moment."
        : "The recording could not be played: this browser could not decode it (" + data.details + ").");
      hls.destroy();
      if (playback.hls === hls) playback.hls = null;
    });
    hls.on(window.Hls.Events.MANIFEST_PARSED, function () { video.play().catch(function () {}); });
    hls.loadSource(root.dataset.playlist + "?since=" + encodeURIComponent(iso(since)) + "&until=" + encodeURIComponent(iso(until)));
    hls.attachMedia(video);
  }

  function within(list, at) {
    return (list || []).find(function (item) { return Date.parse(item.started_at) <= at && at < Date.parse(item.ended_at); });
  }

  function sourceAt(at) {
    if (at === null || !play.answer) return null;
    const source = within(play.answer.sources, at);
    return source ? source.server : null;
  }

  function showSkip(from, to, prefix) {
    skipping.textContent = prefix ? prefix + localTime(to) :
      "Skipping " + seconds(to - from) + " with no recording (" + localTime(from) + "–" + localTime(to) + ")";
    skipping.title = utc(from) + " – " + utc(to);
    skipping.hidden = false;
    clearTimeout(play.skipTimer);
    play.skipTimer = setTimeout(function () { skipping.hidden = true; }, 3000);
  }

  // Called often while the video plays: the wall time, the source, the playhead, and the gaps skipped.
  function follow() {
    const wall = playback.wallTime();
    if (wall === null) return;
    if (!play.started && !begun(wall)) return show(play.target);
    if (!video.paused && !video.seeking && play.answer) {
      const gap = within(play.answer.gaps, wall);
      if (gap && gap !== play.skipped && Date.parse(gap.ended_at) - wall > 100) return skip(gap, true);
    }
    // A gap passed between two looks (one shorter than they are apart: hls.js plays over it), or a jump forward
    // that nobody asked for (hls.js skipping a hole in the buffer): each is said, as every gap is.
    if (!video.seeking && !play.ourSeek && play.lastWall !== null && wall > play.lastWall) {
      const gap = play.answer && play.answer.gaps.find(function (g) {
        return Date.parse(g.started_at) < wall && Date.parse(g.ended_at) > play.lastWall;
      });
      if (gap && gap !== play.skipped) skip(gap, false);
      else if (!gap && wall - play.lastWall > 1500) stalled(play.lastWall, wall);
    }
    if (!video.seeking) {
      play.ourSeek = false;
      play.lastWall = wall;
    }
    show(wall);
  }

  // After a click or a seek: has the video begun at the moment asked for? (hls.js places it there once it has
  // video for it; until then currentTime may read 0.) A moment in a gap plays from the recording after it.
  function begun(wall) {
    const gap = play.answer && play.target !== null && within(play.answer.gaps, play.target);
    if (gap && gap !== play.skipped) {
      play.skipped = gap;
      if (Date.parse(gap.ended_at) < playback.until - 500) {
        showSkip(play.target, Date.parse(gap.ended_at), "Nothing recorded at that moment: playing from ");
        seek(Date.parse(gap.ended_at) + 50);
      } else {
        video.pause();
        say("Nothing was recorded from " + localTime(play.target) + " (" + utc(play.target) + ") on.");
      }
      return false;
    }
    if (video.seeking || video.paused || video.readyState < 3 || wall < play.target - 3000) return false;
    play.started = true;
    play.ourSeek = false;
    play.lastWall = wall;
    return true;
  }

  function skip(gap, ourselves) {
    play.skipped = gap;
    const from = Date.parse(gap.started_at), to = Math.min(Date.parse(gap.ended_at), playback.until);
    stalled(from, to);
    if (to >= playback.until - 500) {
      video.pause();
      say("Nothing was recorded after " + localTime(from) + " (" + utc(from) + ") in the range played.");
    } else if (ourselves) {
      seek(to + 50);
    }
  }

  function stalled(from, to) {
    playback.stalls.push({ kind: "gap", at: iso(from), from: iso(from), to: iso(to), seconds: (to - from) / 1000 });
    showSkip(from, to);
  }

  function show(wall) {
    wallText.textContent = localDate(wall) + " " + localTime(wall) + "." + String(Math.floor(wall % 1000)).padStart(3, "0");
    wallText.title = utc(wall);
    const server = sourceAt(wall);
    const role = server && view.answer && (view.answer.servers.find(function (s) { return s.name === server; }) || {}).role;
    sourceText.textContent = server ? "from " + server + (role ? " (" + role + ")" : "") : "";
    sourceText.hidden = !server;
    // Keep the moment playing in sight.
    if (!video.paused && (wall > view.start + view.span * 0.97 || wall < view.start) && !view.following) {
      view.following = true;
      view.start = wall - view.span * 0.1;
      load().finally(function () { view.following = false; });
    }
    movePlayhead(wall);
  }

  function movePlayhead(wall) {
    const share = wall === null ? -1 : (wall - view.start) / view.span;
    lanes.querySelectorAll(".playhead").forEach(function (head) {
      head.hidden = share < 0 || share > 1;
      head.style.left = share * 100 + "%";
    });
  }

  video.addEventListener("timeupdate", follow);
  // A wait for video once it played (not the wait after a click or a seek) is a stall: each is counted.
  video.addEventListener("waiting", function () {
    if (play.started && !video.seeking) play.waitingSince = { at: playback.wallTime(), began: performance.now() };
  });
  video.addEventListener("playing", function () {
    const waited = play.waitingSince;
    play.waitingSince = null;
    play.started = true;
    if (waited) {
      playback.stalls.push({ kind: "waiting", at: iso(waited.at), from: iso(waited.at), to: iso(playback.wallTime()),
        seconds: (performance.now() - waited.began) / 1000 });
    }
  });
  video.addEventListener("seeking", function () { play.waitingSince = null; });
  setInterval(function () { if (!video.paused) follow(); }, 100);

  // -- the controls ---------------------------------------------------------------------------

  document.getElementById("play").addEventListener("click", function () {
    if (playback.hls) video.play().catch(function () {});
    else startAt(view.start + view.span / 2);
  });
  document.getElementById("pause").addEventListener("click", function () { video.pause(); });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const at = new Date(input.value).getTime(); // datetime-local: the browser's local time
    if (isNaN(at)) return say("Enter a date and a time to play from.");
    if (at > Date.now()) return say("That moment is still to come: nothing is recorded yet.");
    view.start = at - view.span / 2;
    reloadSoon();
    startAt(at);
  });

  document.querySelectorAll("[data-zoom]").forEach(function (button) {
    button.addEventListener("click", function () {
      const wall = playback.wallTime();
      const shown = wall !== null && wall >= view.start && wall <= view.start + view.span;
      zoomTo(Number(button.dataset.zoom) * 1000, shown ? wall : undefined);
    });
  });
  document.querySelectorAll("[data-pan]").forEach(function (button) {
    button.addEventListener("click", function () {
      if (button.dataset.pan === "now") view.start = Date.now() - view.span;
      else view.start += (Number(button.dataset.pan) * view.span) / 2;
      reloadSoon();
    });
  });

  lanes.addEventListener("click", function (event) {
    const mark = event.target.closest(".mark[data-at]");
    if (mark) return startAt(Number(mark.dataset.at));
    const track = event.target.closest(".track");
    if (track) startAt(Math.min(timeAt(track, event.clientX), Date.now()));
  });
  lanes.addEventListener("wheel", function (event) {
    const track = event.target.closest(".track");
    if (!track || !event.deltaY) return;
    event.preventDefault();
    const index = ZOOMS.indexOf(view.span / 1000);
    const next = event.deltaY < 0 ? Math.min(ZOOMS.length - 1, index + 1) : Math.max(0, index - 1);
    if (index === -1 || next !== index) zoomTo(ZOOMS[index === -1 ? 1 : next] * 1000, timeAt(track, event.clientX));
  }, { passive: false });
  lanes.addEventListener("keydown", function (event) {
    const axis = event.target.closest(".axis");
    if (!axis) return;
    let cursor = Number(axis.getAttribute("aria-valuenow"));
    const index = ZOOMS.indexOf(view.span / 1000);
    if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      cursor += (event.key === "ArrowLeft" ? -1 : 1) * view.span / (event.shiftKey ? 100 : 20);
      view.cursor = cursor;
      axis.setAttribute("aria-valuenow", String(cursor));
      axis.setAttribute("aria-valuetext", localDate(cursor) + " " + localTime(cursor));
      input.value = localInput(cursor);
    } else if (event.key === "Enter" || event.key === " ") {
      startAt(Math.min(cursor, Date.now()));
    } else if ((event.key === "+" || event.key === "-") && index !== -1) {
      zoomTo(ZOOMS[Math.max(0, Math.min(ZOOMS.length - 1, index + (event.key === "+" ? 1 : -1)))] * 1000, cursor);
    } else {
      return;
    }
    event.preventDefault();
  });
  // An event's "video" link below plays here, without loading the page again.
  document.getElementById("events").addEventListener("click", function (event) {
    const link = event.target.closest("a[href^='?at=']");
    if (!link) return;
    event.preventDefault();
    const at = Date.parse(new URLSearchParams(link.getAttribute("href").slice(1)).get("at"));
    view.start = at - view.span / 2;
    reloadSoon();
    startAt(at);
  });

  // -- the first view -------------------------------------------------------------------------

  document.querySelectorAll(".zoom, .js-only").forEach(function (part) { part.hidden = false; });
  localize(root);
  const at = Date.parse(root.dataset.at);
  if (isNaN(at)) {
    view.span = 3600e3;
    view.start = Date.parse(root.dataset.until) - view.span;
  } else {
    view.span = 600e3;
    view.start = at - view.span / 2;
  }
  document.querySelectorAll("[data-zoom]").forEach(function (button) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.zoom) * 1000 === view.span));
  });
  load().then(function () { if (!isNaN(at)) startAt(at); });
})();
