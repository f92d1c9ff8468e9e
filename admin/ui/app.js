// switchyard status page.
//
// It polls GET /status every POLL_MS and acts through the same JSON API a
// curl user has (POST, PATCH and DELETE /backends). The DOM is built from
// nodes and text only, never from HTML strings: the page's CSP requires
// Trusted Types for HTML sinks, so a backend URL or an error text can never
// become markup. Rows are kept per backend URL and updated in place, so that
// a poll never takes the focus from a weight being typed, and 200 backends
// cost 200 small updates every two seconds rather than a rebuilt table.
'use strict';

(() => {
  const POLL_MS = 2000;
  const REQUEST_TIMEOUT_MS = 10000;
  const HISTORY = 60; // polls kept per backend for its sparkline: two minutes
  const TOKEN_KEY = 'switchyard.adminToken';
  const MAX_MESSAGES = 5;

  const $ = (id) => document.getElementById(id);
  const fmt = new Intl.NumberFormat();
  const fmt1 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1, minimumFractionDigits: 1 });
  const fmt2 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

  const page = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    sortKey: 'url',
    sortDir: 1,
    filter: [],
    rows: new Map(), // url -> row
    history: new Map(), // url -> [{t, n}]
    poolRates: [],
    skewMs: 0, // the admin server's clock minus ours, from its Date header
    timer: 0,
    polling: false,
    pollAgain: false,
    tokenWaiters: null, // resolvers waiting for a token from the dialog
    last: null,
  };

  // ---- DOM helpers ----

  // el makes an element: "class" and "text" are the class name and the text;
  // a boolean is set as a property (noValidate, disabled); anything else as an
  // attribute.
  function el(tag, props, ...children) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'class') n.className = v;
      else if (k === 'text') n.textContent = v;
      else if (typeof v === 'boolean') n[k] = v;
      else n.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c !== null && c !== undefined && c !== false) n.append(c);
    }
    return n;
  }

  const SVG = 'http://www.w3.org/2000/svg';

  function sparkline(w, h) {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('aria-hidden', 'true');
    const area = document.createElementNS(SVG, 'polygon');
    const line = document.createElementNS(SVG, 'polyline');
    svg.append(area, line);
    return { svg, area, line, w, h };
  }

  function drawSpark(s, values) {
    const { w, h } = s;
    if (!values.length) values = [0];
    const max = Math.max(...values, 0);
    // Spread over the whole width whatever the length, so that a fresh
    // page shows a line at once rather than a dot at the right edge.
    const step = w / Math.max(values.length - 1, 1);
    const x0 = 0;
    const pts = values.map((v, i) => {
      const y = max > 0 ? h - 1 - (v / max) * (h - 3) : h - 1;
      return `${(x0 + i * step).toFixed(1)},${y.toFixed(1)}`;
    });
    if (pts.length === 1) pts.push(`${w},${pts[0].split(',')[1]}`);
    const line = pts.join(' ');
    if (s.line.getAttribute('points') !== line) {
      s.line.setAttribute('points', line);
      const first = pts[0].split(',')[0];
      const last = pts[pts.length - 1].split(',')[0];
      s.area.setAttribute('points', `${first},${h} ${line} ${last},${h}`);
    }
  }

  function setText(n, text) {
    text = String(text);
    if (n.textContent !== text) n.textContent = text;
  }

  function setAttr(n, name, value) {
    if (value === null || value === undefined || value === '') {
      if (n.hasAttribute(name)) n.removeAttribute(name);
    } else if (n.getAttribute(name) !== String(value)) {
      n.setAttribute(name, String(value));
    }
  }

  function setClass(n, cls) {
    if (n.className !== cls) n.className = cls;
  }

  // ---- formatting ----

  function duration(sec) {
    sec = Math.max(0, Math.round(sec));
    if (sec < 60) return `${sec}s`;
    const m = Math.floor(sec / 60);
    if (m < 60) return `${m}m ${sec % 60}s`;
    const hr = Math.floor(m / 60);
    if (hr < 24) return `${hr}h ${m % 60}m`;
    return `${Math.floor(hr / 24)}d ${hr % 24}h`;
  }

  function serverNow() { return Date.now() + page.skewMs; }

  function ago(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return '–';
    return duration((serverNow() - t) / 1000) + ' ago';
  }

  function localTime(iso) {
    const t = Date.parse(iso);
    return Number.isNaN(t) ? '' : new Date(t).toLocaleString();
  }

  function rateText(r) {
    if (r === null || r === undefined) return '–';
    return r >= 100 ? fmt.format(Math.round(r)) : fmt2.format(r);
  }

  const STATE_ORDER = { down: 0, ejected: 1, draining: 2, up: 3 };
  const ADMIN_ORDER = { maintenance: 0, drain: 1, ready: 2 };

  function responsesOf(b) {
    const r = b.responses || {};
    let total = 0;
    for (const v of Object.values(r)) total += v;
    const errors = r['5xx'] || 0;
    return { total, errors, rate: total > 0 ? errors / total : null, byClass: r };
  }

  // ---- the API ----

  // request sends one request to the admin API and reads its answer. It
  // never throws for an HTTP status, only when the server cannot be reached.
  async function request(method, path, body) {
    const headers = {};
    if (page.token) headers.Authorization = 'Bearer ' + page.token;
    const init = { method, headers, cache: 'no-store', redirect: 'error' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(new Error('no answer in ' + REQUEST_TIMEOUT_MS / 1000 + 's')), REQUEST_TIMEOUT_MS);
    init.signal = ctl.signal;
    try {
      const res = await fetch(path, init);
      const text = await res.text();
      let data = null;
      try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
      return { status: res.status, ok: res.ok, data, text, date: res.headers.get('Date'),
               bearer: /^bearer\b/i.test(res.headers.get('WWW-Authenticate') || '') };
    } finally {
      clearTimeout(timer);
    }
  }

  // call is request, asking for the token (once per refusal) when the API
  // answers 401 with WWW-Authenticate: Bearer, and then trying again.
  async function call(method, path, body) {
    let r = await request(method, path, body);
    while (r.status === 401 && r.bearer) {
      await needToken(page.token ? 'That token was refused.' : '');
      r = await request(method, path, body);
    }
    return r;
  }

  // errorText is the API's own words for a failed answer: its "error", and
  // its "problems" when it lists them (POST /reload).
  function errorText(r) {
    if (r.data && typeof r.data.error === 'string') {
      let s = r.data.error;
      if (Array.isArray(r.data.problems) && r.data.problems.length) s += ': ' + r.data.problems.join('; ');
      return s;
    }
    const t = (r.text || '').trim();
    return t ? t.slice(0, 300) : `HTTP ${r.status}`;
  }

  // ---- the token ----

  function needToken(message) {
    const dlg = $('token-dialog');
    const err = $('token-error');
    err.hidden = !message;
    err.textContent = message || '';
    setConn('wait', 'waiting for the admin token');
    if (!dlg.open) dlg.showModal();
    updateTokenButton(true);
    $('token-input').focus();
    return new Promise((resolve) => {
      (page.tokenWaiters ||= []).push(resolve);
    });
  }

  function tokenGiven(token) {
    page.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    const waiters = page.tokenWaiters || [];
    page.tokenWaiters = null;
    updateTokenButton(false);
    for (const w of waiters) w();
  }

  function updateTokenButton(waiting) {
    const b = $('token-button');
    if (waiting && !$('token-dialog').open) {
      b.hidden = false;
      b.textContent = 'enter token';
    } else if (page.token && !waiting) {
      b.hidden = false;
      b.textContent = 'forget token';
    } else {
      b.hidden = true;
    }
  }

  // ---- polling ----

  function setConn(kind, text) {
    const c = $('conn');
    setClass(c, 'conn ' + kind);
    setText(c, text);
  }

  function schedule() {
    clearTimeout(page.timer);
    page.timer = setTimeout(poll, POLL_MS);
  }

  async function poll() {
    if (page.polling) {
      page.pollAgain = true;
      return;
    }
    page.polling = true;
    clearTimeout(page.timer);
    try {
      const r = await call('GET', 'status');
      if (r.ok && r.data && Array.isArray(r.data.backends)) {
        if (r.date) {
          const d = Date.parse(r.date);
          // Date has a resolution of a second: only a larger gap is skew.
          if (!Number.isNaN(d) && Math.abs(d - Date.now()) > 1500) page.skewMs = d - Date.now();
          else page.skewMs = 0;
        }
        receive(r.data);
        setConn('live', 'live · updated ' + new Date().toLocaleTimeString());
      } else {
        setConn('stale', `GET /status answered ${r.status}: ${errorText(r)} · retrying`);
      }
    } catch (e) {
      setConn('stale', `admin API unreachable (${e.message || e}) · retrying`);
    } finally {
      page.polling = false;
      if (page.pollAgain) {
        page.pollAgain = false;
        poll();
      } else {
        schedule();
      }
    }
  }

  // ---- rendering ----

  function receive(st) {
    page.last = st;
    const t = performance.now() / 1000;
    const seen = new Set();
    let poolRate = 0;
    for (const b of st.backends) {
      seen.add(b.url);
      let h = page.history.get(b.url);
      if (!h) page.history.set(b.url, (h = []));
      const prev = h[h.length - 1];
      // A counter that went back is a new record (removed and added
      // again): its history starts over.
      if (prev && b.total_requests < prev.n) h.length = 0;
      h.push({ t, n: b.total_requests });
      if (h.length > HISTORY + 1) h.splice(0, h.length - HISTORY - 1);
      const r = latestRate(h);
      if (r !== null) poolRate += r;
    }
    for (const url of page.history.keys()) if (!seen.has(url)) page.history.delete(url);
    page.poolRates.push(poolRate);
    if (page.poolRates.length > HISTORY) page.poolRates.splice(0, page.poolRates.length - HISTORY);

    renderSummary(st, poolRate);
    renderRows(st);
  }

  function rates(h) {
    const out = [];
    for (let i = 1; i < h.length; i++) {
      const dt = h[i].t - h[i - 1].t;
      out.push(dt > 0 ? (h[i].n - h[i - 1].n) / dt : 0);
    }
    return out;
  }

  function latestRate(h) {
    if (!h || h.length < 2) return null;
    const a = h[h.length - 2], b = h[h.length - 1];
    const dt = b.t - a.t;
    return dt > 0 ? (b.n - a.n) / dt : 0;
  }

  function kv(dl, pairs) {
    const want = pairs.filter(Boolean);
    // Rebuilt only when the text changes: cheap, and no flicker.
    const key = JSON.stringify(want);
    if (dl.dataset.key === key) return;
    dl.dataset.key = key;
    dl.replaceChildren(...want.flatMap(([k, v, cls]) => [el('dt', { text: k }), el('dd', { text: v, class: cls })]));
  }

  let poolSpark = null;

  function renderSummary(st, poolRate) {
    setText($('active'), st.active_backends);
    setText($('total'), st.total_backends);
    $('active').parentElement.classList.toggle('bad', st.active_backends === 0 && st.total_backends > 0);

    const n = { down: 0, ejected: 0, draining: 0, drain: 0, maintenance: 0, discovered: 0 };
    for (const b of st.backends) {
      if (b.state in n) n[b.state]++;
      if (b.state !== 'draining' && (b.admin_state === 'drain' || b.admin_state === 'maintenance')) n[b.admin_state]++;
      if (b.source) n.discovered++;
    }
    const parts = [];
    if (n.down) parts.push(`${n.down} down`);
    if (n.ejected) parts.push(`${n.ejected} ejected`);
    if (n.drain) parts.push(`${n.drain} on drain`);
    if (n.maintenance) parts.push(`${n.maintenance} in maintenance`);
    if (n.draining) parts.push(`${n.draining} draining (removed)`);
    if (n.discovered) parts.push(`${n.discovered} discovered`);
    setText($('counts'), parts.length ? parts.join(' · ') : (st.total_backends ? 'all healthy' : 'no backends'));

    setText($('rate'), page.poolRates.length > 1 ? rateText(poolRate) : '–');
    if (!poolSpark) {
      poolSpark = sparkline(300, 34);
      $('pool-spark').append(poolSpark.svg);
    }
    drawSpark(poolSpark, page.poolRates.slice(1));

    const d = st.strategy_details || {};
    setText($('strategy'), st.strategy);
    const ph = d.passive_health;
    kv($('strategy-details'), [
      d.hash_key && ['hash key', d.hash_key],
      d.sticky_cookie && ['sticky cookie', d.sticky_cookie],
      ['slow start', d.slow_start && d.slow_start !== '0s' ? d.slow_start : 'off'],
      ['passive health', ph ? `eject after ${ph.consecutive_failures} failures in a row (${(ph.failure_statuses || []).join(', ')}) for ${ph.ejection_time}, at most ${ph.max_ejected_percent}%` : 'off'],
      ['when all down', st.when_all_down + (st.when_all_down_in_effect ? ' — in effect' : ''), st.when_all_down_in_effect ? 'bad' : ''],
    ]);

    const q = st.queue || {};
    if (!q.max_requests_per_backend) {
      setText($('queue'), 'no limit');
      kv($('queue-details'), [['per backend', 'unlimited: requests never wait']]);
    } else {
      setText($('queue'), `${fmt.format(q.length)} / ${fmt.format(q.max)} waiting`);
      kv($('queue-details'), [
        ['per backend', `${fmt.format(q.max_requests_per_backend)} at once`],
        ['timeout', q.timeout],
      ]);
    }

    const c = st.config;
    if (c) {
      setText($('generation'), c.generation);
      const bad = c.last_reload && c.last_reload !== 'ok';
      kv($('config-details'), [
        ['loaded', c.loaded_at ? `${ago(c.loaded_at)} (${localTime(c.loaded_at)})` : '–'],
        ['last reload', c.last_reload || '–', bad ? 'bad' : ''],
      ]);
    } else {
      setText($('generation'), '–');
      kv($('config-details'), [['config', 'not reported by this server']]);
    }

    const banner = $('banner');
    if (st.when_all_down_in_effect) {
      banner.hidden = false;
      setClass(banner, 'banner warn');
      setText(banner, 'No backend is up: when_all_down "try_all" is in effect, so requests go to every ready backend whatever its health.');
    } else if (st.active_backends === 0 && st.total_backends > 0) {
      banner.hidden = false;
      setClass(banner, 'banner');
      setText(banner, 'No backend is taking requests: clients get 503.');
    } else {
      banner.hidden = true;
    }
  }

  // A row holds the elements that change, found once when it is built.
  function buildRow(url) {
    const r = { url, kind: '' };
    r.tr = el('tr', { 'data-url': url });
    r.urlText = el('span', { class: 'url-text', text: url });
    r.tags = el('span', { class: 'tags' });
    r.stateBadge = el('span', { class: 'badge' });
    r.since = el('span', { class: 'for' });
    r.reason = el('span', { class: 'sub clip' });
    // The admin state shows here unless it is "ready", the default, and
    // always as the pressed button among the actions.
    r.adminBadge = el('span', { class: 'badge' });
    r.weight = el('span', { class: 'weight-value' });
    r.effective = el('span', { class: 'sub' });
    r.inflight = el('span');
    r.requests = el('span', { class: 'sub nowrap' });
    r.spark = sparkline(64, 22);
    r.rate = el('span');
    r.weightSlot = el('span', { class: 'weight-slot' });
    r.errRate = el('span', { class: 'err-rate' });
    r.classes = el('span', { class: 'sub nowrap' });
    r.failures = el('span');
    r.failSub = el('span', { class: 'sub' });
    r.check = el('span', { class: 'line' });
    r.checkSub = el('span', { class: 'sub clip' });
    r.actions = el('td', { class: 'actions', 'data-label': 'actions' });
    r.tr.append(
      el('td', { class: 'url', 'data-label': 'backend' }, r.urlText, r.tags),
      el('td', { class: 'state', 'data-label': 'state' }, el('span', { class: 'line' }, r.stateBadge, r.adminBadge, r.since), r.reason),
      el('td', { class: 'num weight', 'data-label': 'weight' }, el('span', { class: 'line' }, r.weight, r.weightSlot), r.effective),
      el('td', { class: 'num', 'data-label': 'in flight' }, r.inflight),
      el('td', { class: 'num', 'data-label': 'requests/s · total' },
        el('span', { class: 'rate-cell' }, el('span', { class: 'spark' }, r.spark.svg), r.rate), r.requests),
      el('td', { class: 'num', 'data-label': '5xx rate' }, r.errRate, r.classes),
      el('td', { class: 'num', 'data-label': 'retries / conn. failures' }, r.failures, r.failSub),
      el('td', { class: 'check', 'data-label': 'last check' }, r.check, r.checkSub),
      r.actions,
    );
    return r;
  }

  function buildActions(r, kind) {
    r.kind = kind;
    if (kind === 'draining') {
      // Removed, finishing what is in flight: adding it back revives it.
      r.adminButtons = null;
      r.weightSlot.replaceChildren();
      r.actions.replaceChildren(
        el('button', { type: 'button', 'data-action': 'readd', title: 'add this backend back to the pool', text: 'add back' }));
      return;
    }
    const group = el('span', { class: 'group', role: 'group', 'aria-label': 'admin state' });
    r.adminButtons = {};
    for (const [state, label, title] of [
      ['ready', 'ready', 'health decides: takes requests when up'],
      ['drain', 'drain', 'no new requests except sticky sessions; in flight finishes'],
      ['maintenance', 'maint.', 'no requests at all, no health checks'],
    ]) {
      const b = el('button', { type: 'button', 'data-action': 'admin', 'data-state': state, title, text: label, 'aria-pressed': 'false' });
      r.adminButtons[state] = b;
      group.append(b);
    }
    r.weightInput = el('input', { type: 'number', name: 'weight', min: 1, max: 1000, step: 1, 'aria-label': 'new weight' });
    const form = el('form', { class: 'weight-form', 'data-action': 'weight', noValidate: true },
      r.weightInput, el('button', { type: 'submit', text: 'set' }));
    r.removeButton = el('button', { type: 'button', class: 'danger', 'data-action': 'remove', text: 'remove', title: 'take it out of the pool; requests in flight finish' });
    // The weight is edited where it is shown.
    r.weightSlot.replaceChildren(form);
    r.actions.replaceChildren(group, r.removeButton);
  }

  function updateRow(r, b) {
    const kind = b.state === 'draining' ? 'draining' : 'member';
    if (r.kind !== kind) buildActions(r, kind);
    setClass(r.tr, 'state-' + b.state);
    setAttr(r.tr, 'data-state', b.state);
    setAttr(r.tr, 'data-admin-state', b.admin_state);

    const tagKey = `${b.source || ''}|${b.state === 'draining'}`;
    if (r.tags.dataset.key !== tagKey) {
      r.tags.dataset.key = tagKey;
      const tags = [];
      if (b.source) tags.push(el('span', { class: 'badge source', title: 'discovered: this backend comes from a discovery source', text: 'discovered: ' + b.source }));
      if (b.state === 'draining') tags.push(el('span', { class: 'badge draining', title: 'removed; listed until its last request ends', text: 'removed, draining' }));
      r.tags.replaceChildren(...tags);
      r.tags.hidden = tags.length === 0;
    }

    setText(r.stateBadge, b.state);
    setClass(r.stateBadge, 'badge ' + b.state);
    setText(r.reason, b.reason || '');
    setAttr(r.reason, 'title', b.reason || '');
    setText(r.since, 'for ' + duration((serverNow() - Date.parse(b.since)) / 1000));
    setAttr(r.since, 'title', 'since ' + localTime(b.since));

    setText(r.adminBadge, b.admin_state);
    setClass(r.adminBadge, 'badge ' + b.admin_state);
    r.adminBadge.hidden = b.admin_state === 'ready';

    setText(r.weight, b.weight);
    const eff = b.effective_weight;
    setText(r.effective, eff !== undefined && Math.abs(eff - b.weight) > 1e-9 ? 'effective ' + fmt2.format(eff) : '');

    setText(r.inflight, fmt.format(b.current_connections));
    setText(r.requests, fmt.format(b.total_requests) + ' total');

    const h = page.history.get(b.url) || [];
    const series = rates(h);
    drawSpark(r.spark, series.length ? series : [0]);
    const lr = latestRate(h);
    setText(r.rate, rateText(lr));
    setAttr(r.spark.svg.parentElement, 'title', series.length ? `last ${duration(series.length * POLL_MS / 1000)}: peak ${rateText(Math.max(...series))} req/s` : '');

    const resp = responsesOf(b);
    setText(r.errRate, resp.rate === null ? '–' : fmt1.format(resp.rate * 100) + '%');
    setClass(r.errRate, 'err-rate' + (resp.rate === null ? '' : resp.rate > 0.05 ? ' bad' : resp.rate > 0.01 ? ' warn' : ''));
    const classes = Object.keys(resp.byClass).sort().filter((k) => resp.byClass[k] > 0).map((k) => `${k} ${fmt.format(resp.byClass[k])}`);
    setText(r.classes, classes.join(' · '));

    setText(r.failures, `${fmt.format(b.retries)} / ${fmt.format(b.connection_failures)}`);
    const extra = [];
    if (b.ejections) extra.push(`${fmt.format(b.ejections)} ejections`);
    if (b.truncated_responses) extra.push(`${fmt.format(b.truncated_responses)} truncated`);
    setText(r.failSub, extra.join(' · '));

    const c = b.last_check;
    if (c) {
      setText(r.check, `${c.ok ? '✓' : '✗'} ${ago(c.time)} · ${fmt2.format(c.duration_ms)} ms`);
      setClass(r.check, 'line ' + (c.ok ? 'check-ok' : 'check-fail'));
      const sub = (c.reason || '') + (b.failures ? ` · ${fmt.format(b.failures)} failed` : '');
      setText(r.checkSub, sub);
      setAttr(r.checkSub, 'title', sub);
      setAttr(r.check, 'title', localTime(c.time));
    } else {
      setText(r.check, b.admin_state === 'maintenance' ? 'not checked' : 'none yet');
      setClass(r.check, 'line');
      setText(r.checkSub, '');
    }

    if (r.adminButtons) {
      for (const [state, btn] of Object.entries(r.adminButtons)) {
        const on = state === b.admin_state;
        setAttr(btn, 'aria-pressed', on ? 'true' : 'false');
        if (btn.disabled !== on) btn.disabled = on;
      }
      setAttr(r.weightInput, 'placeholder', String(b.weight));
    }

    r.sortValues = {
      url: b.url,
      state: STATE_ORDER[b.state] ?? 9,
      admin: ADMIN_ORDER[b.admin_state] ?? 9,
      weight: b.weight,
      inflight: b.current_connections,
      rate: lr ?? -1,
      errors: resp.rate ?? -1,
      failures: b.retries + b.connection_failures,
      check: c ? c.duration_ms : -1,
    };
    r.search = [b.url, b.state, b.reason, b.admin_state, b.source, b.source ? 'discovered' : '',
                b.last_check && b.last_check.reason].filter(Boolean).join(' ').toLowerCase();
  }

  function renderRows(st) {
    const tbody = $('backends').tBodies[0];
    const seen = new Set();
    for (const b of st.backends) {
      seen.add(b.url);
      let r = page.rows.get(b.url);
      if (!r) {
        r = buildRow(b.url);
        page.rows.set(b.url, r);
      }
      updateRow(r, b);
    }
    for (const [url, r] of page.rows) {
      if (!seen.has(url)) {
        r.tr.remove();
        page.rows.delete(url);
      }
    }
    arrange(tbody);
    $('empty').hidden = st.backends.length > 0;
  }

  // arrange sorts and filters the rows. It moves rows only when the order
  // changed, and not while something in the table has the focus: moving a
  // row out of the document would take it away.
  function arrange(tbody) {
    const rows = [...page.rows.values()];
    const key = page.sortKey, dir = page.sortDir;
    rows.sort((a, b) => {
      const x = a.sortValues[key], y = b.sortValues[key];
      let c = typeof x === 'string' ? x.localeCompare(y) : x - y;
      if (c === 0) c = a.url.localeCompare(b.url);
      return c * dir;
    });
    let shown = 0;
    for (const r of rows) {
      const visible = page.filter.every((term) => r.search.includes(term));
      if (r.tr.hidden === visible) r.tr.hidden = !visible;
      if (visible) shown++;
    }
    const current = [...tbody.rows];
    const same = current.length === rows.length && rows.every((r, i) => current[i] === r.tr);
    if (!same && !tbody.contains(document.activeElement)) {
      tbody.append(...rows.map((r) => r.tr));
    }
    setText($('shown'), page.filter.length ? `${shown} of ${rows.length} shown` : `${rows.length} backends`);
  }

  // ---- actions ----

  function message(what, text, ok) {
    const list = $('messages');
    const close = el('button', { type: 'button', class: 'quiet', text: 'dismiss', 'aria-label': 'dismiss' });
    const li = el('li', { class: ok ? 'ok' : 'error' },
      el('span', { class: 'what', text: what }), el('span', { class: 'text', text }), close);
    close.addEventListener('click', () => li.remove());
    list.prepend(li);
    while (list.children.length > MAX_MESSAGES) list.lastElementChild.remove();
    if (ok) setTimeout(() => li.remove(), 4000);
  }

  // act sends one change and says how it went; it returns the answer, or
  // null when there was none.
  async function act(what, method, body) {
    let r = null;
    try {
      r = await call(method, 'backends', body);
      if (r.ok) {
        message(what, r.data && r.data.state ? `done: now ${r.data.state}, ${r.data.admin_state}, weight ${r.data.weight}` : 'done', true);
      } else {
        // The API's own words, as it wrote them.
        message(what + ` (${r.status})`, errorText(r), false);
      }
    } catch (e) {
      message(what, `not sent: ${e.message || e}`, false);
    }
    poll();
    return r;
  }

  function disarm(btn) {
    clearTimeout(btn._disarm);
    btn.classList.remove('armed');
    btn.textContent = 'remove';
  }

  function onTableClick(ev) {
    const th = ev.target.closest('th[data-key]');
    if (th) {
      const key = th.dataset.key;
      if (page.sortKey === key) page.sortDir = -page.sortDir;
      else { page.sortKey = key; page.sortDir = 1; }
      for (const h of document.querySelectorAll('#backends th[data-key]')) {
        setAttr(h, 'aria-sort', h.dataset.key === key ? (page.sortDir > 0 ? 'ascending' : 'descending') : null);
      }
      arrange($('backends').tBodies[0]);
      return;
    }
    const btn = ev.target.closest('button[data-action]');
    if (!btn) return;
    const url = btn.closest('tr').dataset.url;
    const row = page.rows.get(url);
    switch (btn.dataset.action) {
      case 'admin':
        act(`${btn.dataset.state} ${url}`, 'PATCH', { url, admin_state: btn.dataset.state });
        break;
      case 'remove':
        // Two clicks, so that a slip of the finger does not remove a backend.
        if (!btn.classList.contains('armed')) {
          btn.classList.add('armed');
          btn.textContent = 'confirm remove';
          btn._disarm = setTimeout(() => disarm(btn), 4000);
        } else {
          disarm(btn);
          act(`remove ${url}`, 'DELETE', { url });
        }
        break;
      case 'readd':
        act(`add back ${url}`, 'POST', row && row.sortValues ? { url, weight: row.sortValues.weight } : { url });
        break;
    }
  }

  function onTableSubmit(ev) {
    const form = ev.target.closest('form[data-action="weight"]');
    if (!form) return;
    ev.preventDefault();
    const url = form.closest('tr').dataset.url;
    const input = form.elements.weight;
    const raw = input.value.trim();
    if (raw === '') {
      input.focus();
      return;
    }
    // Sent as the number typed, unchecked: the API says what is wrong with it.
    const weight = Number(raw);
    input.value = '';
    input.blur();
    act(`weight ${raw} for ${url}`, 'PATCH', { url, weight });
  }

  function onAdd(ev) {
    ev.preventDefault();
    const url = $('add-url').value.trim();
    const w = $('add-weight').value.trim();
    const body = { url };
    if (w !== '') body.weight = Number(w);
    act(`add ${url || '(no URL)'}`, 'POST', body).then((r) => {
      // Cleared only once added, so that a refused URL can be corrected.
      if (r && r.ok) {
        $('add-url').value = '';
        $('add-weight').value = '';
      }
    });
  }

  function onFilter() {
    page.filter = $('filter').value.toLowerCase().split(/\s+/).filter(Boolean);
    arrange($('backends').tBodies[0]);
  }

  function start() {
    $('backends').addEventListener('click', onTableClick);
    $('backends').addEventListener('submit', onTableSubmit);
    $('add-form').addEventListener('submit', onAdd);
    $('filter').addEventListener('input', onFilter);
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const t = $('token-input').value.trim();
      if (!t) return;
      $('token-input').value = '';
      $('token-dialog').close();
      tokenGiven(t);
    });
    $('token-dialog').addEventListener('close', () => {
      if (page.tokenWaiters) updateTokenButton(true);
    });
    $('token-button').addEventListener('click', () => {
      if (page.tokenWaiters) {
        $('token-dialog').showModal();
        $('token-input').focus();
        updateTokenButton(true);
        return;
      }
      page.token = '';
      sessionStorage.removeItem(TOKEN_KEY);
      updateTokenButton(false);
      poll();
    });
    const th = document.querySelector(`#backends th[data-key="${page.sortKey}"]`);
    if (th) th.setAttribute('aria-sort', 'ascending');
    updateTokenButton(false);
    poll();
  }

  start();
})();
