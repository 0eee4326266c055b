// edgeprom /tsdb-status: head statistics and cardinality from /api/v1/status/tsdb, plus what a Pi
// owner needs to know about the SD card: bytes on disk, bytes written per day and, from the card's
// size and rated erase cycles, roughly how long the card lasts at that rate.
'use strict';

(() => {
  const { el, api } = EP;
  const CARD_KEY = 'edgeprom.sdcard';

  /** Sums every sample of each wanted metric in Prometheus text exposition. */
  function parseExposition(text, names) {
    const out = {};
    for (const line of text.split('\n')) {
      if (!line || line[0] === '#') continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)/.exec(line);
      if (!m || !names.includes(m[1])) continue;
      const v = parseFloat(m[3]);
      if (Number.isFinite(v)) out[m[1]] = (out[m[1]] || 0) + v;
    }
    return out;
  }

  async function instant(expr) {
    try {
      const d = await api('query', { query: expr });
      const r = d && Array.isArray(d.result) ? d.result : [];
      if (!r.length) return null;
      const v = parseFloat(r[0].value && r[0].value[1]);
      return Number.isFinite(v) ? v : null;
    } catch (_) { return null; }
  }

  function topTable(title, rows, valueName, fmt) {
    const list = Array.isArray(rows) ? rows : [];
    return el('section', null, el('h2', null, title),
      list.length ? EP.table(['Name', { v: valueName, class: 'num' }], list.map((r) => [el('code', null, r.name), { v: (fmt || String)(r.value), class: 'num' }]), { caption: title })
        : el('p', { class: 'muted' }, 'No data.'));
  }

  async function storageSection(box) {
    const wanted = ['edgeprom_storage_bytes_written_total', 'prometheus_tsdb_storage_blocks_bytes', 'prometheus_tsdb_wal_storage_size_bytes', 'process_start_time_seconds'];
    let self = {};
    try {
      const resp = await fetch('metrics');
      if (resp.ok) self = parseExposition(await resp.text(), wanted);
    } catch (_) { /* self metrics unavailable: show what the API has */ }
    // A recent daily rate needs stored history (edgeprom scraping itself); fall back to the average since start.
    const recent = await instant('sum(rate(edgeprom_storage_bytes_written_total[1d])) * 86400');
    const written = self.edgeprom_storage_bytes_written_total;
    const uptime = self.process_start_time_seconds ? Date.now() / 1000 - self.process_start_time_seconds : null;
    const sinceStart = written !== undefined && uptime && uptime > 60 ? written / uptime * 86400 : null;
    const perDay = recent !== null ? recent : sinceStart;
    const onDisk = self.prometheus_tsdb_storage_blocks_bytes !== undefined
      ? self.prometheus_tsdb_storage_blocks_bytes + (self.prometheus_tsdb_wal_storage_size_bytes || 0)
      : await instant('sum(prometheus_tsdb_storage_blocks_bytes)');

    const card = (k, v, note) => el('div', { class: 'card' }, el('div', { class: 'k' }, k), el('div', { class: 'v' }, v), note ? el('div', { class: 'muted' }, note) : null);
    const cards = el('div', { class: 'cards' },
      card('Bytes on disk', onDisk === null || onDisk === undefined ? '—' : EP.humanizeBytes(onDisk)),
      card('Bytes written per day', perDay === null ? '—' : EP.humanizeBytes(perDay),
        recent !== null ? 'rate over the last day' : sinceStart !== null ? `average since start (${EP.humanizeSeconds(uptime)} ago)` : 'not reported yet'),
      card('Written since start', written === undefined ? '—' : EP.humanizeBytes(written)));

    let saved = { gb: 32, cycles: 1000 };
    try { saved = Object.assign(saved, JSON.parse(localStorage.getItem(CARD_KEY) || '{}')); } catch (_) { /* defaults */ }
    const gb = el('input', { type: 'number', min: '1', step: '1', value: String(saved.gb), style: { width: '6em' }, 'aria-label': 'Card size in GB' });
    const cycles = el('input', { type: 'number', min: '1', step: '1', value: String(saved.cycles), style: { width: '7em' }, 'aria-label': 'Rated program/erase cycles' });
    const result = el('p', { 'aria-live': 'polite' });
    const update = () => {
      const g = parseFloat(gb.value), c = parseFloat(cycles.value);
      try { localStorage.setItem(CARD_KEY, JSON.stringify({ gb: g, cycles: c })); } catch (_) { /* ignore */ }
      if (!(g > 0 && c > 0)) { result.textContent = 'Enter the card size and its rated erase cycles.'; return; }
      if (!perDay) { result.textContent = 'No write rate measured yet.'; return; }
      const days = g * 1e9 * c / perDay;
      result.replaceChildren('At this rate edgeprom alone would wear out the card in about ', el('strong', null, days > 365 * 1000 ? 'more than 1000 years' : EP.humanizeSeconds(days * 86400)),
        ' (total endurance ', EP.humanizeBytes(g * 1e9 * c), '). Wear levelling inside the card, the operating system and other programs add to this.');
    };
    gb.addEventListener('input', update); cycles.addEventListener('input', update);
    update();
    const chartBox = el('div', { class: 'chart', style: { height: '200px' } });
    box.replaceChildren(el('h2', null, 'Storage and SD card'), cards,
      el('div', { class: 'row' }, el('label', null, 'Card size (GB) ', gb), el('label', null, 'Rated erase cycles ', cycles),
        el('span', { class: 'muted' }, 'Consumer TLC cards: about 500–3,000; industrial (pSLC) cards: 10,000 and more.')),
      result);
    try {
      const end = Math.floor(Date.now() / 3600e3) * 3600e3, start = end - 7 * 86400e3, step = 3600e3;
      const d = await api('query_range', { query: 'sum(rate(edgeprom_storage_bytes_written_total[1h])) * 86400', start: start / 1000, end: end / 1000, step: step / 1000 });
      const r = d && Array.isArray(d.result) ? d.result : [];
      if (r.length && r[0].values && r[0].values.length > 1) {
        box.append(el('h2', null, 'Bytes written per day (hourly rate, last 7 days)'), chartBox);
        const c = EPChart.create(chartBox, { unit: 'bytes', stacked: false, legend: null });
        const vals = r[0].values;
        c.setData([{ name: 'bytes written per day', ts: Float64Array.from(vals, (v) => v[0] * 1000), vs: Float64Array.from(vals, (v) => parseFloat(v[1])) }], { start, end, step });
      }
    } catch (_) { /* no stored history: the figures above stand alone */ }
  }

  document.addEventListener('DOMContentLoaded', async () => {
    const storage = el('section', null, el('h2', null, 'Storage and SD card'), el('p', { class: 'muted' }, 'Loading…'));
    const head = el('section', null, el('h2', null, 'Head'), el('p', { class: 'muted' }, 'Loading…'));
    const tops = el('div');
    EP.setContent(storage, head, tops);
    storageSection(storage);
    try {
      const d = (await api('status/tsdb')) || {};
      const h = d.headStats || {};
      const t = (ms) => (typeof ms === 'number' && ms > 0 && ms < 1e15 ? EP.formatTime(ms) : '—');
      head.replaceChildren(el('h2', null, 'Head'), el('div', { class: 'cards' },
        el('div', { class: 'card' }, el('div', { class: 'k' }, 'Series'), el('div', { class: 'v' }, String(h.numSeries ?? '—'))),
        el('div', { class: 'card' }, el('div', { class: 'k' }, 'Chunks'), el('div', { class: 'v' }, String(h.chunkCount ?? '—'))),
        el('div', { class: 'card' }, el('div', { class: 'k' }, 'Label pairs'), el('div', { class: 'v' }, String(h.numLabelPairs ?? '—'))),
        el('div', { class: 'card' }, el('div', { class: 'k' }, 'Time range'), el('div', null, t(h.minTime)), el('div', null, t(h.maxTime)))));
      tops.replaceChildren(
        topTable('Series count by metric name', d.seriesCountByMetricName, 'Series'),
        topTable('Label value count by label name', d.labelValueCountByLabelName, 'Values'),
        topTable('Memory used by label name', d.memoryInBytesByLabelName, 'Bytes', EP.humanizeBytes),
        topTable('Series count by label pair', d.seriesCountByLabelValuePair, 'Series'));
    } catch (e) {
      head.replaceChildren(el('h2', null, 'Head'), EP.errorBox(e));
    }
  });
})();
