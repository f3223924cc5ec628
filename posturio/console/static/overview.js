// Console overview: draws each chart of the JSON block #overview-data with uPlot (time
// axis in the reader's time zone, values under the pointer in the legend). Stacked charts
// are bars drawn tallest first, each at its running total; the legend shows the own value.
"use strict";

(function () {
  const source = document.getElementById("overview-data");
  if (!source || typeof uPlot === "undefined") return;
  const data = JSON.parse(source.textContent);
  const step = data.hourly ? 3600 : 86400;
  const DECISION_COLOURS = {
    allow: "#3f9b57", flag: "#e0a100", redact: "#3b7dd8", reroute: "#8e5bd8",
    block: "#d64541", refused: "#7d8795",
  };
  const PALETTE = ["#2f5fd0", "#e07b39", "#3f9b57", "#c2417e", "#8e5bd8", "#1c9aa6", "#7d8795"];

  function colour(chart, label, i) {
    if (chart.id === "decisions" && DECISION_COLOURS[label]) return DECISION_COLOURS[label];
    return label === "other" ? "#b8bec9" : PALETTE[i % PALETTE.length];
  }

  function format(unit) {
    if (unit === "usd") return (v) => (v == null ? "–" : "$" + v.toFixed(v && v < 0.01 ? 6 : 4));
    if (unit === "ms") return (v) => (v == null ? "–" : v.toFixed(v < 10 ? 2 : 0) + " ms");
    return (v) => (v == null ? "–" : String(Math.round(v)));
  }

  function tick(unit) {
    if (unit === "usd") return (u, ticks) => ticks.map((v) => "$" + +v.toPrecision(3));
    if (unit === "ms") return (u, ticks) => ticks.map((v) => +v.toPrecision(3) + " ms");
    return (u, ticks) => ticks.map((v) => (Number.isInteger(v) ? String(v) : ""));
  }

  function draw(figure, chart) {
    if (!chart.series.length) {
      const none = document.createElement("p");
      none.className = "muted";
      none.textContent = "Nothing in this range.";
      figure.append(none);
      return null;
    }
    const show = format(chart.unit);
    // Stacked: running totals bottom-up, then listed (and drawn) top-down.
    let columns = chart.series.map((s) => s.values);
    let order = chart.series.map((s, i) => i);
    if (chart.stacked) {
      const running = data.x.map(() => 0);
      columns = chart.series.map((s) => s.values.map((v, j) => (running[j] += v || 0)));
      order = order.reverse();
    }
    const bars = chart.stacked ? uPlot.paths.bars({ size: [0.75, 48] }) : undefined;
    const series = [
      { label: "Time", value: data.hourly ? "{YYYY}-{MM}-{DD} {HH}:{mm}" : "{YYYY}-{MM}-{DD}" },
      ...order.map((i) => {
        const s = chart.series[i];
        const c = colour(chart, s.label, i);
        return {
          label: s.label,
          stroke: c,
          width: chart.stacked ? 0 : 2,
          fill: chart.stacked ? c : undefined,
          paths: bars,
          spanGaps: false,
          points: { show: !chart.stacked },
          value: (u, v, si, idx) => (idx == null ? "–" : show(s.values[idx])),
        };
      }),
    ];
    const plot = new uPlot(
      {
        width: Math.max(figure.clientWidth, 200),
        height: 220,
        scales: {
          // Half a bucket of room at each end: the first and last bars are drawn whole.
          x: { time: true, range: (u, min, max) => [min - step / 2, max + step / 2] },
          y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
        },
        series,
        axes: [{ space: 60 }, { values: tick(chart.unit), size: 64 }],
        legend: { live: true },
        cursor: { drag: { x: false, y: false } },
      },
      [data.x, ...order.map((i) => columns[i])],
      figure,
    );
    return plot;
  }

  const plots = [];
  for (const chart of data.charts) {
    const figure = document.getElementById(`chart-${chart.id}`);
    if (!figure) continue;
    const plot = draw(figure, chart);
    if (plot) plots.push([figure, plot]);
  }
  const fit = () => {
    for (const [figure, plot] of plots) {
      const width = Math.max(figure.clientWidth, 200);
      if (width !== plot.width) plot.setSize({ width, height: 220 });
    }
  };
  if (typeof ResizeObserver !== "undefined") new ResizeObserver(fit).observe(document.getElementById("charts"));
  else window.addEventListener("resize", fit);
})();
