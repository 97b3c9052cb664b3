/* bpttlab report: draws the figures and runs the two explorers.
 *
 * The explorers' numbers are the closed forms of bpttlab/theory.py, ported line by line:
 * decay() (the factor |λ f'|, log10 (λ f')^T = T (log10|λ| + log10|f'|), the float64 value
 * of the power), _first_length_beyond() (the first T at which the power, rounded to float32
 * or float64, is 0 or inf: a log estimate, then the power itself evaluated at each T),
 * activation_derivative() and steps_to_threshold(). tests/e2e/test_report.py moves every
 * slider in a browser and checks the numbers shown against theory.py to 1e-9 relative.
 */
(function () {
  "use strict";

  var DATA = JSON.parse(document.getElementById("bpttlab-data").textContent);
  var CONFIG = { displaylogo: false, responsive: true };
  // theory._LIMITS: smallest positive subnormal and largest finite value per float type
  var LIMITS = {
    float32: [1.401298464324817e-45, 3.4028234663852886e38],
    float64: [5e-324, 1.7976931348623157e308],
  };
  var THRESHOLD = 1e-6; // theory.budget's default

  // ------------------------------------------------------------- figures
  function layoutOf(layout) {
    var out = Object.assign({}, layout);
    out.template = DATA.template;
    return out;
  }

  function draw(div) {
    if (div.dataset.rendered) return;
    var fig = DATA.figures[div.dataset.figure];
    Plotly.newPlot(div, fig.data, layoutOf(fig.layout), CONFIG);
    div.dataset.rendered = "1";
  }

  function drawVisible(root) {
    root.querySelectorAll("[data-figure]").forEach(function (div) {
      if (!div.closest("[hidden]")) draw(div);
    });
  }

  function wirePickers() {
    document.querySelectorAll("select[data-pick]").forEach(function (select) {
      select.addEventListener("change", function () {
        var blocks = document.querySelectorAll('.choice[data-pick="' + select.dataset.pick + '"]');
        blocks.forEach(function (block) {
          block.hidden = block.dataset.index !== select.value;
          if (!block.hidden) {
            drawVisible(block);
            block.querySelectorAll("[data-rendered]").forEach(function (div) {
              Plotly.Plots.resize(div);
            });
          }
        });
      });
    });
  }

  // ------------------------------------------------------------- numbers, as theory.py
  function firstLengthBeyond(factor, bound, dtype, below) {
    // theory._first_length_beyond
    if (factor === 0) return below ? 1 : null;
    if ((below && factor >= 1) || (!below && factor <= 1)) return null;
    var round = dtype === "float32" ? Math.fround : function (x) { return x; };
    function crossed(t) {
      var value = round(Math.pow(factor, t));
      return below ? value === 0 : value === Infinity;
    }
    var guess = Math.max(1, Math.trunc(Math.log(bound) / Math.log(factor)));
    var lo = Math.max(1, guess - 8);
    while (lo > 1 && crossed(lo)) lo = Math.max(1, Math.floor(lo / 2));
    var t = lo;
    while (!crossed(t)) t += 1;
    return t;
  }

  function decay(eigenvalue, derivative, T) {
    // theory.decay(eigenvalue, derivative, [T]): the row for T and the four lengths
    var factor = Math.abs(eigenvalue * derivative);
    var log10f = factor > 0 ? Math.log10(Math.abs(eigenvalue)) + Math.log10(Math.abs(derivative)) : -Infinity;
    var m = Math.pow(factor, T);
    return {
      factor: factor,
      log10f: log10f,
      regime: factor < 1 ? "vanishing" : factor > 1 ? "exploding" : "marginal",
      T: T,
      magnitude: isFinite(m) ? m : null,
      log10: factor > 0 ? T * log10f : -Infinity,
      float32_underflow_at: firstLengthBeyond(factor, LIMITS.float32[0], "float32", true),
      float64_underflow_at: firstLengthBeyond(factor, LIMITS.float64[0], "float64", true),
      float32_overflow_at: firstLengthBeyond(factor, LIMITS.float32[1], "float32", false),
      float64_overflow_at: firstLengthBeyond(factor, LIMITS.float64[1], "float64", false),
    };
  }

  function derivative(name, z) {
    // theory.activation_derivative
    if (name === "tanh") { var t = Math.tanh(z); return 1.0 - t * t; }
    if (name === "sigmoid") {
      var e = Math.exp(-Math.abs(z)); // never overflows
      var s = z >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
      return s * (1.0 - s);
    }
    return z > 0 ? 1.0 : 0.0; // relu, relu'(0) = 0 as torch
  }

  function stepsToThreshold(d, threshold) {
    // theory.steps_to_threshold
    d = Math.abs(d);
    if (d === 0) return 1;
    if (d >= 1) return null;
    var n = Math.max(1, Math.ceil(Math.log(threshold) / Math.log(d)));
    while (Math.pow(d, n) >= threshold) n += 1;
    while (n > 1 && Math.pow(d, n - 1) < threshold) n -= 1;
    return n;
  }

  // ------------------------------------------------------------- display
  function fmt(x) {
    // 12 significant digits, trailing zeros dropped: what the test reads back
    if (x === null || x === undefined) return "—";
    if (typeof x === "string") return x;
    if (x === Infinity) return "inf";
    if (x === -Infinity) return "-inf";
    if (x === 0) return "0";
    if (Number.isInteger(x) && Math.abs(x) < 1e15) return String(x);
    var s = x.toPrecision(12);
    var parts = s.split("e");
    var mantissa = parts[0].indexOf(".") >= 0 ? parts[0].replace(/\.?0+$/, "") : parts[0];
    return parts.length > 1 ? mantissa + "e" + parts[1] : mantissa;
  }

  function show(tableId, values, never) {
    document.querySelectorAll("#" + tableId + " td[data-key]").forEach(function (td) {
      var v = values[td.dataset.key];
      td.textContent = v === null ? never[td.dataset.key] || "never" : fmt(v);
      td.dataset.value = v === null ? "" : String(v);
    });
  }

  function value(id) { return parseFloat(document.getElementById(id).value); }

  function setOutput(id, text) { document.getElementById(id + "-value").textContent = text; }

  // ------------------------------------------------------------- 1. decay explorer
  function updateDecay() {
    var lam = value("decay-lambda"), der = value("decay-derivative");
    var T = Math.round(Math.pow(10, value("decay-tmax")));
    setOutput("decay-lambda", fmt(lam));
    setOutput("decay-derivative", fmt(der));
    setOutput("decay-tmax", "T = " + T);
    var r = decay(lam, der, T);
    show("decay-readout", r, {
      magnitude: "inf (float64 overflow)",
      float32_underflow_at: "never", float64_underflow_at: "never",
      float32_overflow_at: "never", float64_overflow_at: "never",
    });
    var xs = [], exact = [], f32 = [], f64 = [];
    var n = Math.min(T, 400);
    for (var i = 0; i < n; i++) {
      var t = n === 1 ? T : Math.round(1 + (i * (T - 1)) / (n - 1));
      var p = Math.pow(r.factor, t);
      xs.push(t);
      exact.push(t * r.log10f);
      var v32 = Math.fround(p);
      f32.push(v32 > 0 && isFinite(v32) ? Math.log10(v32) : null);
      f64.push(p > 0 && isFinite(p) ? Math.log10(p) : null);
    }
    var traces = [
      { x: xs, y: exact, mode: "lines", name: "exact: T·log10(λ·f')", opacity: 0.35,
        line: { width: 8, color: "#636efa" } },
      { x: xs, y: f64, mode: "lines", name: "held in float64", line: { dash: "dot", width: 2, color: "#ef553b" } },
      { x: xs, y: f32, mode: "lines", name: "held in float32", line: { dash: "dash", width: 2, color: "#00a36c" } },
    ];
    var shapes = [], notes = [];
    [["float32_underflow_at", 0, "float32 → 0"], ["float64_underflow_at", 0, "float64 → 0"],
     ["float32_overflow_at", 1, "float32 → inf"], ["float64_overflow_at", 1, "float64 → inf"]]
      .forEach(function (m) {
        var at = r[m[0]];
        if (at === null || at > T) return;
        var limit = LIMITS[m[0].slice(0, 7)][m[1]];
        shapes.push({ type: "line", x0: at, x1: at, yref: "paper", y0: 0, y1: 1, line: { dash: "dash", width: 1 } });
        shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: Math.log10(limit), y1: Math.log10(limit), line: { dash: "dot", width: 1, color: "grey" } });
        notes.push({ x: at, y: Math.log10(limit), text: m[2] + " at T = " + at, showarrow: true, arrowhead: 2, ax: 40, ay: -30 });
      });
    Plotly.react("decay-plot", traces, layoutOf({
      title: { text: "(λ·f')^T = " + fmt(r.factor) + "^T (" + r.regime + ")", font: { size: 14 } },
      xaxis: { title: { text: "sequence length T" } },
      yaxis: { title: { text: "log10 gradient magnitude" } },
      shapes: shapes, annotations: notes, height: 380,
      margin: { l: 60, r: 20, t: 50, b: 50 }, legend: { font: { size: 10 } },
    }), CONFIG);
  }

  // ------------------------------------------------------------- 2. saturation explorer
  var ZS = [];
  for (var k = -240; k <= 240; k++) ZS.push(k / 40);

  function updateSaturation() {
    var z = value("sat-z");
    setOutput("sat-z", fmt(z));
    var d = { tanh: derivative("tanh", z), sigmoid: derivative("sigmoid", z), relu: derivative("relu", z) };
    show("sat-readout", {
      z: z, tanh_d: d.tanh, sigmoid_d: d.sigmoid, relu_d: d.relu,
      tanh_steps: stepsToThreshold(d.tanh, THRESHOLD),
      sigmoid_steps: stepsToThreshold(d.sigmoid, THRESHOLD),
      relu_steps: stepsToThreshold(d.relu, THRESHOLD),
    }, {});
    var f = {
      tanh: ZS.map(Math.tanh),
      sigmoid: ZS.map(function (x) { return 1 / (1 + Math.exp(-x)); }),
      relu: ZS.map(function (x) { return Math.max(0, x); }),
    };
    var traces = [];
    ["tanh", "sigmoid", "relu"].forEach(function (name, i) {
      var color = ["#1f77b4", "#ff7f0e", "#2ca02c"][i];
      traces.push({ x: ZS, y: f[name], mode: "lines", name: name, line: { color: color }, legendgroup: name });
      traces.push({ x: ZS, y: ZS.map(function (x) { return derivative(name, x); }), mode: "lines",
        name: name + "'", line: { color: color, dash: "dash" }, legendgroup: name, xaxis: "x2", yaxis: "y2" });
      traces.push({ x: [z], y: [d[name]], mode: "markers", marker: { color: color, size: 10 },
        showlegend: false, xaxis: "x2", yaxis: "y2", hoverinfo: "x+y" });
    });
    var line = function (axis) {
      return { type: "line", xref: axis, x0: z, x1: z, yref: axis === "x" ? "y domain" : "y2 domain", y0: 0, y1: 1, line: { dash: "dot", color: "grey" } };
    };
    Plotly.react("sat-plot", traces, layoutOf({
      title: { text: "f(z) and f'(z) at z = " + fmt(z), font: { size: 14 } },
      xaxis: { domain: [0, 0.46], title: { text: "z" } },
      yaxis: { title: { text: "f(z)" }, range: [-1.1, 2.1] },
      xaxis2: { domain: [0.54, 1], title: { text: "z" }, anchor: "y2" },
      yaxis2: { anchor: "x2", title: { text: "f'(z)" }, range: [-0.05, 1.1] },
      shapes: [line("x"), line("x2")], height: 380,
      margin: { l: 60, r: 20, t: 50, b: 50 }, legend: { font: { size: 10 } },
    }), CONFIG);
  }

  function wire(ids, update) {
    ids.forEach(function (id) { document.getElementById(id).addEventListener("input", update); });
    update();
  }

  function start() {
    drawVisible(document);
    wirePickers();
    wire(["decay-lambda", "decay-derivative", "decay-tmax"], updateDecay);
    wire(["sat-z"], updateSaturation);
    document.body.dataset.ready = "1";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
