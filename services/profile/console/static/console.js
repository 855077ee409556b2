// Progressive enhancement of the overview: refresh its panels in place every few seconds.
// Without this script the page reloads itself (meta refresh in <noscript>).
(function () {
  "use strict";
  var panels = document.getElementById("overview-panels");
  if (!panels) { return; }
  var url = panels.getAttribute("data-panel-url");
  var seconds = Math.max(1, parseFloat(panels.getAttribute("data-refresh-s")) || 5);
  var status = document.getElementById("refresh-status");
  var toggle = document.getElementById("refresh-toggle");
  var paused = false;
  var timer = null;

  function say(text) { status.textContent = text; }

  function schedule() {
    if (!paused) { timer = window.setTimeout(refresh, seconds * 1000); }
  }

  function refresh() {
    // Keep a keyboard user's place: do not replace the panels while focus is inside them.
    if (panels.contains(document.activeElement)) { schedule(); return; }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected || response.status === 401) {
          paused = true;
          say("Your session has ended: reload the page to sign in again.");
          return null;
        }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        if (html === null) { return; }
        panels.innerHTML = html;
        say("Refreshes every " + seconds + " s. Last update " + new Date().toLocaleTimeString() + ".");
        schedule();
      })
      .catch(function (error) {
        say("Refreshing failed (" + error.message + "); trying again in " + seconds + " s.");
        schedule();
      });
  }

  toggle.hidden = false;
  toggle.addEventListener("click", function () {
    paused = !paused;
    toggle.setAttribute("aria-pressed", String(paused));
    toggle.textContent = paused ? "Resume refreshing" : "Pause refreshing";
    if (paused) { window.clearTimeout(timer); say("Refreshing paused."); } else { refresh(); }
  });
  schedule();
}());
