// edgeprom /alerts: alerting rules with their state and active alerts, from /api/v1/rules?type=alert.
'use strict';

(() => {
  const { el, api } = EP;
  const show = { inactive: true, pending: true, firing: true };
  let groups = null;

  function ruleText(r) {
    const lines = [`alert: ${r.name}`, `expr: ${r.query}`];
    if (r.duration) lines.push(`for: ${EP.humanizeSeconds(r.duration)}`);
    if (r.keepFiringFor) lines.push(`keep_firing_for: ${EP.humanizeSeconds(r.keepFiringFor)}`);
    for (const key of ['labels', 'annotations']) {
      const o = r[key] || {};
      if (Object.keys(o).length) { lines.push(`${key}:`); for (const [k, v] of Object.entries(o)) lines.push(`  ${k}: ${JSON.stringify(v)}`); }
    }
    return lines.join('\n');
  }

  function render() {
    const out = el('div');
    const counts = { inactive: 0, pending: 0, firing: 0 };
    let any = false;
    for (const g of groups) {
      const rules = (g.rules || []).filter((r) => r.type === 'alerting' || r.type === undefined);
      if (!rules.length) continue;
      const items = [];
      for (const r of rules) {
        const state = r.state || 'inactive';
        counts[state] = (counts[state] || 0) + 1;
        if (!show[state]) continue;
        const alerts = Array.isArray(r.alerts) ? r.alerts : [];
        const body = el('div', { class: 'body' }, el('pre', null, ruleText(r)));
        if (r.lastError) body.append(el('div', { class: 'error' }, r.lastError));
        if (alerts.length) {
          body.append(EP.table(['Labels', 'State', 'Active since', { v: 'Value', class: 'num' }, 'Annotations'], alerts.map((a) => [
            { v: EP.labelChips(a.labels), class: 'labels' },
            el('span', { class: 'badge ' + a.state }, String(a.state).toUpperCase()),
            el('span', { title: a.activeAt || '' }, EP.ago(a.activeAt)),
            { v: String(a.value), class: 'num' },
            el('div', null, Object.entries(a.annotations || {}).map(([k, v]) => el('div', null, el('strong', null, k + ': '), v))),
          ]), { caption: r.name }));
        }
        items.push(el('details', { class: 'group', open: state !== 'inactive' },
          el('summary', null, el('span', { class: 'summary-line' }, el('span', { class: 'badge ' + state }, state.toUpperCase()),
            el('strong', null, r.name), alerts.length ? el('span', { class: 'muted' }, `(${alerts.length} active)`) : null,
            r.health && r.health !== 'ok' ? el('span', { class: 'badge err' }, r.health) : null)),
          body));
      }
      if (items.length) { any = true; out.append(el('h2', null, g.name, el('span', { class: 'muted' }, ' ' + (g.file || ''))), ...items); }
    }
    if (!any) out.append(el('p', { class: 'muted' }, groups.length || Object.values(counts).some(Boolean) ? 'No alerting rule matches the filter.' : 'No alerting rules are loaded.'));
    for (const s of Object.keys(show)) document.getElementById('cnt-' + s).textContent = `(${counts[s] || 0})`;
    document.getElementById('alist').replaceChildren(out);
  }

  async function load() {
    try {
      const d = await api('rules', { type: 'alert' });
      groups = Array.isArray(d && d.groups) ? d.groups : [];
      render();
    } catch (e) {
      document.getElementById('alist').replaceChildren(EP.errorBox(e));
    }
  }

  function init() {
    const boxes = Object.keys(show).map((s) => {
      const cb = el('input', { type: 'checkbox', checked: true });
      cb.addEventListener('change', () => { show[s] = cb.checked; if (groups) render(); });
      return el('label', null, cb, ' ', el('span', { class: 'badge ' + s }, s.charAt(0).toUpperCase() + s.slice(1)), ' ', el('span', { id: 'cnt-' + s, class: 'muted' }));
    });
    EP.setContent(el('div', { class: 'filters' }, boxes, el('button', { type: 'button', class: 'small', onclick: load }, 'Refresh')),
      el('div', { id: 'alist' }, el('p', { class: 'muted' }, 'Loading…')));
    load();
  }
  document.addEventListener('DOMContentLoaded', init);
})();
