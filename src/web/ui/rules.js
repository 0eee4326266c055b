// edgeprom /rules: every rule group with its rules, health, last evaluation and evaluation time,
// from /api/v1/rules.
'use strict';

(() => {
  const { el, api } = EP;

  function ruleCell(r) {
    const lines = r.type === 'alerting' ? [`alert: ${r.name}`, `expr: ${r.query}`] : [`record: ${r.name}`, `expr: ${r.query}`];
    if (r.type === 'alerting' && r.duration) lines.push(`for: ${EP.humanizeSeconds(r.duration)}`);
    for (const key of ['labels', 'annotations']) {
      const o = r[key] || {};
      if (Object.keys(o).length) { lines.push(`${key}:`); for (const [k, v] of Object.entries(o)) lines.push(`  ${k}: ${JSON.stringify(v)}`); }
    }
    return el('pre', { style: { margin: 0, maxHeight: 'none' } }, lines.join('\n'));
  }

  async function load() {
    const box = document.getElementById('rlist');
    try {
      const d = await api('rules');
      const groups = Array.isArray(d && d.groups) ? d.groups : [];
      if (!groups.length) { box.replaceChildren(el('p', { class: 'muted' }, 'No rule groups are loaded. Add rule_files to the configuration file.')); return; }
      box.replaceChildren(...groups.map((g) => {
        const rules = Array.isArray(g.rules) ? g.rules : [];
        const bad = rules.filter((r) => r.health === 'err').length;
        return el('details', { class: 'group', open: true },
          el('summary', null, el('span', { class: 'summary-line' }, el('strong', null, g.name), el('span', { class: 'muted' }, g.file || ''),
            bad ? el('span', { class: 'badge err' }, `${bad} failing`) : el('span', { class: 'badge ok' }, 'ok'))),
          el('div', { class: 'body' },
            el('p', { class: 'muted' }, `Interval ${EP.humanizeSeconds(g.interval || 0)} · last evaluation ${EP.ago(g.lastEvaluation)} · took ${EP.humanizeSeconds(g.evaluationTime || 0)}`),
            EP.table(['Rule', 'Health', 'Error', 'Last evaluation', { v: 'Evaluation time', class: 'num' }], rules.map((r) => [
              ruleCell(r),
              el('span', { class: 'badge ' + (r.health === 'ok' ? 'ok' : r.health === 'err' ? 'err' : 'unknown') }, (r.health || 'unknown').toUpperCase()),
              r.lastError ? el('span', { class: 'error' }, r.lastError) : '',
              el('span', { title: r.lastEvaluation || '' }, EP.ago(r.lastEvaluation)),
              { v: EP.humanizeSeconds(r.evaluationTime || 0), class: 'num' },
            ]), { caption: g.name })));
      }));
    } catch (e) {
      box.replaceChildren(EP.errorBox(e));
    }
  }
  document.addEventListener('DOMContentLoaded', () => {
    EP.setContent(el('div', { class: 'filters' }, el('button', { type: 'button', class: 'small', onclick: load }, 'Refresh')),
      el('div', { id: 'rlist' }, el('p', { class: 'muted' }, 'Loading…')));
    load();
  });
})();
