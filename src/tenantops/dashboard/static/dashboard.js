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

  // Live pages: the page's event stream (Server-Sent Events, tenantops.dashboard._live) sends
  // its live part again whenever it changes. Replace it, keep keyboard focus and open
  // <details> where they were, and announce the change politely. EventSource reconnects by
  // itself and sends Last-Event-ID, so a page that lost its stream catches up at once.
  function liveStream() {
    var live = document.getElementById("live");
    if (!live || !window.EventSource) { return; }
    var url = live.getAttribute("data-stream");
    var status = document.getElementById("live-status");
    var announcer = document.getElementById("live-announcer");
    var source = new EventSource(url);

    function show(text) {
      if (!status) { return; }
      status.hidden = false;
      status.textContent = text;
    }

    function replace(html) {
      var focusedId = document.activeElement && live.contains(document.activeElement)
        ? document.activeElement.id : null;
      var open = [];
      live.querySelectorAll("details[open]").forEach(function (d, i) { open.push(d.id || i); });
      live.innerHTML = html;
      live.querySelectorAll("details").forEach(function (d, i) {
        if (open.indexOf(d.id || i) >= 0) { d.open = true; }
      });
      if (focusedId) {
        var again = document.getElementById(focusedId);
        if (again) { again.focus(); }
      }
      var summary = live.querySelector("[data-summary]");
      if (announcer) {
        announcer.textContent = summary ? summary.getAttribute("data-summary") : "Updated.";
      }
      live.setAttribute("data-updates", String(parseInt(live.getAttribute("data-updates") || "0", 10) + 1));
      elapsed();
    }

    source.addEventListener("open", function () { show("Live"); });
    source.addEventListener("update", function (event) { replace(event.data); });
    source.addEventListener("signed-out", function () {
      source.close();
      window.location.reload();
    });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) { show("Not updating: reload the page"); }
      else { show("Reconnecting…"); }
    });
    // Leaving the page closes its stream; coming back to it from the browser's back-forward
    // cache shows it as it was, so load it again (and with it a new stream).
    window.addEventListener("pagehide", function () { source.close(); });
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) { window.location.reload(); }
    });
  }

  // "For 3 min": times since something began keep counting between updates.
  function format(seconds) {
    if (seconds < 60) { return Math.floor(seconds) + " s"; }
    if (seconds < 3600) { return Math.floor(seconds / 60) + " min " + Math.floor(seconds % 60) + " s"; }
    if (seconds < 86400) { return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min"; }
    return Math.floor(seconds / 86400) + " d " + Math.floor((seconds % 86400) / 3600) + " h";
  }

  function elapsed() {
    var now = Date.now();
    document.querySelectorAll("time[data-since]").forEach(function (t) {
      var since = Date.parse(t.getAttribute("data-since"));
      if (!isNaN(since) && now >= since) { t.textContent = format((now - since) / 1000); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    focusOnLoad();
    skipLink();
    liveStream();
    window.setInterval(elapsed, 1000);
  });
}());
