// Behaviour the templates ask for with data- attributes, so no page needs inline script
// (the Content-Security-Policy allows none):
//   data-submit-on-change          a select or checkbox submits its form when changed
//   data-confirm-submit="question" a form is submitted only once the user confirms
//                                  (the live page's forms use data-confirm, handled by live.js)
//   data-check-all="name"          a checkbox checks or clears every input[name=...] of its table
//   data-left / data-width         an element's left and width, in percent (charts, timelines)
//   <time data-local="style">      a moment shown in the browser's local time (style: datetime, minute,
//                                  time), UTC in its tooltip (the template filter ``moment``)
//   data-time-zone                 a hidden input given the browser's time zone (its IANA name), so
//                                  that a time typed in local time is read as such, DST included
// Listeners are delegated to the document, so content swapped in by htmx behaves the same.
(function () {
  "use strict";

  document.addEventListener("change", function (event) {
    const field = event.target;
    if (field.matches("[data-submit-on-change]") && field.form) field.form.submit();
    if (field.matches("[data-check-all]")) {
      const selector = 'input[name="' + field.dataset.checkAll + '"]';
      field.closest("table").querySelectorAll(selector).forEach(function (box) {
        box.checked = field.checked;
      });
    }
  });

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form.matches("form[data-confirm-submit]") && !window.confirm(form.dataset.confirmSubmit)) {
      event.preventDefault();
    }
  });

  function two(n) { return String(n).padStart(2, "0"); }

  function localMoment(date, style) {
    const day = date.getFullYear() + "-" + two(date.getMonth() + 1) + "-" + two(date.getDate());
    const minute = two(date.getHours()) + ":" + two(date.getMinutes());
    if (style === "time") return minute + ":" + two(date.getSeconds());
    if (style === "minute") return day + " " + minute;
    return day + " " + minute + ":" + two(date.getSeconds());
  }

  function localise(root) {
    root.querySelectorAll("time[data-local]").forEach(function (element) {
      const date = new Date(element.getAttribute("datetime"));
      if (!isNaN(date)) element.textContent = localMoment(date, element.dataset.local);
    });
    root.querySelectorAll("input[data-time-zone]").forEach(function (input) {
      input.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    });
  }

  function place(root) {
    const elements = Array.from(root.querySelectorAll("[data-left], [data-width]"));
    if (root.matches && root.matches("[data-left], [data-width]")) elements.push(root);
    elements.forEach(function (element) {
      if (element.dataset.left) element.style.left = element.dataset.left + "%";
      if (element.dataset.width) element.style.width = element.dataset.width + "%";
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { place(document); localise(document); });
  } else {
    place(document);
    localise(document);
  }
  document.addEventListener("htmx:load", function (event) { place(event.target); localise(event.target); });
})();
