(function () {
  "use strict";
  var svg = document.getElementById("timeline");
  if (!svg) { return; }
  var NS = "http://www.w3.org/2000/svg";
  var MIN = 60000, HOUR = 60 * MIN, DAY = 24 * HOUR;
  var STEPS = [MIN, 5 * MIN, 15 * MIN, 30 * MIN, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY,
               7 * DAY, 14 * DAY, 30 * DAY, 91 * DAY, 182 * DAY, 365 * DAY];
  var left = Number(svg.dataset.left), width = Number(svg.dataset.width), right = Number(svg.dataset.right);
  var T0 = Number(svg.dataset.t0), T1 = Number(svg.dataset.t1), t0 = T0, t1 = T1;
  var bottom = Number(svg.dataset.height), top = Number(svg.dataset.top);
  var marks = svg.querySelectorAll(".mark");
  var axis = document.getElementById("axis");
  var sel = document.getElementById("selection");
  var range = document.getElementById("timeline-range");

  function xOf(t) { return left + (t - t0) / Math.max(t1 - t0, 1) * (width - left - right); }
  function tOf(x) { return t0 + (x - left) / (width - left - right) * (t1 - t0); }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function iso(t) { return new Date(t).toISOString().slice(0, 16).replace("T", " "); }
  function label(t, step) {
    var d = new Date(t), ym = d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1);
    if (step >= 30 * DAY) { return ym; }
    if (step >= DAY) { return ym + "-" + pad(d.getUTCDate()); }
    return pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " + pad(d.getUTCHours()) + ":" +
      pad(d.getUTCMinutes());
  }
  function el(name, attrs, text) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) { node.textContent = text; }
    return node;
  }
  function draw() {
    var i, year = STEPS[STEPS.length - 1], step = Math.ceil((t1 - t0) / (8 * year)) * year;
    for (i = 0; i < marks.length; i++) {
      var t = Number(marks[i].dataset.t);
      marks[i].setAttribute("cx", xOf(t).toFixed(1));
      marks[i].setAttribute("visibility", t >= t0 && t <= t1 ? "visible" : "hidden");
    }
    while (axis.firstChild) { axis.removeChild(axis.firstChild); }
    for (i = 0; i < STEPS.length; i++) { if ((t1 - t0) / STEPS[i] <= 8) { step = STEPS[i]; break; } }
    for (var tick = Math.ceil(t0 / step) * step; tick <= t1; tick += step) {
      var x = xOf(tick).toFixed(1);
      axis.appendChild(el("line", {"class": "grid", x1: x, x2: x, y1: top - 6, y2: bottom}));
      axis.appendChild(el("text", {"class": "tick", x: x, y: top - 10}, label(tick, step)));
    }
    range.textContent = iso(t0) + " – " + iso(t1) + " UTC";
  }
  function zoom(a, b) {
    if (b - a < MIN) { var mid = (a + b) / 2; a = mid - MIN / 2; b = mid + MIN / 2; }
    t0 = Math.max(a, T0 - (T1 - T0)); t1 = Math.min(b, T1 + (T1 - T0)); draw();
  }
  function svgX(evt) {
    var pt = svg.createSVGPoint(); pt.x = evt.clientX; pt.y = evt.clientY;
    return pt.matrixTransform(svg.getScreenCTM().inverse()).x;
  }
  var start = null;
  svg.addEventListener("mousedown", function (evt) {
    var x = svgX(evt);
    if (x < left) { return; }
    start = x; sel.setAttribute("x", x); sel.setAttribute("width", 0); sel.setAttribute("visibility", "visible");
    evt.preventDefault();
  });
  svg.addEventListener("mousemove", function (evt) {
    if (start === null) { return; }
    var x = Math.max(left, Math.min(width - right, svgX(evt)));
    sel.setAttribute("x", Math.min(start, x)); sel.setAttribute("width", Math.abs(x - start));
  });
  window.addEventListener("mouseup", function (evt) {
    if (start === null) { return; }
    var x = Math.max(left, Math.min(width - right, svgX(evt)));
    sel.setAttribute("visibility", "hidden");
    if (Math.abs(x - start) > 4) { zoom(tOf(Math.min(start, x)), tOf(Math.max(start, x))); }
    start = null;
  });
  svg.addEventListener("wheel", function (evt) {
    var x = svgX(evt);
    if (x < left) { return; }
    evt.preventDefault();
    var at = tOf(x), f = evt.deltaY > 0 ? 1.5 : 1 / 1.5;
    zoom(at - (at - t0) * f, at + (t1 - at) * f);
  }, {passive: false});
  document.getElementById("zoom-reset").addEventListener("click", function () { zoom(T0, T1); });
  document.getElementById("zoom-out").addEventListener("click", function () {
    var span = t1 - t0; zoom(t0 - span / 2, t1 + span / 2);
  });
  document.getElementById("zoom-in").addEventListener("click", function () {
    var span = t1 - t0; zoom(t0 + span / 4, t1 - span / 4);
  });
  document.documentElement.classList.add("js");
  draw();
}());
