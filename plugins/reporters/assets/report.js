(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("hbench-data").textContent);
  var byName = {};
  data.lanes.forEach(function (l) { byName[l.name] = l; });
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function pct(x) { return x === null || x === undefined ? "–" : (x * 100).toFixed(0) + "%"; }
  function fmt(x, d) { return x === null || x === undefined ? "–" : Number(x).toFixed(d); }
  function note(id, text) { var n = document.getElementById(id); if (n) n.textContent = text; }

  // ------------------------------------------------------------- attempts view
  var detail = document.getElementById("detail");
  function showCell(lane, pid, td) {
    var cell = (data.cells[lane] || {})[pid];
    var prompt = data.prompts.filter(function (p) { return p.id === pid; })[0] || {};
    detail.replaceChildren();
    document.querySelectorAll("td.selected").forEach(function (x) { x.classList.remove("selected"); });
    if (td) td.classList.add("selected");
    detail.hidden = false;
    if (!cell) { detail.appendChild(el("p", null, "No attempts.")); return; }
    detail.appendChild(el("h3", null, pid + " on " + lane + ": " + cell.passes + "/" + cell.runs + " passed" + (cell.errored ? " (" + cell.errored + " errored, not scored)" : "")));
    if (prompt.text) { detail.appendChild(el("div", {"class": "role"}, "prompt")); detail.appendChild(el("pre", null, prompt.text)); }
    if (cell.skipped) detail.appendChild(el("p", {"class": "warn"}, "Skipped: " + cell.skipped));
    if (!data.has_journal) detail.appendChild(el("p", {"class": "note"},
      "Transcripts not included: this report was built from scorecards alone (the run's journal.jsonl holds them)."));
    else if (cell.attempts.length > 3) detail.appendChild(el("p", {"class": "note"}, "Failed attempts are open; click an attempt to expand it."));
    cell.attempts.forEach(function (a) {
      var d = el("details", {"class": "attempt"});
      if (cell.attempts.length <= 3 || !a.passed) d.open = true;
      var s = el("summary");
      s.appendChild(el("span", {"class": a.passed ? "pass" : "fail"}, "Attempt " + a.n + ": " + (a.passed ? "pass" : "fail")));
      var bits = [fmt(a.wall_s, 1) + " s", "tools: " + (a.tools.length ? a.tools.join(", ") : "none")];
      if (a.runaway) bits.push("runaway: " + a.runaway);
      if (a.error) bits.push("error: " + a.error);
      s.appendChild(document.createTextNode("  ·  " + bits.join("  ·  ")));
      d.appendChild(s);
      d.appendChild(el("div", {"class": "role"}, "check"));
      d.appendChild(el("p", null, a.why || "(the check gave no reason)"));
      d.appendChild(el("div", {"class": "role"}, "answer"));
      d.appendChild(el("pre", {"class": "answer"}, a.answer || "(empty answer)"));
      if (a.tool_calls.length) {
        d.appendChild(el("div", {"class": "role"}, "tool calls"));
        a.tool_calls.forEach(function (c) {
          var head = c.name + "(" + c.arguments + ")" + (c.ok ? "" : "  [" + (c.format_error ? "format error" : "error") + "]");
          d.appendChild(el("pre", {"class": "toolcall"}, head + (c.error ? "\n→ " + c.error : (c.result ? "\n→ " + c.result : ""))));
        });
      }
      if (a.transcript.length) {
        d.appendChild(el("div", {"class": "role"}, "transcript"));
        a.transcript.forEach(function (m) {
          var w = el("div", {"class": "msg"});
          w.appendChild(el("div", {"class": "role"}, m.role + (m.name ? " · " + m.name : "")));
          if (m.reasoning) w.appendChild(el("pre", {"class": "reasoning"}, "(reasoning) " + m.reasoning));
          w.appendChild(el("pre", null, m.content));
          d.appendChild(w);
        });
      } else if (data.has_journal) {
        d.appendChild(el("p", {"class": "note"}, "No transcript for this attempt in the journal."));
      }
      detail.appendChild(d);
    });
  }
  document.querySelectorAll("#matrix button[data-lane]").forEach(function (b) {
    b.addEventListener("click", function () { showCell(b.getAttribute("data-lane"), b.getAttribute("data-prompt"), b.parentNode); });
  });

  // ------------------------------------------------------------- charts
  if (typeof Chart === "undefined") { note("chart-status", "Charts unavailable: Chart.js did not load."); return; }
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  var charts = window.hbenchCharts = {};

  // quality vs throughput: bubbles with 95% CI whiskers and lane labels
  var placed = data.lanes.filter(function (l) { return l.tok_s !== null && l.pass_rate !== null; });
  var missing = data.lanes.filter(function (l) { return l.tok_s === null || l.pass_rate === null; });
  var maxMem = Math.max.apply(null, placed.map(function (l) { return l.mem_gb || 0; }).concat([1]));
  function radius(l) { return l.mem_gb ? 5 + 25 * Math.sqrt(l.mem_gb / maxMem) : 5; }
  var whiskers = {
    id: "hbenchWhiskers",
    afterDatasetsDraw: function (chart) {
      var ctx = chart.ctx, xs = chart.scales.x, ys = chart.scales.y;
      chart.data.datasets.forEach(function (ds, i) {
        var l = ds.lane, meta = chart.getDatasetMeta(i);
        if (!meta.data.length) return;
        var x = xs.getPixelForValue(l.tok_s);
        ctx.save();
        ctx.strokeStyle = l.color; ctx.lineWidth = 1.5;
        if (l.ci[0] !== null && l.ci[1] !== null) {
          var y0 = ys.getPixelForValue(l.ci[0] * 100), y1 = ys.getPixelForValue(l.ci[1] * 100);
          ctx.beginPath(); ctx.moveTo(x, y0); ctx.lineTo(x, y1);
          ctx.moveTo(x - 5, y0); ctx.lineTo(x + 5, y0); ctx.moveTo(x - 5, y1); ctx.lineTo(x + 5, y1); ctx.stroke();
        }
        ctx.fillStyle = "#1b1f24"; ctx.font = "12px " + Chart.defaults.font.family; ctx.textBaseline = "middle";
        var label = l.name + (l.rank === null ? " (not ranked)" : " (#" + l.rank + ")");
        var r = radius(l), tx = x + r + 6, w = ctx.measureText(label).width;
        if (tx + w > xs.right) tx = x - r - 6 - w;
        ctx.fillText(label, tx, ys.getPixelForValue(l.pass_rate * 100));
        ctx.restore();
      });
    }
  };
  var maxTok = Math.max.apply(null, placed.map(function (l) { return l.tok_s; }).concat([1]));
  charts.quality = new Chart(document.getElementById("chart-quality"), {
    type: "bubble",
    data: { datasets: placed.map(function (l) {
      return { label: l.name, lane: l, data: [{ x: l.tok_s, y: l.pass_rate * 100, r: radius(l) }],
               backgroundColor: l.color + (l.rank === null ? "33" : "99"), borderColor: l.color,
               borderWidth: l.rank === null ? 1 : 2 };
    }) },
    options: {
      layout: { padding: { right: 10, top: 10 } },
      scales: {
        x: { min: 0, suggestedMax: maxTok * 1.25, title: { display: true, text: "decode throughput (tok/s, higher = faster)" } },
        y: { min: 0, max: 100, title: { display: true, text: "pass rate % (whisker = 95% interval)" } }
      },
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: { label: function (c) {
          var l = c.dataset.lane;
          return [l.name + (l.model ? " · " + l.model : ""), "pass rate " + pct(l.pass_rate) + " [" + pct(l.ci[0]) + "–" + pct(l.ci[1]) + "]",
                  fmt(l.tok_s, 1) + " tok/s", "peak memory " + (l.mem_gb === null ? "unknown" : fmt(l.mem_gb, 1) + " GB")];
        } } }
      }
    },
    plugins: [whiskers]
  });
  note("quality-missing", missing.length ? "Not plotted (no throughput or pass-rate figure): " +
       missing.map(function (l) { return l.name; }).join(", ") : "");

  // per category: pass rate, lanes side by side
  var cats = data.categories || { names: [], lanes: {} };
  if (cats.names.length && document.getElementById("chart-categories")) {
    charts.categories = new Chart(document.getElementById("chart-categories"), {
      type: "bar",
      data: { labels: cats.names, datasets: data.lanes.map(function (l) {
        return { label: l.name, backgroundColor: l.color + "cc", borderColor: l.color, borderWidth: 1,
                 data: cats.names.map(function (c) { var f = (cats.lanes[l.name] || {})[c]; return f ? f.pass_rate * 100 : null; }) };
      }) },
      options: {
        scales: { y: { min: 0, max: 100, title: { display: true, text: "pass rate % (mean over the category's prompts)" } } },
        plugins: { legend: { position: "bottom" }, tooltip: { callbacks: { label: function (c) {
          var f = (cats.lanes[c.dataset.label] || {})[cats.names[c.dataIndex]] || {};
          return c.dataset.label + ": " + pct(f.pass_rate) + (f.core_n ? " · core " + f.core_pass + "/" + f.core_n : "");
        } } } }
      }
    });
  }

  // telemetry over time
  function lineSets(key) {
    return data.lanes.filter(function (l) { return (data.series[l.name] || []).some(function (p) { return p[key] !== null; }); })
      .map(function (l) {
        return { label: l.name, borderColor: l.color, backgroundColor: l.color, borderWidth: 1.5, spanGaps: true,
                 pointRadius: data.series[l.name].length < 3 ? 3 : 0,
                 data: data.series[l.name].map(function (p) { return { x: p.t, y: p[key] }; }) };
      });
  }
  function lineChart(id, key, ytitle, ymax, emptyId) {
    var sets = lineSets(key);
    if (!sets.length) { note(emptyId, "No lane reported this reading (see each scorecard's telemetry.probes for why)."); }
    charts[id] = new Chart(document.getElementById(id), {
      type: "line", data: { datasets: sets },
      options: { parsing: false, normalized: true,
        scales: { x: { type: "linear", min: 0, title: { display: true, text: "seconds since the lane started" } },
                  y: { min: 0, max: ymax, title: { display: true, text: ytitle } } },
        plugins: { legend: { position: "bottom" } } }
    });
  }
  lineChart("chart-gpu", "gpu_util", "GPU utilisation %", 100, "gpu-empty");
  lineChart("chart-mem", "mem_gb", "memory in use (GB)", undefined, "mem-empty");

  // latency distribution: share of attempts finished within t seconds
  var latSets = data.lanes.filter(function (l) { return (data.walls[l.name] || []).length; }).map(function (l) {
    var w = data.walls[l.name], n = w.length;
    var pts = [{ x: 0, y: 0 }];
    w.forEach(function (v, i) { pts.push({ x: v, y: (i + 1) / n * 100 }); });
    return { label: l.name, borderColor: l.color, backgroundColor: l.color, stepped: "before", pointRadius: 0, borderWidth: 1.5, data: pts };
  });
  charts.latency = new Chart(document.getElementById("chart-latency"), {
    type: "line", data: { datasets: latSets },
    options: { parsing: false,
      scales: { x: { type: "linear", min: 0, title: { display: true, text: "attempt wall time (s)" } },
                y: { min: 0, max: 100, title: { display: true, text: "% of attempts finished within" } } },
      plugins: { legend: { position: "bottom" } } }
  });
  document.body.setAttribute("data-charts", "ready");
})();
