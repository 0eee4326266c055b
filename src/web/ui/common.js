// edgeprom pages: shared helpers (navigation, API access, formatting). Every URL is relative so the
// pages work under --web.route-prefix: a page at <prefix>/graph fetches <prefix>/api/v1/...
'use strict';

const EP = (() => {
  const NAV = [
    ['graph', 'Graph'], ['alerts', 'Alerts'], ['rules', 'Rules'], ['targets', 'Targets'],
    ['tsdb-status', 'TSDB'], ['config', 'Config'], ['flags', 'Flags'], ['status', 'Status'],
  ];

  /** Builds an element: el('a', {href: 'x', class: 'y', onclick: fn}, 'text', child, ...). */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
        else if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (k === 'style' && typeof v === 'object') Object.assign(e.style, v);
        else if (k in e && typeof v !== 'string') e[k] = v;
        else e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    append(e, children);
    return e;
  }
  function append(e, children) {
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      if (Array.isArray(c)) append(e, c);
      else e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  /** An API error: the server's errorType and error, or the transport failure. */
  class ApiError extends Error {
    constructor(message, errorType, status) {
      super(message);
      this.errorType = errorType || '';
      this.status = status || 0;
    }
  }

  /**
   * Calls the Prometheus-compatible API: api('query', {query: 'up'}) -> the `data` field.
   * Array values become repeated parameters (match[]). Long requests go as a POST form body.
   * Warnings, if any, are attached to the returned promise's result as `__warnings` (non-enumerable).
   */
  async function api(path, params, opts) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
      if (v === undefined || v === null || v === '') continue;
      if (Array.isArray(v)) v.forEach((x) => qs.append(k, x)); else qs.append(k, String(v));
    }
    const body = qs.toString();
    const usePost = body.length > 1500 && !(opts && opts.get);
    const url = 'api/v1/' + path + (!usePost && body ? '?' + body : '');
    let resp;
    try {
      resp = await fetch(url, usePost ? {
        method: 'POST', body, headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        signal: opts && opts.signal,
      } : { signal: opts && opts.signal });
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw new ApiError('cannot reach the server: ' + (e && e.message ? e.message : e), 'network', 0);
    }
    let json = null;
    const text = await resp.text();
    try { json = JSON.parse(text); } catch (_) { /* not JSON */ }
    if (!json || typeof json !== 'object') {
      throw new ApiError(`HTTP ${resp.status} from ${path}: ${text.slice(0, 200) || 'empty body'}`, 'bad_response', resp.status);
    }
    if (json.status !== 'success') {
      throw new ApiError(json.error || `HTTP ${resp.status} from ${path}`, json.errorType || 'error', resp.status);
    }
    const data = json.data === undefined ? null : json.data;
    if (data && typeof data === 'object' && Array.isArray(json.warnings)) {
      Object.defineProperty(data, '__warnings', { value: json.warnings, enumerable: false });
    }
    return data;
  }

  function errorBox(err) {
    const msg = err && err.message ? err.message : String(err);
    const type = err && err.errorType ? err.errorType + ': ' : '';
    return el('div', { class: 'error apierror', role: 'alert' }, type + msg);
  }

  function content() { return document.getElementById('content'); }
  function setContent(...nodes) {
    const c = content();
    c.replaceChildren();
    append(c, nodes);
  }

  // ---- formatting ----
  const SI = [[1e24, 'Y'], [1e21, 'Z'], [1e18, 'E'], [1e15, 'P'], [1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k'],
    [1, ''], [1e-3, 'm'], [1e-6, 'µ'], [1e-9, 'n'], [1e-12, 'p']];

  function trim(x, digits) {
    let s = x.toFixed(digits);
    if (s.includes('.')) s = s.replace(/0+$/, '').replace(/\.$/, '');
    return s;
  }
  function special(v) {
    if (Number.isNaN(v)) return 'NaN';
    if (v === Infinity) return '+Inf';
    if (v === -Infinity) return '-Inf';
    return null;
  }
  /** 1234567 -> "1.23M" (SI prefixes, as Prometheus's humanize). */
  function humanize(v, digits) {
    const s = special(v); if (s) return s;
    if (v === 0) return '0';
    const a = Math.abs(v);
    for (const [f, p] of SI) {
      if (a >= f * 0.9995) {
        const x = a / f;
        return trim(v / f, digits === undefined ? (x >= 99.95 ? 0 : x >= 9.995 ? 1 : 2) : digits) + p;
      }
    }
    return v.toExponential(2);
  }
  /** 1536 -> "1.5 KiB" (binary prefixes, as humanize1024). */
  function humanizeBytes(v, digits) {
    const s = special(v); if (s) return s;
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
    let a = Math.abs(v), i = 0;
    while (a >= 1024 && i < units.length - 1) { a /= 1024; i++; }
    const d = digits === undefined ? (a >= 100 || i === 0 ? 0 : a >= 10 ? 1 : 2) : digits;
    return (v < 0 ? '-' : '') + trim(a, d) + ' ' + units[i];
  }
  /** Seconds -> "1d 2h", "3m 4s", "12.5ms". */
  function humanizeSeconds(v) {
    const s = special(v); if (s) return s;
    if (v === 0) return '0s';
    const a = Math.abs(v), sign = v < 0 ? '-' : '';
    if (a < 1e-6) return sign + trim(a * 1e9, 1) + 'ns';
    if (a < 1e-3) return sign + trim(a * 1e6, 1) + 'µs';
    if (a < 1) return sign + trim(a * 1e3, 1) + 'ms';
    if (a < 60) return sign + trim(a, 2) + 's';
    const parts = [];
    let r = Math.round(a);
    for (const [n, u] of [[86400 * 365, 'y'], [86400, 'd'], [3600, 'h'], [60, 'm'], [1, 's']]) {
      if (r >= n) { parts.push(Math.floor(r / n) + u); r %= n; }
      if (parts.length === 2) break;
    }
    return sign + parts.join(' ');
  }
  /** Formats with a unit: 'bytes', 'seconds', 'percent' or '' (SI). */
  function formatUnit(v, unit) {
    if (unit === 'bytes') return humanizeBytes(v);
    if (unit === 'seconds') return humanizeSeconds(v);
    if (unit === 'ratio') return special(v) || trim(v * 100, 2) + '%';
    return humanize(v);
  }
  /** Guesses a unit from a metric name, as people name them (…_bytes, …_seconds). */
  function unitOf(name) {
    if (!name) return '';
    const n = String(name).replace(/_(total|sum|count|bucket|created)$/, '');
    if (/_bytes$/.test(n)) return 'bytes';
    if (/_seconds$/.test(n) && !/timestamp/.test(n)) return 'seconds';
    if (/_ratio$/.test(n)) return 'ratio';
    return '';
  }
  /** A Date or ms -> "2024-01-02 03:04:05" in local time (ISO-like, sortable). */
  function formatTime(t) {
    const d = t instanceof Date ? t : new Date(t);
    if (Number.isNaN(d.getTime())) return String(t);
    const p = (x) => String(x).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }
  /** An RFC 3339 time from the API -> "12s ago" (or "never" for Go's zero time). */
  function ago(iso) {
    if (!iso) return 'never';
    const t = Date.parse(iso);
    if (Number.isNaN(t) || t <= 0 || String(iso).startsWith('0001-')) return 'never';
    const d = (Date.now() - t) / 1000;
    if (d < 0) return 'in ' + humanizeSeconds(-d);
    if (d < 1) return 'just now';
    return humanizeSeconds(Math.round(d)) + ' ago';
  }
  /** {a: "1"} -> [chip a="1"] elements, __name__ first. */
  function labelChips(labels) {
    const keys = Object.keys(labels || {}).sort((a, b) => (a === '__name__' ? -1 : b === '__name__' ? 1 : a < b ? -1 : a > b ? 1 : 0));
    return keys.map((k) => el('span', { class: 'label-chip' }, `${k}="${labels[k]}"`));
  }
  /** {__name__:"up", job:"x"} -> 'up{job="x"}' as Prometheus prints it. */
  function seriesName(metric) {
    const m = metric || {};
    const name = m.__name__ || '';
    const rest = Object.keys(m).filter((k) => k !== '__name__').sort()
      .map((k) => `${k}="${String(m[k]).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
    return name + '{' + rest.join(', ') + '}';
  }

  /** A table with a header row; rows are arrays of cells (strings or nodes or {v, class}). */
  function table(headers, rows, opts) {
    const thead = el('thead', null, el('tr', null, headers.map((h) =>
      typeof h === 'object' ? el('th', { class: h.class, scope: 'col' }, h.v) : el('th', { scope: 'col' }, h))));
    const tbody = el('tbody', null, rows.map((r) => el('tr', null, r.map((c) =>
      c && typeof c === 'object' && !(c instanceof Node) && 'v' in c ? el('td', { class: c.class }, c.v) : el('td', null, c)))));
    return el('div', { class: 'table-wrap' }, el('table', opts && opts.caption ? { 'aria-label': opts.caption } : null, thead, tbody));
  }

  function kv(obj) {
    const dl = el('dl', { class: 'kv' });
    for (const [k, v] of obj) dl.append(el('dt', null, k), el('dd', null, v === undefined || v === null || v === '' ? '—' : v));
    return dl;
  }

  function renderNav() {
    const here = document.body.dataset.page;
    const nav = el('nav', { 'aria-label': 'Main' },
      el('a', { class: 'brand', href: 'graph' }, 'edgeprom'),
      NAV.map(([href, name]) => el('a', { class: 'item', href, 'aria-current': href === here ? 'page' : null }, name)));
    document.getElementById('nav').replaceChildren(nav);
  }

  /** A debounced input handler. */
  function debounce(fn, ms) {
    let t = 0;
    return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
  }

  document.addEventListener('DOMContentLoaded', renderNav);

  return {
    el, append, api, ApiError, errorBox, content, setContent, humanize, humanizeBytes, humanizeSeconds,
    formatUnit, unitOf, formatTime, ago, labelChips, seriesName, table, kv, debounce,
  };
})();
