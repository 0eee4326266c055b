// edgeprom /targets: every scrape target by job (scrape pool), with state, labels, last scrape,
// duration and error, from /api/v1/targets. Pools collapse; the choice is remembered per browser.
'use strict';

(() => {
  const { el, api } = EP;
  const COLLAPSED_KEY = 'edgeprom.targets.collapsed';
  const collapsed = new Set((() => { try { return JSON.parse(localStorage.getItem(COLLAPSED_KEY) || '[]'); } catch (_) { return []; } })());
  const saveCollapsed = () => { try { localStorage.setItem(COLLAPSED_KEY, JSON.stringify([...collapsed])); } catch (_) { /* ignore */ } };
  let data = null, filter = 'all', search = '';

  function matches(t) {
    if (filter === 'unhealthy' && t.health === 'up') return false;
    if (!search) return true;
    const hay = [t.scrapeUrl, t.lastError, ...Object.entries(t.labels || {}).map(([k, v]) => `${k}="${v}"`)].join(' ').toLowerCase();
    return search.toLowerCase().split(/\s+/).every((w) => hay.includes(w));
  }

  function render() {
    const out = el('div');
    const active = Array.isArray(data && data.activeTargets) ? data.activeTargets : [];
    const pools = new Map();
    for (const t of active) {
      const pool = t.scrapePool || (t.labels && t.labels.job) || '(no job)';
      if (!pools.has(pool)) pools.set(pool, []);
      pools.get(pool).push(t);
    }
    if (!pools.size) {
      out.append(el('p', { class: 'muted' }, 'No targets. Add scrape_configs to the configuration file.'));
    }
    for (const [pool, targets] of [...pools.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      const up = targets.filter((t) => t.health === 'up').length;
      const shown = targets.filter(matches);
      if (!shown.length && (filter !== 'all' || search)) continue;
      const rows = shown.map((t) => [
        el('a', { href: t.scrapeUrl || '#', rel: 'noreferrer', class: 'mono' }, t.scrapeUrl || ''),
        el('span', { class: 'badge ' + (t.health || 'unknown') }, (t.health || 'unknown').toUpperCase()),
        { v: EP.labelChips(t.labels), class: 'labels' },
        el('span', { title: t.lastScrape || '' }, EP.ago(t.lastScrape)),
        { v: typeof t.lastScrapeDuration === 'number' ? EP.humanizeSeconds(t.lastScrapeDuration) : '—', class: 'num' },
        t.lastError ? el('span', { class: 'error' }, t.lastError) : '',
      ]);
      const det = el('details', { class: 'group', open: !collapsed.has(pool) },
        el('summary', null, el('span', { class: 'summary-line' }, el('strong', null, pool),
          el('span', { class: 'badge ' + (up === targets.length ? 'ok' : up === 0 ? 'bad' : 'warn') }, `${up}/${targets.length} up`))),
        el('div', { class: 'body' }, EP.table(['Endpoint', 'State', 'Labels', 'Last scrape', { v: 'Duration', class: 'num' }, 'Error'], rows, { caption: pool })));
      det.addEventListener('toggle', () => { if (det.open) collapsed.delete(pool); else collapsed.add(pool); saveCollapsed(); });
      out.append(det);
    }
    if (pools.size && !out.children.length) out.append(el('p', { class: 'muted' }, 'No target matches the filter.'));
    const dropped = Array.isArray(data && data.droppedTargets) ? data.droppedTargets.length : 0;
    if (dropped) out.append(el('p', { class: 'muted' }, `${dropped} discovered target(s) dropped by relabeling.`));
    document.getElementById('tlist').replaceChildren(out);
  }

  async function load() {
    try {
      data = await api('targets');
      render();
    } catch (e) {
      document.getElementById('tlist').replaceChildren(EP.errorBox(e));
    }
  }

  function init() {
    const sel = el('select', { 'aria-label': 'Show' }, el('option', { value: 'all' }, 'All targets'), el('option', { value: 'unhealthy' }, 'Unhealthy only'));
    sel.addEventListener('change', () => { filter = sel.value; if (data) render(); });
    const q = el('input', { type: 'search', placeholder: 'Filter by endpoint or labels', 'aria-label': 'Filter' });
    q.addEventListener('input', EP.debounce(() => { search = q.value.trim(); if (data) render(); }, 120));
    const setAll = (open) => { document.querySelectorAll('#tlist details.group').forEach((d) => { d.open = open; }); };
    EP.setContent(
      el('div', { class: 'filters' }, sel, q,
        el('button', { type: 'button', class: 'small', onclick: () => setAll(false) }, 'Collapse all'),
        el('button', { type: 'button', class: 'small', onclick: () => setAll(true) }, 'Expand all'),
        el('button', { type: 'button', class: 'small', onclick: load }, 'Refresh')),
      el('div', { id: 'tlist' }, el('p', { class: 'muted' }, 'Loading…')));
    load();
  }
  document.addEventListener('DOMContentLoaded', init);
})();
