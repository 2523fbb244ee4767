// charts.js — the Overview tab's charts, drawn as SVG with DOM calls (no
// library, nothing loaded from elsewhere, no inline style: colours come
// from style.css classes). Three shapes:
//   bars(container, {points, series, stacked, xLabel, yLabel, title})
//     one group of bars per point ({t, <series key>: number}), stacked or
//     side by side; one rect.bar.<series class> per non-zero value;
//   lines(container, {points, series, xLabel, yLabel, title})
//     one path.line.<series class> per series over the points;
// each with a y axis of round ticks, a few x labels and a legend.
//
// Exposes window.DojoCharts = { bars, lines }.
'use strict';

(() => {
  const NS = 'http://www.w3.org/2000/svg';
  const WIDTH = 640;
  const HEIGHT = 220;
  const PAD = { left: 48, right: 12, top: 12, bottom: 28 };
  const X_LABELS_MAX = 6;

  function svgEl(tag, attrs = {}, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** A round step for about 4 ticks up to max. */
  function niceMax(max) {
    if (max <= 0) return { top: 1, step: 1 };
    const raw = max / 4;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    return { top: Math.ceil(max / step) * step, step };
  }

  function frame(container, { title, yLabel }, yTop, yStep) {
    container.replaceChildren();
    const svg = svgEl('svg', {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      class: 'chart',
      role: 'img',
      'aria-label': title,
    });
    svg.append(svgEl('title', {}, title));
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const y = (v) => PAD.top + plotH - (v / yTop) * plotH;
    for (let v = 0; v <= yTop + 1e-9; v += yStep) {
      svg.append(svgEl('line', { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v), class: 'grid-line' }));
      svg.append(svgEl('text', { x: PAD.left - 6, y: y(v) + 4, class: 'tick', 'text-anchor': 'end' }, formatNumber(v)));
    }
    if (yLabel) svg.append(svgEl('text', { x: 4, y: PAD.top + 2, class: 'axis-label' }, yLabel));
    container.append(svg);
    return { svg, y, plotW: WIDTH - PAD.left - PAD.right };
  }

  function formatNumber(v) {
    if (Math.abs(v) >= 1e6) return `${(v / 1e6).toFixed(1).replace(/\.0$/, '')}M`;
    if (Math.abs(v) >= 1e3) return `${(v / 1e3).toFixed(1).replace(/\.0$/, '')}k`;
    return String(Math.round(v * 100) / 100);
  }

  function xLabels(svg, points, xOf, xLabel) {
    const every = Math.max(1, Math.ceil(points.length / X_LABELS_MAX));
    points.forEach((p, i) => {
      if (i % every !== 0 && i !== points.length - 1) return;
      svg.append(svgEl('text', { x: xOf(i), y: HEIGHT - 8, class: 'tick', 'text-anchor': 'middle' }, xLabel(p.t)));
    });
  }

  function legend(container, series) {
    const box = document.createElement('div');
    box.className = 'legend';
    for (const s of series) {
      const item = document.createElement('span');
      const swatch = document.createElement('span');
      swatch.className = `swatch ${s.cls}`;
      item.append(swatch, document.createTextNode(s.label));
      box.append(item);
    }
    container.append(box);
  }

  function bars(container, { points, series, stacked = false, xLabel, yLabel, title }) {
    const totals = points.map((p) =>
      stacked ? series.reduce((sum, s) => sum + (p[s.key] || 0), 0) : Math.max(0, ...series.map((s) => p[s.key] || 0)),
    );
    const { top, step } = niceMax(Math.max(0, ...totals));
    const { svg, y, plotW } = frame(container, { title, yLabel }, top, step);
    const slot = plotW / Math.max(points.length, 1);
    const barW = Math.max(1, slot * 0.8);
    const xOf = (i) => PAD.left + slot * i + slot / 2;
    points.forEach((p, i) => {
      let base = 0;
      series.forEach((s, k) => {
        const v = p[s.key] || 0;
        if (v <= 0) return;
        const w = stacked ? barW : barW / series.length;
        const x = stacked ? xOf(i) - barW / 2 : xOf(i) - barW / 2 + w * k;
        const y0 = stacked ? base : 0;
        const rect = svgEl('rect', {
          x,
          width: w,
          y: y(y0 + v),
          height: Math.max(0.5, y(y0) - y(y0 + v)),
          class: `bar ${s.cls}`,
          'data-series': s.key,
          'data-value': v,
        });
        rect.append(svgEl('title', {}, `${xLabel(p.t)} · ${s.label}: ${v}`));
        svg.append(rect);
        if (stacked) base += v;
      });
    });
    xLabels(svg, points, xOf, xLabel);
    legend(container, series);
  }

  function lines(container, { points, series, xLabel, yLabel, title }) {
    const max = Math.max(0, ...points.flatMap((p) => series.map((s) => p[s.key] || 0)));
    const { top, step } = niceMax(max);
    const { svg, y, plotW } = frame(container, { title, yLabel }, top, step);
    const xOf = (i) => PAD.left + (points.length > 1 ? (plotW * i) / (points.length - 1) : plotW / 2);
    for (const s of series) {
      const d = points.map((p, i) => `${i ? 'L' : 'M'}${xOf(i).toFixed(1)},${y(p[s.key] || 0).toFixed(1)}`).join(' ');
      const path = svgEl('path', { d, class: `line ${s.cls}`, 'data-series': s.key });
      path.append(svgEl('title', {}, s.label));
      svg.append(path);
    }
    xLabels(svg, points, xOf, xLabel);
    legend(container, series);
  }

  window.DojoCharts = { bars, lines };
})();
