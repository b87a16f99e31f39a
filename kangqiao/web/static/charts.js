// Draws every chart of a page with Apache ECharts (served by the app from node_modules).
// A chart is a <div data-echart="ID"> whose option (plain JSON built on the server) is in
// <script type="application/json" id="ID">. Until ECharts draws, the box shows a text
// summary and the numbers stay in the table below it, so the page works without JS.
(function () {
  "use strict";
  if (!window.echarts) { return; }
  var charts = [];
  document.querySelectorAll("[data-echart]").forEach(function (box) {
    var spec = document.getElementById(box.getAttribute("data-echart"));
    if (!spec) { return; }
    var option = JSON.parse(spec.textContent);
    if (!option.series) { return; }  // nothing to draw: keep the text
    box.textContent = "";
    var chart = echarts.init(box, null, { renderer: "svg" });
    // "Ready" once ECharts has finished drawing (animations included): before that the
    // bars are still growing and a click at a bar's final place can miss it.
    chart.on("finished", function () { box.setAttribute("data-ready", "1"); });
    chart.setOption(option);
    // A bar, point or map dot that carries an href leads there (drill-down).
    chart.on("click", function (params) {
      var href = params.data && params.data.href;
      if (href) { window.location.href = href; }
    });
    charts.push(chart);
  });
  window.addEventListener("resize", function () {
    charts.forEach(function (c) { c.resize(); });
  });
  // A table row with data-href leads there as its link does (drill-down by row).
  document.querySelectorAll("tr[data-href]").forEach(function (row) {
    row.addEventListener("click", function (event) {
      if (event.target.closest("a")) { return; }
      window.location.href = row.getAttribute("data-href");
    });
  });
  // <select data-autosubmit> submits its form on change (the button stays for no-JS).
  document.querySelectorAll("select[data-autosubmit]").forEach(function (sel) {
    sel.addEventListener("change", function () { sel.form.submit(); });
  });
})();
