// edgeprom /graph: expression panels with completion, history, Table and Graph tabs. The state of
// every panel lives in the URL with Prometheus's parameter names (g0.expr, g0.tab, g0.range_input,
// g0.end_input, g0.step_input, g0.stacked), so links shared from Prometheus open here too.
'use strict';

(() => {
  const { el, api } = EP;
  const FUNCTIONS = ('abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp ' +
    'clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month deg delta deriv ' +
    'exp floor histogram_avg histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar ' +
    'histogram_sum holt_winters hour idelta increase irate label_join label_replace last_over_time ln log10 log2 ' +
    'mad_over_time max_over_time min_over_time minute month pi predict_linear present_over_time quantile_over_time ' +
    'rad rate resets round scalar sgn sin sinh sort sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time ' +
    'stdvar_over_time sum_over_time tan tanh time timestamp vector year').split(' ');
  const AGGREGATIONS = 'avg bottomk count count_values group max min quantile stddev stdvar sum topk limitk limit_ratio'.split(' ');
  const KEYWORDS = 'by without on ignoring group_left group_right bool offset and or unless'.split(' ');
  const RANGE_STEPS = ['1m', '5m', '15m', '30m', '1h', '2h', '6h', '12h', '1d', '2d', '1w', '2w', '4w', '8w', '26w', '52w'];
  const HISTORY_KEY = 'edgeprom.history';
  const HISTORY_MAX = 50;
  const TABLE_MAX_ROWS = 10000;
  /** Prometheus refuses more than 11,000 points per series in a range query. */
  const MAX_POINTS = 11000;

  // ---- durations and times ----
  const DUR_UNITS = { y: 31536000e3, w: 604800e3, d: 86400e3, h: 3600e3, m: 60e3, s: 1e3, ms: 1 };
  /** "1h30m" -> ms, or null if invalid (Prometheus's duration syntax). */
  function parseDuration(s) {
    s = String(s || '').trim();
    if (!s) return null;
    if (/^\d+(\.\d+)?$/.test(s)) return parseFloat(s) * 1000;
    const re = /(\d+)(ms|y|w|d|h|m|s)/y;
    let total = 0, m, pos = 0;
    while (pos < s.length) {
      re.lastIndex = pos;
      m = re.exec(s);
      if (!m) return null;
      total += parseInt(m[1], 10) * DUR_UNITS[m[2]];
      pos = re.lastIndex;
    }
    return total > 0 ? total : null;
  }
  function formatDuration(ms) {
    if (!ms || ms < 0) return '0s';
    const parts = [];
    for (const [u, f] of Object.entries(DUR_UNITS)) {
      if (ms >= f) { const n = Math.floor(ms / f); parts.push(n + u); ms -= n * f; }
    }
    return parts.join('') || '0s';
  }
  const pad = (x) => String(x).padStart(2, '0');
  /** ms -> "YYYY-MM-DD HH:MM:SS" in UTC, Prometheus's end_input format. */
  function toUrlTime(ms) {
    const d = new Date(ms);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  }
  function fromUrlTime(s) {
    if (!s) return null;
    const m = /^(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d)(?::(\d\d))?/.exec(s);
    if (!m) { const t = Date.parse(s); return Number.isNaN(t) ? null : t; }
    return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  }
  /** ms -> value for <input type=datetime-local> (local time). */
  function toLocalInput(ms) {
    const d = new Date(ms);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  // ---- history ----
  function loadHistory() {
    try { const h = JSON.parse(localStorage.getItem(HISTORY_KEY) || '[]'); return Array.isArray(h) ? h.filter((x) => typeof x === 'string') : []; } catch (_) { return []; }
  }
  function pushHistory(expr) {
    const h = loadHistory().filter((x) => x !== expr);
    h.unshift(expr);
    try { localStorage.setItem(HISTORY_KEY, JSON.stringify(h.slice(0, HISTORY_MAX))); } catch (_) { /* storage full or disabled */ }
  }

  // ---- metadata for completion, fetched lazily and shared by panels ----
  const meta = {
    metrics: null, metricsP: null, help: {}, labelNames: new Map(), labelValues: new Map(),
    loadMetrics() {
      if (!this.metricsP) {
        this.metricsP = api('label/__name__/values').then((v) => { this.metrics = Array.isArray(v) ? v : []; return this.metrics; })
          .catch(() => { this.metrics = []; this.metricsP = null; return []; });
        api('metadata').then((m) => {
          if (m && typeof m === 'object') for (const [k, v] of Object.entries(m)) if (Array.isArray(v) && v[0]) this.help[k] = v[0];
        }).catch(() => { /* metadata is optional */ });
      }
      return this.metricsP;
    },
    labelsFor(metric) {
      const key = metric || '';
      if (!this.labelNames.has(key)) {
        this.labelNames.set(key, api('labels', metric ? { 'match[]': [metric] } : {}).then((v) => (Array.isArray(v) ? v : []))
          .catch(() => { this.labelNames.delete(key); return []; }));
      }
      return this.labelNames.get(key);
    },
    valuesFor(label, metric) {
      const key = label + '\u0000' + (metric || '');
      if (!this.labelValues.has(key)) {
        this.labelValues.set(key, api('label/' + encodeURIComponent(label) + '/values', metric ? { 'match[]': [metric] } : {})
          .then((v) => (Array.isArray(v) ? v : [])).catch(() => { this.labelValues.delete(key); return []; }));
      }
      return this.labelValues.get(key);
    },
  };

  /** Finds what the caret is in: {kind, prefix, from, metric?, label?}. */
  function context(text, caret) {
    const before = text.slice(0, caret);
    const open = before.lastIndexOf('{'), close = before.lastIndexOf('}');
    if (open > close) {
      const sel = before.slice(open + 1);
      const mm = /([a-zA-Z_:][a-zA-Z0-9_:]*)\s*$/.exec(before.slice(0, open));
      const metric = mm ? mm[1] : '';
      // Inside a quoted value: label="pre|
      const q = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)$/.exec(sel);
      if (q) return { kind: 'value', label: q[1], metric, prefix: q[3], from: caret - q[3].length };
      const n = /(?:^|[,{\s])([a-zA-Z_][a-zA-Z0-9_]*)?$/.exec(sel);
      if (n && !/(=~|!~|!=|=)\s*$/.test(sel)) {
        const p = n[1] || '';
        return { kind: 'label', metric, prefix: p, from: caret - p.length };
      }
      return null;
    }
    const g = /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)$/.exec(before);
    if (g) {
      const p = (/([a-zA-Z_][a-zA-Z0-9_]*)$/.exec(g[2]) || ['', ''])[1];
      const mm = /([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{[]/.exec(before) || /\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(before);
      return { kind: 'label', metric: mm ? mm[1] : '', prefix: p, from: caret - p.length };
    }
    if (/\[[^\]]*$/.test(before)) return null; // a range duration
    if (/"[^"]*$/.test(before.replace(/\\./g, ''))) return null; // a string literal
    const w = /([a-zA-Z_:][a-zA-Z0-9_:]*)$/.exec(before);
    const p = w ? w[1] : '';
    return { kind: 'metric', prefix: p, from: caret - p.length };
  }

  function rank(list, prefix, kind, limit) {
    const pl = prefix.toLowerCase();
    const starts = [], contains = [];
    for (const x of list) {
      const xl = x.toLowerCase();
      if (xl === pl && kind !== 'history') continue;
      if (xl.startsWith(pl)) starts.push(x); else if (pl && xl.includes(pl)) contains.push(x);
      if (starts.length >= limit) break;
    }
    return starts.concat(contains).slice(0, limit).map((text) => ({ text, kind }));
  }

  // ---- panels ----
  let panelSeq = 0;
  const panels = [];

  function defaultState() { return { expr: '', tab: 'table', range: 3600e3, end: null, step: null, stacked: false, unit: 'auto' }; }

  function readUrl() {
    const q = new URLSearchParams(location.search);
    const out = [];
    for (let i = 0; i < 50; i++) {
      const p = `g${i}.`;
      if (![...q.keys()].some((k) => k.startsWith(p))) continue;
      const s = defaultState();
      s.expr = q.get(p + 'expr') || '';
      s.tab = q.get(p + 'tab') === '0' ? 'graph' : 'table';
      s.range = parseDuration(q.get(p + 'range_input')) || s.range;
      s.end = fromUrlTime(q.get(p + 'end_input'));
      const step = parseFloat(q.get(p + 'step_input'));
      s.step = step > 0 ? step * 1000 : null;
      s.stacked = q.get(p + 'stacked') === '1';
      s.unit = q.get(p + 'unit') || 'auto';
      out.push(s);
    }
    return out;
  }
  function writeUrl() {
    const q = new URLSearchParams();
    panels.forEach((p, i) => {
      const s = p.state;
      q.set(`g${i}.expr`, s.expr);
      q.set(`g${i}.tab`, s.tab === 'graph' ? '0' : '1');
      q.set(`g${i}.stacked`, s.stacked ? '1' : '0');
      q.set(`g${i}.range_input`, formatDuration(s.range));
      if (s.end !== null) q.set(`g${i}.end_input`, toUrlTime(s.end));
      if (s.step !== null) q.set(`g${i}.step_input`, String(s.step / 1000));
      if (s.unit !== 'auto') q.set(`g${i}.unit`, s.unit);
    });
    history.replaceState(null, '', '?' + q.toString());
  }

  function createPanel(state) {
    const id = panelSeq++;
    const p = { id, state, abort: null, chart: null, lastRun: {} };
    const listId = `cmp${id}`;
    const ta = el('textarea', {
      class: 'expr', rows: 1, spellcheck: 'false', autocomplete: 'off', autocapitalize: 'off',
      placeholder: 'Expression (Enter to execute, Shift+Enter for a new line, Ctrl+Space to complete)',
      'aria-label': 'Expression', role: 'combobox', 'aria-autocomplete': 'list', 'aria-expanded': 'false', 'aria-controls': listId,
    });
    ta.value = state.expr;
    const list = el('ul', { class: 'completions', id: listId, role: 'listbox', hidden: true });
    const execBtn = el('button', { class: 'primary', type: 'button', title: 'Execute (Enter)' }, 'Execute');
    const removeBtn = el('button', { type: 'button', title: 'Remove this panel', 'aria-label': 'Remove panel' }, '✕');
    const tabTable = el('button', { type: 'button', role: 'tab', 'aria-selected': 'false' }, 'Table');
    const tabGraph = el('button', { type: 'button', role: 'tab', 'aria-selected': 'false' }, 'Graph');
    const stats = el('span', { class: 'stats', 'aria-live': 'polite' });
    const body = el('div', { class: 'tabbody', role: 'tabpanel' });
    const root = el('section', { class: 'panel', 'aria-label': `Panel ${id + 1}` },
      el('div', { class: 'ptop' }, el('div', { class: 'row' }, el('div', { class: 'exprwrap' }, ta, list), execBtn, removeBtn)),
      el('div', { class: 'tabs', role: 'tablist' }, tabTable, tabGraph, el('span', { class: 'spacer' }), stats),
      body);
    p.root = root;

    // ---- graph controls (built once, kept across runs) ----
    const rangeIn = el('input', { class: 'range', type: 'text', 'aria-label': 'Range', title: 'Range, e.g. 1h, 30m, 2d' });
    const endIn = el('input', { class: 'end', type: 'datetime-local', step: '1', 'aria-label': 'End time (empty: now)' });
    const stepIn = el('input', { class: 'step', type: 'text', 'aria-label': 'Resolution in seconds', placeholder: 'Res. (s)' });
    const stackedIn = el('input', { type: 'checkbox' });
    const unitSel = el('select', { 'aria-label': 'Unit' }, [['auto', 'Unit: auto'], ['none', 'Plain'], ['bytes', 'Bytes'], ['seconds', 'Seconds'], ['ratio', 'Percent']]
      .map(([v, t]) => el('option', { value: v }, t)));
    const btn = (text, title, fn) => el('button', { type: 'button', class: 'small', title, 'aria-label': title, onclick: fn }, text);
    const controls = el('div', { class: 'controls' },
      btn('−', 'Shorter range', () => { const i = RANGE_STEPS.findIndex((r) => parseDuration(r) >= state.range); state.range = parseDuration(RANGE_STEPS[Math.max(0, (i < 0 ? RANGE_STEPS.length : i) - 1)]); syncControls(); run(); }),
      rangeIn,
      btn('+', 'Longer range', () => { const i = RANGE_STEPS.findIndex((r) => parseDuration(r) > state.range); state.range = parseDuration(RANGE_STEPS[i < 0 ? RANGE_STEPS.length - 1 : i]); syncControls(); run(); }),
      btn('«', 'Earlier', () => { state.end = (state.end === null ? Date.now() : state.end) - state.range / 2; syncControls(); run(); }),
      endIn,
      btn('»', 'Later', () => { const e = (state.end === null ? Date.now() : state.end) + state.range / 2; state.end = e >= Date.now() ? null : e; syncControls(); run(); }),
      btn('Now', 'End at now', () => { state.end = null; syncControls(); run(); }),
      stepIn, unitSel,
      el('label', null, stackedIn, ' Stacked'));
    const chartBox = el('div', { class: 'chart' });
    const legend = el('ul', { class: 'legend', 'aria-label': 'Legend' });
    const graphPane = el('div', null, controls, chartBox, legend);
    const evalIn = el('input', { class: 'end', type: 'datetime-local', step: '1', 'aria-label': 'Evaluation time (empty: now)' });
    const tableResult = el('div');
    const tablePane = el('div', null, el('div', { class: 'controls' },
      el('span', { class: 'muted' }, 'Evaluation time'), evalIn,
      btn('Now', 'Evaluate at now', () => { state.end = null; syncControls(); run(); })), tableResult);

    function syncControls() {
      rangeIn.value = formatDuration(state.range);
      endIn.value = state.end === null ? '' : toLocalInput(state.end);
      evalIn.value = endIn.value;
      stepIn.value = state.step === null ? '' : String(state.step / 1000);
      stackedIn.checked = state.stacked;
      unitSel.value = state.unit;
    }
    rangeIn.addEventListener('change', () => { const d = parseDuration(rangeIn.value); if (d) state.range = d; syncControls(); run(); });
    rangeIn.addEventListener('keydown', (e) => { if (e.key === 'Enter') rangeIn.dispatchEvent(new Event('change')); });
    for (const input of [endIn, evalIn]) {
      input.addEventListener('change', () => { const t = input.value ? new Date(input.value).getTime() : NaN; state.end = Number.isNaN(t) ? null : t; syncControls(); run(); });
    }
    stepIn.addEventListener('change', () => { const v = parseFloat(stepIn.value); state.step = v > 0 ? v * 1000 : null; syncControls(); run(); });
    stackedIn.addEventListener('change', () => { state.stacked = stackedIn.checked; if (p.chart) p.chart.setStacked(state.stacked); writeUrl(); });
    unitSel.addEventListener('change', () => { state.unit = unitSel.value; if (p.chart) p.chart.setUnit(unitFor()); writeUrl(); });
    syncControls();

    function unitFor() {
      if (state.unit === 'none') return '';
      if (state.unit !== 'auto') return state.unit;
      const names = (state.expr.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) || []).filter((n) => !FUNCTIONS.includes(n) && !AGGREGATIONS.includes(n) && !KEYWORDS.includes(n));
      const units = new Set(names.map(EP.unitOf).filter(Boolean));
      return units.size === 1 ? [...units][0] : '';
    }

    function selectTab(tab) {
      state.tab = tab;
      tabTable.setAttribute('aria-selected', String(tab === 'table'));
      tabGraph.setAttribute('aria-selected', String(tab === 'graph'));
      body.replaceChildren(tab === 'graph' ? graphPane : tablePane);
      writeUrl();
      if (state.expr.trim()) run(); else if (tab === 'table') tableResult.replaceChildren(el('p', { class: 'muted' }, 'No expression yet: type one above.'));
      else { stats.textContent = ''; ensureChart().setData([], graphRange()); }
    }
    tabTable.addEventListener('click', () => selectTab('table'));
    tabGraph.addEventListener('click', () => selectTab('graph'));
    for (const [t, other] of [[tabTable, tabGraph], [tabGraph, tabTable]]) {
      t.addEventListener('keydown', (e) => { if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') { other.focus(); other.click(); } });
    }

    function ensureChart() {
      if (!p.chart) p.chart = EPChart.create(chartBox, { unit: unitFor(), stacked: state.stacked, legend });
      return p.chart;
    }

    function graphRange() {
      const end = state.end === null ? Date.now() : state.end;
      const start = end - state.range;
      let step = state.step;
      if (step === null) step = Math.max(Math.floor(state.range / 250 / 1000), 1) * 1000;
      if (state.range / step > MAX_POINTS) step = Math.ceil(state.range / MAX_POINTS / 1000) * 1000;
      // Align to the step, as Grafana does, so refreshes reuse the same grid.
      const s = Math.floor(start / step) * step, e = Math.floor(end / step) * step;
      return { start: s, end: e, step };
    }

    async function run() {
      const expr = ta.value.trim();
      state.expr = ta.value;
      writeUrl();
      if (!expr) { selectTabContentEmpty(); return; }
      pushHistory(expr);
      if (p.abort) p.abort.abort();
      const ctrl = new AbortController();
      p.abort = ctrl;
      stats.textContent = 'Loading…';
      const t0 = performance.now();
      try {
        if (state.tab === 'graph') {
          const r = graphRange();
          const chart = ensureChart();
          chart.setUnit(unitFor());
          chart.setStacked(state.stacked);
          const data = await api('query_range', { query: expr, start: r.start / 1000, end: r.end / 1000, step: r.step / 1000 }, { signal: ctrl.signal });
          if (ctrl.signal.aborted) return;
          const series = toSeries(data);
          chart.setData(series, r);
          const points = series.reduce((a, s) => a + s.ts.length, 0);
          stats.textContent = `Load time: ${Math.round(performance.now() - t0)} ms · Resolution: ${r.step / 1000}s · Result series: ${series.length} · Points: ${points}`;
          showWarnings(graphPane, data);
          if (!series.length) legend.replaceChildren(el('li', { class: 'muted' }, 'Empty query result'));
        } else {
          const time = state.end === null ? undefined : state.end / 1000;
          const data = await api('query', { query: expr, time }, { signal: ctrl.signal });
          if (ctrl.signal.aborted) return;
          renderTable(data);
          stats.textContent = `Load time: ${Math.round(performance.now() - t0)} ms · Result series: ${resultCount(data)}`;
        }
      } catch (e) {
        if (e && e.name === 'AbortError') return;
        stats.textContent = '';
        const box = EP.errorBox(e);
        if (state.tab === 'graph') {
          ensureChart().setData([], graphRange());
          legend.replaceChildren(el('li', null, box));
        } else tableResult.replaceChildren(box);
      }
    }
    function selectTabContentEmpty() {
      stats.textContent = '';
      if (state.tab === 'table') tableResult.replaceChildren(el('p', { class: 'muted' }, 'No expression yet: type one above.'));
      else { ensureChart().setData([], graphRange()); legend.replaceChildren(); }
    }
    function showWarnings(where, data) {
      const old = where.querySelector(':scope > .warning');
      if (old) old.remove();
      const w = data && data.__warnings;
      if (w && w.length) where.prepend(el('div', { class: 'warning' }, 'Warnings: ' + w.join('; ')));
    }

    function resultCount(data) {
      if (!data) return 0;
      if (Array.isArray(data.result)) return data.result.length;
      return data.result === undefined ? 0 : 1;
    }

    function renderTable(data) {
      const type = data && data.resultType;
      const res = data && data.result;
      const nodes = [];
      if (data && data.__warnings && data.__warnings.length) nodes.push(el('div', { class: 'warning' }, 'Warnings: ' + data.__warnings.join('; ')));
      if (type === 'scalar' || type === 'string') {
        nodes.push(EP.table(['Type', 'Value'], [[type, Array.isArray(res) ? String(res[1]) : '']]));
      } else if ((type === 'vector' || type === 'matrix') && Array.isArray(res)) {
        if (!res.length) nodes.push(el('p', { class: 'muted' }, 'Empty query result'));
        else {
          const rows = res.slice(0, TABLE_MAX_ROWS).map((s) => {
            let val;
            if (type === 'vector') {
              const v = s.value || (s.histogram ? [s.histogram[0], 'histogram'] : ['', '']);
              val = String(v[1]);
            } else {
              const vals = (s.values || []).map((v) => `${v[1]} @${v[0]}`);
              val = el('div', { class: 'mono' }, vals.slice(0, 1000).join('\n'));
              val.style.whiteSpace = 'pre';
            }
            return [{ v: el('span', { class: 'mono' }, EP.seriesName(s.metric)), class: 'labels' }, { v: val, class: 'num' }];
          });
          nodes.push(EP.table(['Series', { v: 'Value', class: 'num' }], rows, { caption: 'Query result' }));
          if (res.length > TABLE_MAX_ROWS) nodes.push(el('p', { class: 'muted' }, `Showing ${TABLE_MAX_ROWS} of ${res.length} series.`));
        }
      } else {
        nodes.push(el('div', { class: 'error' }, 'Unexpected response: resultType ' + JSON.stringify(type)));
      }
      tableResult.replaceChildren(...nodes);
    }

    function toSeries(data) {
      const res = data && Array.isArray(data.result) ? data.result : [];
      return res.map((s) => {
        const vals = Array.isArray(s.values) ? s.values : [];
        const ts = new Float64Array(vals.length), vs = new Float64Array(vals.length);
        for (let i = 0; i < vals.length; i++) { ts[i] = vals[i][0] * 1000; vs[i] = parseFloat(vals[i][1]); }
        return { name: EP.seriesName(s.metric), ts, vs };
      });
    }

    // ---- completion ----
    let items = [], sel = -1, ctxNow = null, reqSeq = 0;
    function closeList() { list.hidden = true; ta.setAttribute('aria-expanded', 'false'); ta.removeAttribute('aria-activedescendant'); items = []; sel = -1; }
    function showList() {
      list.replaceChildren(...items.map((it, i) => {
        const li = el('li', { id: `${listId}-${i}`, role: 'option', 'aria-selected': String(i === sel) },
          el('span', null, it.text), el('span', { class: 'kind' }, it.kind));
        li.addEventListener('mousedown', (e) => { e.preventDefault(); sel = i; accept(); });
        return li;
      }));
      list.hidden = items.length === 0;
      ta.setAttribute('aria-expanded', String(!list.hidden));
      if (sel >= 0) { ta.setAttribute('aria-activedescendant', `${listId}-${sel}`); const li = list.children[sel]; if (li) li.scrollIntoView({ block: 'nearest' }); }
    }
    async function complete(force) {
      const seq = ++reqSeq;
      const c = context(ta.value, ta.selectionStart);
      ctxNow = c;
      if (!c) { closeList(); return; }
      let out = [];
      if (c.kind === 'metric') {
        if (!ta.value.trim()) out = rank(loadHistory(), '', 'history', 15);
        else if (c.prefix || force) {
          const metrics = meta.metrics || await meta.loadMetrics();
          out = rank(loadHistory().filter((h) => h.startsWith(ta.value.trim()) && h !== ta.value.trim()), '', 'history', 3)
            .map((x) => Object.assign(x, { whole: true }))
            .concat(rank(metrics, c.prefix, 'metric', 40), rank(FUNCTIONS, c.prefix, 'function', 15),
              rank(AGGREGATIONS, c.prefix, 'aggregation', 10), rank(KEYWORDS, c.prefix, 'keyword', 5));
        }
      } else if (c.kind === 'label') {
        out = rank(await meta.labelsFor(c.metric), c.prefix, 'label', 50).filter((x) => x.text !== '__name__' || c.metric === '');
      } else if (c.kind === 'value') {
        out = rank(await meta.valuesFor(c.label, c.metric), c.prefix, 'value', 50);
      }
      if (seq !== reqSeq) return; // a newer keystroke superseded this one
      items = out; sel = out.length ? 0 : -1;
      showList();
    }
    function accept() {
      const it = items[sel];
      const c = ctxNow;
      if (!it || !c) { closeList(); return; }
      let text = it.text, from = c.from;
      const to = ta.selectionStart;
      let after = ta.value.slice(to);
      if (it.kind === 'history' || it.whole) { ta.value = text; ta.selectionStart = ta.selectionEnd = text.length; closeList(); return; }
      if (it.kind === 'function' || (it.kind === 'aggregation' && !after.startsWith('('))) { if (!after.startsWith('(')) text += '('; }
      if (it.kind === 'value') { text = text.replace(/\\/g, '\\\\').replace(/"/g, '\\"'); if (!after.startsWith('"')) text += '"'; }
      // Replace the rest of the word under the caret too.
      const rest = /^[a-zA-Z0-9_:]*/.exec(after)[0];
      if (it.kind !== 'value') after = after.slice(rest.length);
      ta.value = ta.value.slice(0, from) + text + after;
      const caret = from + text.length;
      ta.selectionStart = ta.selectionEnd = caret;
      closeList();
      autosize();
    }
    function autosize() { ta.style.height = 'auto'; ta.style.height = Math.min(ta.scrollHeight + 2, 300) + 'px'; }

    ta.addEventListener('keydown', (e) => {
      const open = !list.hidden && items.length > 0;
      if (open && (e.key === 'ArrowDown' || e.key === 'ArrowUp')) {
        e.preventDefault();
        sel = (sel + (e.key === 'ArrowDown' ? 1 : -1) + items.length) % items.length;
        showList();
      } else if (open && (e.key === 'Tab' || (e.key === 'Enter' && !e.shiftKey && sel >= 0 && !e.ctrlKey))) {
        e.preventDefault(); accept(); complete(false);
      } else if (e.key === 'Escape') {
        if (open) { e.preventDefault(); closeList(); }
      } else if (e.key === ' ' && e.ctrlKey) {
        e.preventDefault(); complete(true);
      } else if (e.key === 'Enter' && !e.shiftKey) {
        e.preventDefault(); closeList(); run();
      }
    });
    const completeSoon = EP.debounce(() => complete(false), 60);
    ta.addEventListener('input', () => { autosize(); completeSoon(); });
    ta.addEventListener('focus', () => { meta.loadMetrics(); if (!ta.value.trim()) complete(false); });
    ta.addEventListener('blur', () => setTimeout(closeList, 150));
    ta.addEventListener('click', () => { if (!list.hidden) complete(false); });

    execBtn.addEventListener('click', () => { closeList(); run(); });
    removeBtn.addEventListener('click', () => {
      const i = panels.indexOf(p);
      if (i >= 0) panels.splice(i, 1);
      if (p.chart) p.chart.destroy();
      root.remove();
      if (!panels.length) addPanel(defaultState(), false);
      writeUrl();
    });

    p.selectTab = selectTab;
    p.focus = () => ta.focus();
    setTimeout(autosize, 0);
    return p;
  }

  let panelBox;
  function addPanel(state, focus) {
    const p = createPanel(state);
    panels.push(p);
    panelBox.appendChild(p.root);
    p.selectTab(state.tab);
    if (focus) p.focus();
    return p;
  }

  function init() {
    panelBox = el('div');
    const add = el('button', { type: 'button', class: 'addpanel', onclick: () => { addPanel(defaultState(), true); writeUrl(); } }, 'Add panel');
    const clearHist = el('button', {
      type: 'button', class: 'small', title: 'Forget the expression history kept in this browser',
      onclick: () => { try { localStorage.removeItem(HISTORY_KEY); } catch (_) { /* ignore */ } },
    }, 'Clear history');
    EP.setContent(panelBox, el('div', { class: 'row' }, add, el('span', { class: 'grow' }), clearHist));
    const states = readUrl();
    if (!states.length) states.push(defaultState());
    states.forEach((s, i) => addPanel(s, i === 0 && !s.expr));
  }
  document.addEventListener('DOMContentLoaded', init);

  // Exposed for tests in the browser console.
  window.EPGraph = { parseDuration, formatDuration, context, toUrlTime, fromUrlTime };
})();
