/* Lyra report views: KPI tiles, charts (Chart.js, vendored beside this file) and tables from a
   report object (GET /v1/report, `lyra report --json`). Used by /dashboard and by HTML reports.
   Every value is written with textContent, never as HTML: model names and votes are data. */
(function (global) {
  "use strict";
  var charts = {};
  var palette = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#14b8a6", "#f97316", "#64748b"];

  function usd(x) {
    if (x === null || x === undefined) { return "–"; }
    return "$" + Number(x).toFixed(Math.abs(x) >= 0.01 ? 4 : 6);  // cents and up, else nano-dollars
  }
  function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%"; }
  function ms(x) { return x === null || x === undefined ? "–" : Math.round(x) + " ms"; }

  function setText(id, text) { var el = document.getElementById(id); if (el) { el.textContent = text; } }

  function chart(id, type, labels, datasets, options) {
    var canvas = document.getElementById(id);
    if (!canvas) { return; }
    var existing = charts[id];
    if (existing) {
      existing.data.labels = labels;
      existing.data.datasets = datasets;
      existing.update("none");
      return;
    }
    charts[id] = new global.Chart(canvas, {
      type: type, data: { labels: labels, datasets: datasets },
      options: Object.assign({ animation: false, responsive: true, maintainAspectRatio: false,
                               plugins: { legend: { display: datasets.length > 1 } } }, options || {})
    });
  }

  function dataset(label, data, i) {
    return { label: label, data: data, backgroundColor: palette[i % palette.length] };
  }

  function table(id, headers, rows) {
    var el = document.getElementById(id);
    if (!el) { return; }
    el.textContent = "";
    var head = el.createTHead().insertRow();
    headers.forEach(function (h) { var th = document.createElement("th"); th.textContent = h; head.appendChild(th); });
    var body = el.createTBody();
    rows.forEach(function (row) {
      var tr = body.insertRow();
      row.forEach(function (cell) { tr.insertCell().textContent = cell === null || cell === undefined ? "–" : String(cell); });
    });
  }

  function money(x) {
    if (x === null || x === undefined) { return "–"; }
    return (x < 0 ? "-$" : "$") + Math.abs(Number(x)).toFixed(2).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }
  function trades(a) { return a.closed_trades ? pct(a.profitable_share) + " of " + a.closed_trades : "none closed"; }
  function number(x) { return x === null || x === undefined ? "–" : Number(x).toFixed(2); }

  function accountState(a) {
    if (a.halted) { return "halted"; }
    return a.position_units > 0 ? "long" : a.position_units < 0 ? "short" : "flat";
  }

  function accounts(report) {
    // Older reports (before paper accounts) have no section: say so rather than draw zeros.
    var section = report.paper_accounts || { accounts: [], note: "no paper account yet" };
    setText("accounts-note", section.note || "");
    var el = document.getElementById("table-accounts");
    if (el) { el.hidden = section.accounts.length === 0; }
    table("table-accounts", ["account", "period (UTC)", "equity", "P&L", "buy & hold", "vs hold", "profitable",
                             "day drawdown", "AI spend", "ROAS", "state"],
      section.accounts.map(function (a) {
        if (a.error) { return [a.name, a.error, null, null, null, null, null, null, null, null, null]; }
        var period = a.since ? a.since.slice(0, 16).replace("T", " ") + " .. " + a.until.slice(0, 16).replace("T", " ") : null;
        return [a.name, period, money(a.equity_usd), money(a.pnl_usd),
                money(a.buy_and_hold_pnl_usd) + " (" + pct(a.buy_and_hold_return) + ")",
                money(a.pnl_vs_buy_and_hold_usd), trades(a),
                pct(a.day_drawdown), usd(a.ai_spend_nanos / 1e9), number(a.return_on_ai_spend), accountState(a)];
      }));
    setText("accounts-roas", section.return_on_ai_spend_definition ?
      "ROAS, in " + section.return_on_ai_spend_unit + ": " + section.return_on_ai_spend_definition : "");
  }

  function costDrift(report) {
    var d = report.cost_drift;
    if (!d) { return; }
    var line = function (name, x) {
      return [name, x.reconciled + " of " + x.attempts, pct(x.reconciled_share), usd(x.booked_usd),
              usd(x.reconciled_booked_usd), usd(x.billed_usd), usd(x.drift_usd), pct(x.drift_share)];
    };
    table("table-drift", ["scope", "reconciled", "share", "booked", "booked (reconciled)", "billed", "drift", "drift %"],
      [line("all", d)].concat(d.models.map(function (m) { return line("model " + m.group, m); }),
                              d.keys.map(function (k) { return line("key " + k.group, k); })));
  }

  function share(part, whole) { return whole ? 100 * part / whole : 0; }

  function caps(report, prefix) {
    return report.budget.filter(function (c) { return c.name.indexOf(prefix) === 0 && c.unit === "usd"; });
  }

  function draw(report) {
    var t = report.totals;
    setText("kpi-window", report.window.label);
    setText("kpi-requests", String(t.requests));
    setText("kpi-errors", String(t.errors));
    setText("kpi-success", pct(t.success_rate));
    setText("kpi-spend", usd(t.cost_usd));
    setText("kpi-signals", String(report.signals.signals));
    setText("kpi-per-signal", usd(report.signals.spend_per_signal_usd));
    setText("kpi-agreement", pct(report.agreement.mean_agreement));

    var models = report.models.map(function (m) { return m.model; });
    chart("chart-requests", "bar", models, [dataset("requests", report.models.map(function (m) { return m.requests; }), 0)]);
    chart("chart-latency", "bar", models, [
      dataset("p50 ms", report.models.map(function (m) { return m.p50_latency_ms; }), 0),
      dataset("p95 ms", report.models.map(function (m) { return m.p95_latency_ms; }), 1)]);
    chart("chart-errors", "bar", models, [dataset("error rate %", report.models.map(function (m) { return 100 * m.error_rate; }), 3)]);
    chart("chart-days", "bar", report.days.map(function (d) { return d.period; }),
          [dataset("spend $", report.days.map(function (d) { return d.cost_usd; }), 2)]);
    ["tier:", "key:"].forEach(function (prefix, i) {
      var lines = caps(report, prefix);
      // The share of each daily cap in use, so that a $0.01 spend and a $50 cap both show.
      chart(i === 0 ? "chart-tiers" : "chart-keys", "bar",
        lines.map(function (c) { return c.name.slice(prefix.length) + " ($" + c.limit + " cap)"; }), [
          dataset("spent, % of cap", lines.map(function (c) { return share(c.spent, c.limit); }), 0),
          dataset("reserved, % of cap", lines.map(function (c) { return share(c.reserved, c.limit); }), 1)],
        { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } },
          plugins: { tooltip: { callbacks: { afterLabel: function (item) {
            var c = lines[item.dataIndex]; return "$" + c.spent.toFixed(6) + " spent of $" + c.limit; } } } } });
    });

    table("table-models", ["model", "tier", "requests", "errors", "success", "avg", "p50", "p95", "cost", "$/request"],
      report.models.map(function (m) {
        return [m.model, m.tier, m.requests, m.errors, pct(m.success_rate), ms(m.avg_latency_ms), ms(m.p50_latency_ms),
                ms(m.p95_latency_ms), usd(m.cost_usd), usd(m.cost_per_request_usd)];
      }));
    table("table-keys", ["key", "attempts", "errors", "error rate", "cost", "today / cap"],
      report.keys.map(function (k) { return [k.key, k.attempts, k.attempt_errors, pct(k.error_rate), usd(k.cost_usd), pct(k.utilisation)]; }));
    costDrift(report);
    table("table-decisions", ["#", "time (UTC)", "symbol", "action", "agreement", "cost", "votes"],
      report.decisions.map(function (d) {
        var votes = d.votes.map(function (v) { return v.model + ": " + (v.action || v.status) + (v.confidence ? " " + Number(v.confidence).toFixed(2) : ""); });
        return [d.seq, new Date(d.ts * 1000).toISOString().slice(0, 19).replace("T", " "), d.symbol, d.action,
                pct(d.agreement), usd(d.cost_usd), votes.join("; ")];
      }));
    accounts(report);
    var advice = report.advice.map(function (a) { return [a.model, a.tier, a.reasons.join("; ")]; });
    table("table-advice", ["model", "tier", "why"],
      advice.length ? advice : [["–", "–", "no model does markedly worse than its tier's peers"]]);
    document.body.setAttribute("data-drawn", String(report.generated_ts));
  }

  global.LyraCharts = { draw: draw, charts: charts };
})(window);
