// edgeprom /config: the loaded configuration as YAML, from /api/v1/status/config.
'use strict';

(() => {
  const { el, api } = EP;
  document.addEventListener('DOMContentLoaded', async () => {
    const box = el('div', null, el('p', { class: 'muted' }, 'Loading…'));
    EP.setContent(box);
    try {
      const d = await api('status/config');
      const yaml = d && typeof d.yaml === 'string' ? d.yaml : '';
      const pre = el('pre', { tabindex: '0', 'aria-label': 'Configuration' }, yaml || '(empty configuration)');
      const msg = el('span', { class: 'muted', 'aria-live': 'polite' });
      const copy = el('button', {
        type: 'button', class: 'small', onclick: async () => {
          try { await navigator.clipboard.writeText(yaml); msg.textContent = 'Copied.'; } catch (_) {
            // The clipboard API needs a secure context; fall back to selecting the text.
            const r = document.createRange(); r.selectNodeContents(pre);
            const s = getSelection(); s.removeAllRanges(); s.addRange(r); msg.textContent = 'Selected: press Ctrl+C to copy.';
          }
        },
      }, 'Copy to clipboard');
      box.replaceChildren(el('div', { class: 'filters' }, copy, msg), pre);
    } catch (e) {
      box.replaceChildren(EP.errorBox(e));
    }
  });
})();
