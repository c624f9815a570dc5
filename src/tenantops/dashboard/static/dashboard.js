// tenantops dashboard: progressive enhancement only; every page works without this file.
(function () {
  "use strict";

  // Move focus to an error summary or an invalid field after a refused form.
  function focusOnLoad() {
    var target = document.querySelector("[data-focus-on-load]");
    if (target) { target.focus(); }
  }

  // Skip link: browsers differ in whether following "#main" moves keyboard focus there;
  // move it explicitly so the next Tab continues from the content.
  function skipLink() {
    var link = document.querySelector(".skip-link");
    if (!link) { return; }
    link.addEventListener("click", function () {
      var target = document.getElementById("main");
      if (target) { target.focus(); }
    });
  }

  // Live run timeline: poll the run's HTML fragment while the run is active, replace the part
  // that changed, keep keyboard focus where it was, and announce the new state politely.
  function liveRun() {
    var live = document.getElementById("run-live");
    if (!live || live.getAttribute("data-active") !== "true") { return; }
    var url = live.getAttribute("data-live-url");
    var every = parseInt(live.getAttribute("data-poll-ms"), 10) || 1000;
    var announcer = document.getElementById("run-announcer");
    var last = null;
    var failures = 0;

    function apply(html) {
      var template = document.createElement("template");
      template.innerHTML = html;
      var fresh = template.content.querySelector(".run-live");
      if (!fresh) { return true; }
      var focusedId = document.activeElement && document.activeElement.id;
      live.innerHTML = "";
      live.appendChild(fresh);
      if (focusedId) {
        var again = document.getElementById(focusedId);
        if (again) { again.focus(); }
      }
      if (announcer) { announcer.textContent = fresh.getAttribute("data-summary") || ""; }
      var active = fresh.getAttribute("data-active") === "true";
      live.setAttribute("data-active", active ? "true" : "false");
      return active;
    }

    function poll() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" }, cache: "no-store" })
        .then(function (response) {
          if (response.status === 401) { window.location.reload(); return null; }
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.text();
        })
        .then(function (html) {
          if (html === null) { return; }
          failures = 0;
          var active = true;
          if (html.trim() !== last) { last = html.trim(); active = apply(html); }
          if (active) { window.setTimeout(poll, every); }
        })
        .catch(function () {
          failures += 1;
          window.setTimeout(poll, Math.min(every * Math.pow(2, failures), 30000));
        });
    }
    window.setTimeout(poll, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    focusOnLoad();
    skipLink();
    liveRun();
  });
}());
