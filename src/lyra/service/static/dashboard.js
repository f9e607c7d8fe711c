/* The live dashboard: polls GET /v1/report with the client's bearer token and redraws. */
(function () {
  "use strict";
  var POLL_MS = 3000;
  var KEY = "lyra-dashboard-token";
  var timer = null;

  function token() { return sessionStorage.getItem(KEY) || ""; }

  function takeTokenFromFragment() {
    var match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
    if (match) {
      sessionStorage.setItem(KEY, decodeURIComponent(match[1]));
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
  }

  function status(text) { document.getElementById("status").textContent = text; }

  function poll() {
    if (!token()) { status("paste a client token"); return; }
    var since = document.getElementById("since").value;
    fetch("/v1/report?since=" + encodeURIComponent(since), { headers: { Authorization: "Bearer " + token() }, cache: "no-store" })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) { throw new Error(body.error ? body.error.message : "HTTP " + r.status); }
          return body;
        });
      })
      .then(function (report) {
        LyraCharts.draw(report);
        var scope = report.client ? "client " + report.client + "'s own usage" : "the whole desk (operator)";
        status(scope + "; updated " + new Date().toISOString().slice(11, 19) + " UTC; refreshes every " + POLL_MS / 1000 + " s");
      })
      .catch(function (err) { status("error: " + err.message); })
      .then(function () { timer = window.setTimeout(poll, POLL_MS); });
  }

  // A decision's audit link: the record, read with the same token, shown in the page as JSON text.
  function showAudit(seq) {
    fetch("/v1/audit/" + encodeURIComponent(seq), { headers: { Authorization: "Bearer " + token() }, cache: "no-store" })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) { throw new Error(body.error ? body.error.message : "HTTP " + r.status); }
          return body;
        });
      })
      .then(function (record) {
        document.getElementById("audit-title").textContent = "#" + record.seq + " (" + record.decision_id + ")";
        document.getElementById("audit-record").textContent = JSON.stringify(record, null, 2);
      })
      .catch(function (err) {
        document.getElementById("audit-title").textContent = "#" + seq;
        document.getElementById("audit-record").textContent = "error: " + err.message;
      })
      .then(function () {
        var section = document.getElementById("audit");
        section.hidden = false;
        section.scrollIntoView();
      });
  }

  function start() {
    if (timer !== null) { window.clearTimeout(timer); timer = null; }
    poll();
  }

  document.addEventListener("DOMContentLoaded", function () {
    takeTokenFromFragment();
    fetch("/static/report-body.html").then(function (r) { return r.text(); }).then(function (html) {
      document.getElementById("report").innerHTML = html;  // our own static markup, no data in it
      document.getElementById("token-form").addEventListener("submit", function (event) {
        event.preventDefault();
        var typed = document.getElementById("token").value.trim();
        if (typed) { sessionStorage.setItem(KEY, typed); document.getElementById("token").value = ""; }
        start();
      });
      document.getElementById("since").addEventListener("change", start);
      document.getElementById("report").addEventListener("click", function (event) {
        var a = event.target.closest ? event.target.closest("a[data-seq]") : null;
        if (a) { event.preventDefault(); showAudit(a.dataset.seq); }
      });
      start();
    });
  });
})();
