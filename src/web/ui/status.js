// edgeprom /status: build and runtime information and the Alertmanagers in use, each section loaded
// on its own so one failing endpoint does not blank the page.
'use strict';

(() => {
  const { el, api } = EP;
  const LABELS = {
    version: 'Version', revision: 'Revision', branch: 'Branch', buildUser: 'Build user', buildDate: 'Build date',
    goVersion: 'Toolchain', startTime: 'Start time', CWD: 'Working directory', reloadConfigSuccess: 'Configuration reload',
    lastConfigTime: 'Last successful configuration reload', corruptionCount: 'WAL corruptions', goroutineCount: 'Tasks',
    GOMAXPROCS: 'Threads (GOMAXPROCS)', GOMEMLIMIT: 'Memory limit (GOMEMLIMIT)', GOGC: 'GOGC', GODEBUG: 'GODEBUG', storageRetention: 'Storage retention',
  };
  function fmt(k, v) {
    if (k === 'reloadConfigSuccess') return el('span', { class: 'badge ' + (v ? 'ok' : 'bad') }, v ? 'Successful' : 'Failed');
    if ((k === 'startTime' || k === 'lastConfigTime') && v) {
      const t = Date.parse(v);
      return Number.isNaN(t) ? String(v) : `${EP.formatTime(t)} (${EP.ago(v)})`;
    }
    if (v !== null && typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }
  async function section(title, path, render) {
    const box = el('section', null, el('h2', null, title), el('p', { class: 'muted' }, 'Loading…'));
    document.getElementById('content').append(box);
    try {
      const d = await api(path);
      box.replaceChildren(el('h2', null, title), render(d));
    } catch (e) {
      box.replaceChildren(el('h2', null, title), EP.errorBox(e));
    }
  }
  const ORDER = Object.keys(LABELS);
  const rank = (k) => (ORDER.includes(k) ? ORDER.indexOf(k) : ORDER.length);
  const kvOf = (d) => {
    const entries = Object.entries(d || {}).sort((a, b) => rank(a[0]) - rank(b[0]));
    return entries.length ? EP.kv(entries.map(([k, v]) => [LABELS[k] || k, fmt(k, v)])) : el('p', { class: 'muted' }, 'Nothing reported.');
  };
  document.addEventListener('DOMContentLoaded', () => {
    EP.setContent();
    section('Runtime information', 'status/runtimeinfo', kvOf);
    section('Build information', 'status/buildinfo', kvOf);
    section('Alertmanagers', 'alertmanagers', (d) => {
      const act = Array.isArray(d && d.activeAlertmanagers) ? d.activeAlertmanagers : [];
      const drop = Array.isArray(d && d.droppedAlertmanagers) ? d.droppedAlertmanagers : [];
      if (!act.length && !drop.length) return el('p', { class: 'muted' }, 'No Alertmanagers are configured.');
      return EP.table(['Endpoint', 'State'], act.map((a) => [el('code', null, a.url), el('span', { class: 'badge ok' }, 'active')])
        .concat(drop.map((a) => [el('code', null, a.url), el('span', { class: 'badge warn' }, 'dropped')])), { caption: 'Alertmanagers' });
    });
    section('Command-line flags', 'status/flags', (d) => {
      const entries = Object.entries(d || {}).sort((a, b) => (a[0] < b[0] ? -1 : 1));
      if (!entries.length) return el('p', { class: 'muted' }, 'No flags reported.');
      return el('details', { class: 'group' }, el('summary', null, `${entries.length} flags`),
        el('div', { class: 'body' }, EP.table(['Flag', 'Value'], entries.map(([k, v]) => [el('code', null, '--' + k), el('code', null, String(v))]), { caption: 'Flags' })));
    });
    const links = el('p', null, 'See also: ', el('a', { href: 'flags' }, 'command-line flags'), ' · ', el('a', { href: 'config' }, 'configuration'), ' · ', el('a', { href: 'tsdb-status' }, 'TSDB status'));
    document.getElementById('content').append(links);
  });
})();
