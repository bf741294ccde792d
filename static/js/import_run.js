// An import run's page while the run waits or runs: polls the run's JSON (the API, with the
// page's session) and updates its phase and progress in place; when its status changes, swaps in
// the server-rendered run section (outcome, counts, errors), so no reload is needed to learn how
// it ended. Without this script a refresh shows the same, rendered by the server.
(function () {
  "use strict";
  var FINAL = { succeeded: true, failed: true };
  var section = document.getElementById("import-run");
  if (!section || FINAL[section.dataset.status]) {
    return;
  }
  var url = section.dataset.poll;
  var started = Date.now();
  var failures = 0;

  function delay() {
    // Every 2 s at first, then every 5 s; slower still while the server does not answer.
    var base = Date.now() - started < 5 * 60 * 1000 ? 2000 : 5000;
    return base * Math.min(1 + failures, 6);
  }

  function set(name, text) {
    var field = section.querySelector('[data-field="' + name + '"]');
    if (field && field.textContent !== text) {
      field.textContent = text;
    }
  }

  function time(iso) {
    // The API writes times in the site's time zone, as the page does: keep its date and time.
    return iso ? iso.slice(0, 10) + " " + iso.slice(11, 19) : "—";
  }

  function swapSection() {
    return fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("page " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("import-run");
        if (fresh) {
          section.replaceWith(fresh);
          section = fresh;
        }
      });
  }

  function show(run) {
    if (run.status !== section.dataset.status) {
      return swapSection();
    }
    set("phase", run.phase_label || run.phase);
    set("rows_read", Number(run.progress.rows_read).toLocaleString("en-US"));
    set("files_done", String(run.progress.files_done));
    set("files_total", String(run.progress.files_total));
    set("heartbeat_at", time(run.progress.heartbeat_at));
    return Promise.resolve();
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401 || response.status === 403 || response.status === 404) {
          failures = -1; // signed out or no longer allowed: a refresh says why
          return null;
        }
        if (!response.ok) {
          throw new Error("run " + response.status);
        }
        return response.json();
      })
      .then(function (run) {
        return run ? show(run) : null;
      })
      .then(function () {
        if (failures >= 0) {
          failures = 0;
        }
      }, function () {
        failures += 1;
      })
      .then(function () {
        if (failures >= 0 && !FINAL[section.dataset.status]) {
          window.setTimeout(poll, delay());
        }
      });
  }

  window.setTimeout(poll, delay());
})();
