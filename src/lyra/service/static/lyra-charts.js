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

  // A table whose cells are text, or a node (a link, a list) built by the caller: never HTML from the data.
  function table(id, headers, rows) {
    var el = document.getElementById(id);
    if (!el) { return; }
    el.textContent = "";
    var head = el.createTHead().insertRow();
    headers.forEach(function (h) { var th = document.createElement("th"); th.textContent = h; head.appendChild(th); });
    var body = el.createTBody();
    rows.forEach(function (row) {
      var tr = body.insertRow();
      row.forEach(function (cell) {
        var td = tr.insertCell();
        if (cell instanceof global.Node) { td.appendChild(cell); }
        else { td.textContent = cell === null || cell === undefined ? "–" : String(cell); }
      });
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

  global.LyraCharts = { draw: draw, charts: charts, table: table };
})(window);

/* The desk view, drawn after the views above (appended, so the report views stay as they were): caps in
   their own unit (a token cap as tokens), budget refusals apart from model failures, per-client spend
   against its cap, the desk's alerts and breakers, cache hits, decision rows with bar time, price,
   notional, one line per vote and a link to the audit record. Each part draws only where its element is. */
(function (global) {
  "use strict";
  var base = global.LyraCharts.draw;
  var palette = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#14b8a6"];

  function has(id) { return document.getElementById(id) !== null; }
  function setText(id, text) { var el = document.getElementById(id); if (el) { el.textContent = text; } }
  function none(x) { return x === null || x === undefined; }
  function usd(x) { return none(x) ? "–" : "$" + Number(x).toFixed(Math.abs(x) >= 0.01 ? 4 : 6); }
  function dollars(x) {
    return none(x) ? "–" : (x < 0 ? "-$" : "$") + Math.abs(Number(x)).toFixed(2).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }
  function pct(x) { return none(x) ? "–" : (100 * x).toFixed(1) + "%"; }
  function tokens(x) { return none(x) ? "–" : Number(x).toLocaleString("en-US") + " tokens"; }
  function ofCap(used, cap, share, fmt) { return none(cap) ? "no cap" : fmt(used) + " of " + fmt(cap) + " (" + pct(share) + ")"; }
  function utc(iso) { return none(iso) ? "–" : String(iso).slice(0, 16).replace("T", " "); }

  var table = global.LyraCharts.table;

  function list(items, className) {
    var ul = document.createElement("ul");
    ul.className = className;
    items.forEach(function (text) { var li = document.createElement("li"); li.textContent = text; ul.appendChild(li); });
    return ul;
  }

  function link(text, href, data) {
    var a = document.createElement("a");
    a.textContent = text;
    a.href = href;
    Object.keys(data).forEach(function (k) { a.dataset[k] = data[k]; });
    return a;
  }

  // Each cap against its own limit in its own unit: dollars over a dollar cap, tokens over a token cap.
  function capShare(c) { return c.limit ? 100 * c.spent / c.limit : 0; }
  function capHeld(c) { return c.limit ? 100 * c.reserved / c.limit : 0; }
  function capLabel(c, prefix) {
    var name = c.name.slice(prefix.length);
    return c.unit === "usd" ? name + " ($" + c.limit + " cap)" : name + " (" + Number(c.limit).toLocaleString("en-US") + " token cap)";
  }

  function keyCaps(report) {
    var lines = report.budget.filter(function (c) { return c.name.indexOf("key:") === 0 || c.name.indexOf("key_tokens:") === 0; });
    var chart = global.Chart && has("chart-keys") ? global.Chart.getChart("chart-keys") : null;
    if (!chart) { return; }
    chart.data.labels = lines.map(function (c) { return capLabel(c, c.name.indexOf("key:") === 0 ? "key:" : "key_tokens:"); });
    chart.data.datasets = [
      { label: "spent, % of cap", data: lines.map(capShare), backgroundColor: palette[0] },
      { label: "reserved, % of cap", data: lines.map(capHeld), backgroundColor: palette[1] }];
    chart.options.plugins.tooltip = { callbacks: { afterLabel: function (item) {
      var c = lines[item.dataIndex];
      return c.unit === "usd" ? "$" + Number(c.spent).toFixed(6) + " spent of $" + c.limit : tokens(c.spent) + " of " + tokens(c.limit);
    } } };
    chart.update("none");
  }

  function models(report) {
    table("table-models", ["model", "tier", "requests", "model failures", "budget refusals", "success", "cache hits",
                           "p50", "p95", "cost", "$/request"],
      report.models.map(function (m) {
        var failures = none(m.model_failures) ? m.errors : m.model_failures;
        var ms = function (x) { return none(x) ? "–" : Math.round(x) + " ms"; };
        return [m.model, m.tier, m.requests, failures, m.refused || 0, pct(m.success_rate), pct(m.cache_hit_rate),
                ms(m.p50_latency_ms), ms(m.p95_latency_ms), usd(m.cost_usd), usd(m.cost_per_request_usd)];
      }));
  }

  function keys(report) {
    table("table-keys", ["key", "attempts", "errors", "error rate", "cost", "today $ / $ cap", "today tokens / token cap"],
      report.keys.map(function (k) {
        return [k.key, k.attempts, k.attempt_errors, pct(k.error_rate), usd(k.cost_usd),
                ofCap(k.today_spent_usd, k.cap_usd, k.utilisation, usd),
                ofCap(k.today_tokens, k.cap_tokens, k.token_utilisation, tokens)];
      }));
  }

  function clients(report) {
    var rows = report.clients || [];
    table("table-clients", ["client", "requests", "model failures", "budget refusals", "spend (window)", "today / daily cap"],
      rows.map(function (c) {
        var today = none(c.today_spent_usd) ? null : Number(c.today_spent_usd) + Number(c.today_reserved_usd || 0);
        return [c.client, c.requests, c.model_failures, c.refused, usd(c.cost_usd), ofCap(today, c.cap_usd, c.utilisation, usd)];
      }));
    var chart = global.Chart && has("chart-clients") ? global.Chart.getChart("chart-clients") : null;
    var capped = rows.filter(function (c) { return !none(c.cap_usd); });
    var labels = capped.map(function (c) { return c.client + " ($" + c.cap_usd + " cap)"; });
    var data = [{ label: "spent and held, % of cap", data: capped.map(function (c) { return 100 * (c.utilisation || 0); }),
                  backgroundColor: palette[2] }];
    if (chart) { chart.data.labels = labels; chart.data.datasets = data; chart.update("none"); }
    else if (global.Chart && has("chart-clients")) {
      new global.Chart(document.getElementById("chart-clients"), { type: "bar", data: { labels: labels, datasets: data },
        options: { animation: false, responsive: true, maintainAspectRatio: false, plugins: { legend: { display: false } },
                   scales: { y: { beginAtZero: true } } } });
    }
  }

  function decisions(report) {
    table("table-decisions", ["audit", "bar (UTC)", "symbol", "action", "price", "notional", "agreement", "cost", "votes"],
      report.decisions.map(function (d) {
        var votes = d.votes.map(function (v) {
          return v.model + ": " + (v.action || v.status) + (none(v.confidence) ? "" : " " + Number(v.confidence).toFixed(2));
        });
        var audit = link("#" + d.seq, "#audit-" + d.seq, { seq: String(d.seq), decision: d.decision_id || "" });
        audit.title = "audit record " + (d.decision_id || d.seq) + (d.audit_hash ? ", hash " + d.audit_hash.slice(0, 16) : "");
        return [audit, utc(d.bar_time || new Date(d.ts * 1000).toISOString()), d.symbol, d.action,
                none(d.price) ? null : Number(d.price).toFixed(2), dollars(d.notional_usd), pct(d.agreement), usd(d.cost_usd),
                votes.length ? list(votes, "votes") : null];
      }));
  }

  function paper(report) {
    var accounts = (report.paper_accounts || { accounts: [] }).accounts.filter(function (a) { return !a.error; });
    var sum = function (field) { return accounts.reduce(function (s, a) { return s + Number(a[field] || 0); }, 0); };
    setText("kpi-pnl", accounts.length ? dollars(sum("pnl_usd")) : "–");
    setText("kpi-positions", accounts.length ? String(accounts.filter(function (a) { return a.position_units; }).length) +
            " of " + accounts.length : "–");
    setText("kpi-ai-spend", accounts.length ? usd(sum("ai_spend_nanos") / 1e9) : "–");
    table("table-positions", ["account", "position", "entry", "equity", "P&L", "realised", "unrealised", "AI spend", "ROAS"],
      accounts.map(function (a) {
        var side = a.halted ? "halted" : a.position_units > 0 ? "long " + a.position_units : a.position_units < 0 ? "short " + (-a.position_units) : "flat";
        return [a.name, side, none(a.entry_price) ? null : Number(a.entry_price).toFixed(2), dollars(a.equity_usd), dollars(a.pnl_usd),
                dollars(a.realised_pnl_usd), dollars(a.unrealised_pnl_usd), usd(a.ai_spend_nanos / 1e9),
                none(a.return_on_ai_spend) ? null : Number(a.return_on_ai_spend).toFixed(2)];
      }));
  }

  function alerts(report) {
    var el = document.getElementById("alerts");
    if (!el) { return; }
    var found = report.alerts || [];
    el.textContent = "";
    el.appendChild(found.length ? list(found, "alerts") : document.createTextNode("no alerts"));
    var phases = report.breakers || {};
    var names = Object.keys(phases).sort();
    setText("breakers", names.length ? names.map(function (m) { return m + ": " + phases[m]; }).join(" · ")
                                     : "no model's circuit has tripped");
  }

  function hours(report) {
    var canvas = document.getElementById("chart-hours");
    if (!canvas || !global.Chart) { return; }
    var series = report.hours || [];
    var labels = series.map(function (h) { return h.period.slice(5, 16).replace("T", " "); });
    var data = [
      { type: "bar", label: "spend $", data: series.map(function (h) { return Number(h.cost_usd); }), backgroundColor: palette[2], yAxisID: "y" },
      { type: "line", label: "requests", data: series.map(function (h) { return h.requests; }), borderColor: palette[0],
        backgroundColor: palette[0], yAxisID: "requests" }];
    var chart = global.Chart.getChart(canvas);
    if (chart) { chart.data.labels = labels; chart.data.datasets = data; chart.update("none"); return; }
    new global.Chart(canvas, { type: "bar", data: { labels: labels, datasets: data },
      options: { animation: false, responsive: true, maintainAspectRatio: false,
                 scales: { y: { beginAtZero: true, position: "left" },
                           requests: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } } } });
  }

  function kpis(report) {
    var t = report.totals;
    if (t.refused) { setText("kpi-errors", t.errors + " (" + t.refused + " by budget)"); }
    setText("kpi-failures", none(t.model_failures) ? String(t.errors) : String(t.model_failures));
    setText("kpi-refused", String(t.refused || 0));
    setText("kpi-cache", pct(t.cache_hit_rate));
    setText("kpi-alerts", String((report.alerts || []).length));
  }

  function draw(report) {
    base(report);
    kpis(report);
    keyCaps(report);
    models(report);
    keys(report);
    clients(report);
    decisions(report);
    paper(report);
    alerts(report);
    hours(report);
  }

  global.LyraCharts.draw = draw;
})(window);
