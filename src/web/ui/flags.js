// edgeprom /flags: the command-line flags the server runs with, from /api/v1/status/flags.
'use strict';

(() => {
  const { el, api } = EP;
  document.addEventListener('DOMContentLoaded', async () => {
    const q = el('input', { type: 'search', placeholder: 'Filter flags', 'aria-label': 'Filter flags' });
    const box = el('div', null, el('p', { class: 'muted' }, 'Loading…'));
    EP.setContent(el('div', { class: 'filters' }, q), box);
    try {
      const flags = (await api('status/flags')) || {};
      const entries = Object.entries(flags).sort((a, b) => (a[0] < b[0] ? -1 : 1));
      const render = () => {
        const f = q.value.trim().toLowerCase();
        const rows = entries.filter(([k, v]) => !f || k.toLowerCase().includes(f) || String(v).toLowerCase().includes(f))
          .map(([k, v]) => [el('code', null, '--' + k), el('code', null, String(v))]);
        box.replaceChildren(rows.length ? EP.table(['Flag', 'Value'], rows, { caption: 'Flags' }) : el('p', { class: 'muted' }, entries.length ? 'No flag matches.' : 'No flags reported.'));
      };
      q.addEventListener('input', render);
      render();
    } catch (e) {
      box.replaceChildren(EP.errorBox(e));
    }
  });
})();
