// edgeprom pages: a small time-series line chart on two canvases (data below, hover overlay above),
// so moving the pointer never redraws the data. Values sit on the query's step grid; a missing grid
// point breaks the line, as in Prometheus's graph.
'use strict';

const EPChart = (() => {
  const PALETTE = ['#1f77b4', '#e6522c', '#2ca02c', '#9467bd', '#d62728', '#17becf', '#bcbd22', '#8c564b',
    '#e377c2', '#7f7f7f', '#3b5bdb', '#f08c00', '#0ca678', '#ae3ec9', '#c92a2a', '#1098ad'];
  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 172800, 604800, 1209600, 2592000].map((s) => s * 1000);

  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888'; }

  function niceStep(range, count) {
    const raw = range / Math.max(count, 1);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
  }
  function niceBinaryStep(range, count) {
    // For bytes: steps that are powers of two times 1, 2, 5 of a binary unit read better.
    const raw = range / Math.max(count, 1);
    let unit = 1;
    while (raw / unit >= 512) unit *= 1024;
    return niceStep(raw * count / unit, count) * unit;
  }

  function pad2(x) { return String(x).padStart(2, '0'); }
  function timeLabel(t, stepMs, first) {
    const d = new Date(t);
    const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
    const md = `${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
    if (stepMs < 60000) return `${hm}:${pad2(d.getSeconds())}`;
    if (stepMs >= 86400000) return md;
    if (first || (d.getHours() === 0 && d.getMinutes() === 0)) return `${md} ${hm}`;
    return hm;
  }

  /**
   * Creates a chart in `container` (an element with a fixed height).
   * opts: {unit: ''|'bytes'|'seconds'|'ratio', stacked: bool, legend: element or null}
   */
  function create(container, opts) {
    const base = document.createElement('canvas');
    const over = document.createElement('canvas');
    base.setAttribute('role', 'img');
    over.setAttribute('aria-hidden', 'true');
    const tip = document.createElement('div');
    tip.className = 'tooltip';
    container.replaceChildren(base, over, tip);
    const st = {
      series: [], start: 0, end: 0, step: 1, n: 0, unit: opts.unit || '', stacked: !!opts.stacked,
      hidden: new Set(), layout: null, stackedVals: null, hoverK: -1, w: 0, h: 0, dpr: 1,
    };

    function setData(series, range) {
      st.start = range.start; st.end = range.end; st.step = Math.max(range.step, 1);
      st.n = Math.floor((st.end - st.start) / st.step + 1e-9) + 1;
      st.series = series.map((s, i) => {
        const grid = new Float64Array(st.n).fill(NaN);
        const ts = s.ts, vs = s.vs;
        for (let j = 0; j < ts.length; j++) {
          const k = Math.round((ts[j] - st.start) / st.step);
          if (k >= 0 && k < st.n) grid[k] = vs[j];
        }
        return { name: s.name, color: PALETTE[i % PALETTE.length], grid };
      });
      st.hidden.clear();
      base.setAttribute('aria-label', `Graph of ${series.length} series`);
      renderLegend();
      draw();
    }
    function setStacked(v) { st.stacked = !!v; draw(); }
    function setUnit(u) { st.unit = u || ''; draw(); }

    function visible() { return st.series.filter((s, i) => !st.hidden.has(i)); }

    function computeStack() {
      const vis = visible();
      if (!st.stacked) { st.stackedVals = null; return; }
      const acc = new Float64Array(st.n).fill(0);
      st.stackedVals = vis.map((s) => {
        const lo = Float64Array.from(acc);
        const hi = new Float64Array(st.n);
        for (let k = 0; k < st.n; k++) {
          const v = s.grid[k];
          if (Number.isFinite(v)) { acc[k] += v; hi[k] = acc[k]; } else hi[k] = NaN;
        }
        return { s, lo, hi };
      });
    }

    function yRange() {
      let min = Infinity, max = -Infinity;
      const take = (arr) => { for (let k = 0; k < arr.length; k++) { const v = arr[k]; if (Number.isFinite(v)) { if (v < min) min = v; if (v > max) max = v; } } };
      if (st.stackedVals) { for (const x of st.stackedVals) { take(x.hi); take(x.lo); } } else for (const s of visible()) take(s.grid);
      if (min === Infinity) { min = 0; max = 1; }
      if (min === max) { const d = Math.abs(min) * 0.1 || 1; min -= d; max += d; }
      return [min, max];
    }

    function fmt(v) { return EP.formatUnit(v, st.unit); }

    function draw() {
      const rect = container.getBoundingClientRect();
      const dpr = window.devicePixelRatio || 1;
      const w = Math.max(Math.floor(rect.width), 50), h = Math.max(Math.floor(rect.height), 50);
      st.w = w; st.h = h; st.dpr = dpr;
      for (const c of [base, over]) {
        c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
        c.style.width = w + 'px'; c.style.height = h + 'px';
      }
      const ctx = base.getContext('2d');
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, w, h);
      computeStack();
      const fg = css('--fg'), muted = css('--muted'), grid = css('--grid');
      ctx.font = '11px system-ui, sans-serif';
      let [ymin, ymax] = yRange();
      const rows = Math.max(2, Math.floor((h - 30) / 45));
      const ystep = st.unit === 'bytes' ? niceBinaryStep(ymax - ymin, rows) : niceStep(ymax - ymin, rows);
      ymin = Math.floor(ymin / ystep) * ystep; ymax = Math.ceil(ymax / ystep) * ystep;
      if (ymin === ymax) ymax = ymin + ystep;
      const yticks = [];
      for (let v = ymin; v <= ymax + ystep * 1e-6; v += ystep) yticks.push(Math.abs(v) < ystep * 1e-9 ? 0 : v);
      const labels = yticks.map(fmt);
      const left = Math.ceil(Math.max(...labels.map((l) => ctx.measureText(l).width))) + 10;
      const top = 8, bottom = h - 22, right = w - 10;
      const L = { left, top, bottom, right, ymin, ymax };
      L.x = (t) => left + (t - st.start) / Math.max(st.end - st.start, 1) * (right - left);
      L.y = (v) => bottom - (v - ymin) / (ymax - ymin) * (bottom - top);
      st.layout = L;
      // grid + y labels
      ctx.strokeStyle = grid; ctx.lineWidth = 1; ctx.fillStyle = muted; ctx.textAlign = 'right'; ctx.textBaseline = 'middle';
      yticks.forEach((v, i) => {
        const y = Math.round(L.y(v)) + 0.5;
        ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(right, y); ctx.stroke();
        ctx.fillText(labels[i], left - 5, y);
      });
      // time ticks
      const span = Math.max(st.end - st.start, 1);
      const want = Math.max(2, Math.floor((right - left) / 95));
      const tstep = TIME_STEPS.find((s) => span / s <= want) || TIME_STEPS[TIME_STEPS.length - 1];
      const tz = new Date(st.start).getTimezoneOffset() * 60000;
      let t0 = Math.ceil((st.start - (tstep >= 3600000 ? -tz : 0)) / tstep) * tstep + (tstep >= 3600000 ? -tz : 0);
      if (t0 < st.start) t0 += tstep;
      ctx.textAlign = 'center'; ctx.textBaseline = 'top';
      let first = true;
      for (let t = t0; t <= st.end; t += tstep) {
        const x = Math.round(L.x(t)) + 0.5;
        ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, bottom); ctx.stroke();
        ctx.fillText(timeLabel(t, tstep, first), Math.min(Math.max(x, left + 20), right - 20), bottom + 5);
        first = false;
      }
      ctx.strokeStyle = muted;
      ctx.beginPath(); ctx.moveTo(left + 0.5, top); ctx.lineTo(left + 0.5, bottom + 0.5); ctx.lineTo(right, bottom + 0.5); ctx.stroke();
      // data
      ctx.save();
      ctx.beginPath(); ctx.rect(left, top - 1, right - left, bottom - top + 2); ctx.clip();
      ctx.lineWidth = 1.5; ctx.lineJoin = 'round';
      const xk = (k) => L.x(st.start + k * st.step);
      if (st.stackedVals) {
        for (const { s, lo, hi } of st.stackedVals) {
          ctx.fillStyle = s.color; ctx.strokeStyle = s.color;
          let k = 0;
          while (k < st.n) {
            while (k < st.n && !Number.isFinite(hi[k])) k++;
            const a = k;
            while (k < st.n && Number.isFinite(hi[k])) k++;
            if (k > a) {
              ctx.beginPath();
              for (let j = a; j < k; j++) ctx[j === a ? 'moveTo' : 'lineTo'](xk(j), L.y(hi[j]));
              ctx.globalAlpha = 1; ctx.stroke();
              for (let j = k - 1; j >= a; j--) ctx.lineTo(xk(j), L.y(lo[j]));
              ctx.closePath(); ctx.globalAlpha = 0.35; ctx.fill(); ctx.globalAlpha = 1;
            }
          }
        }
      } else {
        for (const s of visible()) {
          ctx.strokeStyle = s.color; ctx.fillStyle = s.color;
          ctx.beginPath();
          let pen = false, prevAlone = false, lastK = -2;
          for (let k = 0; k < st.n; k++) {
            const v = s.grid[k];
            if (!Number.isFinite(v)) { pen = false; continue; }
            const x = xk(k), y = L.y(v);
            if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
            // A lone point (neighbours missing) gets a dot so it is not invisible.
            prevAlone = !pen; pen = true; lastK = k;
            if (prevAlone && !Number.isFinite(s.grid[k + 1])) ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
          }
          void lastK;
          ctx.stroke();
        }
      }
      ctx.restore();
      if (st.hoverK >= 0) drawHover(st.hoverK, null);
      else over.getContext('2d').clearRect(0, 0, over.width, over.height);
    }

    function valueAt(s, k) {
      if (st.stackedVals) { const x = st.stackedVals.find((z) => z.s === s); return x ? x.hi[k] : NaN; }
      return s.grid[k];
    }

    function drawHover(k, py) {
      const L = st.layout; if (!L) return;
      const ctx = over.getContext('2d');
      ctx.setTransform(st.dpr, 0, 0, st.dpr, 0, 0);
      ctx.clearRect(0, 0, st.w, st.h);
      if (k < 0 || k >= st.n) { tip.style.display = 'none'; return; }
      const t = st.start + k * st.step, x = L.x(t);
      ctx.strokeStyle = css('--muted'); ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(Math.round(x) + 0.5, L.top); ctx.lineTo(Math.round(x) + 0.5, L.bottom); ctx.stroke();
      const rows = [];
      for (const s of visible()) {
        const v = s.grid[k];
        if (!Number.isFinite(v) && !Number.isNaN(v)) { rows.push({ s, v, y: v > 0 ? L.top : L.bottom }); continue; }
        if (Number.isNaN(v)) continue;
        const y = L.y(valueAt(s, k));
        rows.push({ s, v, y });
        ctx.fillStyle = s.color; ctx.beginPath(); ctx.arc(x, y, 3, 0, Math.PI * 2); ctx.fill();
      }
      if (!rows.length) { tip.style.display = 'none'; return; }
      let nearest = null;
      if (py !== null) for (const r of rows) if (!nearest || Math.abs(r.y - py) < Math.abs(nearest.y - py)) nearest = r;
      rows.sort((a, b) => b.v - a.v);
      const MAX = 10;
      let shown = rows.slice(0, MAX);
      if (nearest && !shown.includes(nearest)) shown = shown.slice(0, MAX - 1).concat([nearest]);
      const items = shown.map((r) => EP.el('div', { class: 's', style: r === nearest ? { fontWeight: '700' } : null },
        EP.el('span', { class: 'swatch', style: { background: r.s.color } }), EP.el('span', null, fmt(r.v)), EP.el('span', { class: 'muted' }, r.s.name)));
      tip.replaceChildren(EP.el('div', { class: 't' }, EP.formatTime(t)), ...items,
        rows.length > shown.length ? EP.el('div', { class: 'muted' }, `… ${rows.length - shown.length} more`) : '');
      tip.style.display = 'block';
      const tw = tip.offsetWidth, th = tip.offsetHeight;
      let tx = x + 12; if (tx + tw > st.w) tx = Math.max(0, x - tw - 12);
      let ty = (py === null ? L.top : py) - th / 2; ty = Math.max(0, Math.min(ty, st.h - th));
      tip.style.left = tx + 'px'; tip.style.top = ty + 'px';
    }

    function kAt(px) {
      const L = st.layout; if (!L || st.n === 0) return -1;
      if (px < L.left - 5 || px > L.right + 5) return -1;
      const t = st.start + (px - L.left) / Math.max(L.right - L.left, 1) * (st.end - st.start);
      return Math.max(0, Math.min(st.n - 1, Math.round((t - st.start) / st.step)));
    }
    over.addEventListener('pointermove', (e) => {
      const r = over.getBoundingClientRect();
      st.hoverK = kAt(e.clientX - r.left);
      drawHover(st.hoverK, e.clientY - r.top);
    });
    over.addEventListener('pointerleave', () => { st.hoverK = -1; drawHover(-1, null); });

    function renderLegend() {
      const ul = opts.legend; if (!ul) return;
      ul.replaceChildren();
      st.series.forEach((s, i) => {
        const li = EP.el('li', { tabindex: '0', role: 'button', title: 'Click: show only this series; Ctrl/Cmd-click: toggle it' },
          EP.el('span', { class: 'swatch', style: { background: s.color } }), EP.el('span', null, s.name));
        const act = (e) => {
          if (e.ctrlKey || e.metaKey) { if (st.hidden.has(i)) st.hidden.delete(i); else st.hidden.add(i); } else {
            const onlyThis = st.hidden.size === st.series.length - 1 && !st.hidden.has(i);
            st.hidden.clear();
            if (!onlyThis) st.series.forEach((_, j) => { if (j !== i) st.hidden.add(j); });
          }
          [...ul.children].forEach((c, j) => c.classList.toggle('off', st.hidden.has(j)));
          draw();
        };
        li.addEventListener('click', act);
        li.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); act(e); } });
        ul.appendChild(li);
      });
    }

    const ro = new ResizeObserver(() => draw());
    ro.observe(container);
    const mq = window.matchMedia('(prefers-color-scheme: dark)');
    const onTheme = () => draw();
    if (mq.addEventListener) mq.addEventListener('change', onTheme);

    function destroy() { ro.disconnect(); if (mq.removeEventListener) mq.removeEventListener('change', onTheme); }

    return { setData, setStacked, setUnit, draw, destroy, canvas: base };
  }

  return { create };
})();
