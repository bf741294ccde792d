/* Draws every chart of a page: each <div data-figure="ID"> gets the plotly figure stored in
   the JSON <script id="ID"> the server rendered (json_script). No inline script: the page's
   Content Security Policy allows only our own static files. */
(function () {
  "use strict";
  function draw(element) {
    var source = document.getElementById(element.dataset.figure);
    if (!source || typeof Plotly === "undefined") return;
    var figure = JSON.parse(source.textContent);
    element.classList.add("chart-drawn");
    Plotly.newPlot(element, figure.data, figure.layout, { displaylogo: false, responsive: true });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-figure]").forEach(draw);
  });
})();
