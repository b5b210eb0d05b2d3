// The Export form of a camera's timeline (templates/playback/_export.html): "Use the range shown" copies the
// range the timeline shows (#timeline's data-since and data-until, kept by playback.js) into the form, in UTC.
// Listeners are delegated to the document, so a form swapped in by htmx behaves the same.
(function () {
  "use strict";

  function utc(value) {
    const moment = new Date(value);
    return isNaN(moment) ? "" : moment.toISOString().replace(/\.\d{3}Z$/, "Z");
  }

  function reveal(root) {
    const view = document.getElementById("timeline");
    if (!view) return;
    root.querySelectorAll("[data-export-use-view]").forEach(function (button) { button.hidden = false; });
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-export-use-view]");
    const view = document.getElementById("timeline");
    if (!button || !view) return;
    const form = button.closest("form");
    form.elements.since.value = utc(view.dataset.since);
    form.elements.until.value = utc(view.dataset.until);
  });

  document.addEventListener("DOMContentLoaded", function () { reveal(document); });
  document.addEventListener("htmx:load", function (event) { reveal(event.target); });
})();
