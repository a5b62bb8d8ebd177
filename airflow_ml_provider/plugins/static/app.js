/* The "Models" page of airflow-ml-provider: models, versions, gate verdicts, champion history, lineage.
 *
 * Plain ES2020, no dependencies and no build step: the plugin serves this file as is, offline.
 * Every value from the API is user-controlled (model names, tags, reasons, params, paths), so the
 * DOM is built with createElement/textContent only and attributes with setAttribute; a URL goes into
 * an href only when it is http(s):// or a same-origin absolute path.
 */
'use strict';

(() => {
  // ---------------------------------------------------------------- where we are served from
  // The page is served at <prefix>/, <prefix>/models/..., <prefix>/runs/... and its assets at
  // <prefix>/static/. Airflow may itself live under a sub-path, so the prefix comes from this
  // script's own URL rather than being assumed to be "/ml".
  const SCRIPT = document.currentScript;
  const PREFIX = (() => {
    try {
      const path = new URL(SCRIPT.src, location.href).pathname;
      const at = path.lastIndexOf('/static/');
      if (at >= 0) return path.slice(0, at);
    } catch (e) {
      /* fall through */
    }
    return '/ml';
  })();
  // Airflow's own base path: the plugin is mounted one segment below it.
  const AIRFLOW = PREFIX.replace(/\/[^/]*$/, '');
  const SVGNS = 'http://www.w3.org/2000/svg';
  const seg = encodeURIComponent;

  // ---------------------------------------------------------------- DOM helpers (text only)
  function safeHref(url) {
    if (url === null || url === undefined) return null;
    const s = String(url);
    if (/^https?:\/\//i.test(s)) return s;
    if (s.startsWith('/') && !s.startsWith('//')) return s;
    return null;
  }

  function setAttrs(node, attrs) {
    if (!attrs) return;
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'href') {
        const href = safeHref(value);
        if (href) node.setAttribute('href', href);
      } else if (key === 'style' && typeof value === 'object') {
        // through the CSSOM: the plugin's Content-Security-Policy (style-src 'self') drops style attributes
        for (const [prop, v] of Object.entries(value)) node.style.setProperty(prop, String(v));
      } else if (key.startsWith('on') && typeof value === 'function') {
        node.addEventListener(key.slice(2), value);
      } else {
        node.setAttribute(key, value === true ? '' : String(value));
      }
    }
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    return append(node, children);
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVGNS, tag);
    setAttrs(node, attrs);
    return append(node, children);
  }

  const $ = (sel) => document.querySelector(sel);

  // ---------------------------------------------------------------- formatting
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

  function fmtNum(v) {
    if (!isNum(v)) return '—';
    if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
    if (Math.abs(v) >= 1000) return v.toFixed(0);
    if (Math.abs(v) >= 100) return v.toFixed(1);
    return v.toFixed(4);
  }

  function fmtDelta(candidate, champion) {
    if (!isNum(candidate) || !isNum(champion)) return '';
    const d = candidate - champion;
    if (d === 0) return '±0';
    return (d > 0 ? '+' : '−') + fmtNum(Math.abs(d));
  }

  const pad2 = (n) => String(n).padStart(2, '0');

  function timeEl(iso) {
    if (!iso) return el('span', { class: 'muted' }, '—');
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return el('span', null, String(iso));
    const text = `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
    return el('time', { datetime: String(iso), title: d.toString() }, text);
  }

  function short(text, max) {
    const s = String(text ?? '');
    return s.length > max ? s.slice(0, max - 1) + '…' : s;
  }

  // "blake3:<64 hex>": twelve hex digits are enough to tell fingerprints apart by eye; the full one is in the tooltip.
  const fp12 = (fp) => (fp ? String(fp).replace(/^[a-z0-9]+:/i, '').slice(0, 12) : null);

  function basename(uri) {
    const s = String(uri ?? '').replace(/[?#].*$/, '').replace(/\/+$/, '');
    const at = s.lastIndexOf('/');
    return at >= 0 ? s.slice(at + 1) || s : s;
  }

  /** ``models:/<name>/<version>`` or a bare version of ``name`` -> {name, version}, else null. */
  function modelRef(ref, name) {
    if (ref === null || ref === undefined || ref === '') return null;
    const s = String(ref);
    const m = /^models:\/(.+)\/(\d+)$/.exec(s);
    if (m) return { name: m[1], version: m[2] };
    if (/^\d+$/.test(s)) return { name, version: s };
    return null;
  }

  function refLink(ref, name) {
    const r = modelRef(ref, name);
    if (!r) return el('span', { class: 'mono' }, String(ref));
    return pageLink(urls.version(r.name, r.version), r.name === name ? `v${r.version}` : `${r.name} v${r.version}`);
  }

  const versionNumber = (v) => (/^\d+$/.test(String(v)) ? Number(v) : NaN);

  // ---------------------------------------------------------------- URLs
  const urls = {
    models: () => `${PREFIX}/`,
    model: (name) => `${PREFIX}/models/${seg(name)}`,
    version: (name, version) => `${PREFIX}/models/${seg(name)}/versions/${seg(version)}`,
  };
  const airflowUrls = {
    dag: (dagId) => `${AIRFLOW}/dags/${seg(dagId)}`,
    dagRun: (dagId, runId) => `${AIRFLOW}/dags/${seg(dagId)}/runs/${seg(runId)}`,
    task: (a) => {
      let url = `${AIRFLOW}/dags/${seg(a.dag_id)}/runs/${seg(a.run_id)}/tasks/${seg(a.task_id)}`;
      if (isNum(a.map_index) && a.map_index >= 0) url += `/mapped/${a.map_index}`;
      return url;
    },
    login: (next) => `${AIRFLOW}/auth/login/?next=${seg(next)}`,
  };

  // MLflow's UI answers "#/runs/<id>" for any experiment: derive its base from a link the API gave.
  function mlflowRunUrl(knownRunUrl, runId) {
    const base = safeHref(knownRunUrl);
    if (!base || !runId) return null;
    const at = base.indexOf('#/');
    if (at < 0) return null;
    return `${base.slice(0, at)}#/runs/${seg(runId)}`;
  }

  // ---------------------------------------------------------------- links and navigation
  // data-nav="page": inside this page (pushState); "airflow": a page of the Airflow UI; "out": MLflow.
  const pageLink = (href, ...children) => el('a', { href, 'data-nav': 'page' }, ...children);
  const onAirflow = (href) =>
    AIRFLOW && typeof href === 'string' && href.startsWith('/') && !href.startsWith(`${AIRFLOW}/`) ? AIRFLOW + href : href;
  const airflowLink = (href, ...children) =>
    safeHref(href) ? el('a', { href: onAirflow(href), 'data-nav': 'airflow' }, ...children) : el('span', null, ...children);
  const outLink = (href, ...children) =>
    safeHref(href)
      ? el('a', { href, 'data-nav': 'out', target: '_blank', rel: 'noopener noreferrer' }, ...children, ' ↗')
      : null;

  /** The Airflow UI's window when this page is in its iframe (same origin), else null. */
  function hostWindow() {
    try {
      if (window.top !== window && window.top.document) return window.top;
    } catch (e) {
      /* cross-origin host */
    }
    return null;
  }

  // Airflow's iframe is sandboxed without allow-top-navigation / allow-popups: a link clicked in it
  // cannot leave the frame. An anchor clicked in the host's own document can, so we click one there.
  function followInHost(href, newTab) {
    const host = hostWindow();
    if (!host) return false;
    try {
      const a = host.document.createElement('a');
      a.setAttribute('href', href);
      if (newTab) {
        a.setAttribute('target', '_blank');
        a.setAttribute('rel', 'noopener noreferrer');
      }
      a.style.display = 'none';
      host.document.body.appendChild(a);
      a.click();
      a.remove();
      return true;
    } catch (e) {
      return false;
    }
  }

  // Airflow updates its own address bar from the iframe's location on the iframe's load event;
  // pushState fires none, so tell it, and /plugin/models/... stays a deep link to what is shown.
  function syncHostUrl() {
    try {
      if (window.frameElement) window.frameElement.dispatchEvent(new Event('load'));
    } catch (e) {
      /* not embedded, or cross-origin */
    }
  }

  function navigate(href, replace) {
    if (replace) history.replaceState(null, '', href);
    else history.pushState(null, '', href);
    syncHostUrl();
    render();
  }

  document.addEventListener('click', (ev) => {
    const a = ev.target instanceof Element ? ev.target.closest('a[data-nav]') : null;
    if (!a || ev.defaultPrevented || ev.button !== 0) return;
    const href = a.getAttribute('href');
    if (!href) return;
    const kind = a.getAttribute('data-nav');
    const modified = ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey;
    if (kind === 'page' && !modified) {
      ev.preventDefault();
      if (href !== location.pathname + location.search) navigate(href);
    } else if (kind === 'airflow' && !modified) {
      if (followInHost(href, false)) ev.preventDefault();
    } else if (kind === 'out' || (kind === 'airflow' && modified)) {
      if (hostWindow() && followInHost(href, true)) ev.preventDefault();
    }
  });

  window.addEventListener('popstate', () => {
    syncHostUrl();
    render();
  });

  // ---------------------------------------------------------------- theme: follow Airflow's
  // Airflow puts class "dark"/"light" on its <html>; without a host, prefers-color-scheme rules.
  const HOST_TOKENS = [
    ['--bg', '--chakra-colors-bg'],
    ['--card', '--chakra-colors-bg'],
    ['--bg-subtle', '--chakra-colors-bg-subtle'],
    ['--bg-muted', '--chakra-colors-bg-muted'],
    ['--fg', '--chakra-colors-fg'],
    ['--fg-muted', '--chakra-colors-fg-muted'],
    ['--accent', '--chakra-colors-fg-info'],
  ];

  function followHostTheme() {
    const host = hostWindow();
    if (!host) {
      // On its own: the browser's preference, kept up to date (one dark palette in app.css: :root.dark)
      const query = window.matchMedia('(prefers-color-scheme: dark)');
      const follow = () => document.documentElement.classList.toggle('dark', query.matches);
      follow();
      query.addEventListener('change', follow);
      return;
    }
    const root = host.document.documentElement;
    const ours = document.documentElement;
    const apply = () => {
      const dark = root.classList.contains('dark');
      const light = !dark && root.classList.contains('light');
      ours.classList.toggle('dark', dark);
      ours.classList.toggle('light', light);
      // Airflow's theme can be customised: take its colours where it defines them
      const theirs = host.getComputedStyle(root);
      for (const [name, token] of HOST_TOKENS) {
        const value = theirs.getPropertyValue(token).trim();
        if (value && /^[#a-z0-9(). ,%/-]+$/i.test(value)) ours.style.setProperty(name, value);
        else ours.style.removeProperty(name);
      }
    };
    apply();
    new MutationObserver(apply).observe(root, { attributes: true, attributeFilter: ['class', 'style'] });
  }

  // ---------------------------------------------------------------- API
  class ApiError extends Error {
    constructor(status, detail, what) {
      super(`${status}: ${detail}`);
      this.status = status;
      this.detail = detail;
      this.what = what;
    }
  }

  function detailOf(body) {
    if (!body || typeof body !== 'object') return null;
    const d = body.detail;
    if (d === undefined || d === null) return null;
    if (typeof d === 'string') return d;
    if (Array.isArray(d)) return d.map((x) => (x && typeof x === 'object' && 'msg' in x ? String(x.msg) : JSON.stringify(x))).join('; ');
    return JSON.stringify(d);
  }

  async function getJson(path, signal, what) {
    let resp;
    try {
      resp = await fetch(`${PREFIX}/api${path}`, {
        credentials: 'same-origin',
        headers: { Accept: 'application/json' },
        signal,
      });
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw new ApiError(0, `the Airflow API server did not answer (${e && e.message ? e.message : e})`, what);
    }
    const text = await resp.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (e) {
      body = null;
    }
    if (!resp.ok) throw new ApiError(resp.status, detailOf(body) || short(text, 300) || resp.statusText, what);
    if (body === null || typeof body !== 'object') {
      throw new ApiError(
        resp.status,
        `the answer to ${PREFIX}/api${path} is not JSON: is the airflow-ml-provider plugin installed on this api-server?`,
        what,
      );
    }
    return body;
  }

  // ---------------------------------------------------------------- errors
  function clearError() {
    const box = $('#error');
    box.hidden = true;
    box.replaceChildren();
  }

  function showError(err) {
    const box = $('#error');
    box.replaceChildren();
    box.hidden = false;
    const what = (err && err.what) || 'this page';
    if (!(err instanceof ApiError)) {
      append(box, [el('strong', null, 'The page failed: '), String(err && err.message ? err.message : err)]);
      console.error(err);
      return;
    }
    box.setAttribute('data-status', String(err.status));
    if (err.status === 401) {
      const host = hostWindow();
      const next = host ? host.location.href : location.href;
      append(box, [
        el('strong', null, 'Not logged in to Airflow.'),
        ' ',
        airflowLink(airflowUrls.login(next), 'Log in'),
        ' to see the models.',
      ]);
    } else if (err.status === 403) {
      append(box, [
        el('strong', null, `You do not have access to ${what}.`),
        ' Ask an Airflow admin for read access to the DAG that produced it.',
        err.detail ? el('div', { class: 'detail' }, err.detail) : null,
      ]);
    } else if (err.status === 404) {
      append(box, [el('strong', null, `${capital(what)} not found.`), err.detail ? el('div', { class: 'detail' }, err.detail) : null, ' ', pageLink(urls.models(), 'All models')]);
    } else if (err.status === 0) {
      append(box, [el('strong', null, `Could not load ${what}: `), err.detail]);
    } else {
      append(box, [el('strong', null, `Could not load ${what} (HTTP ${err.status}).`), el('div', { class: 'detail' }, err.detail || '')]);
    }
  }

  const capital = (s) => s.charAt(0).toUpperCase() + s.slice(1);

  // ---------------------------------------------------------------- small pieces
  const GATE = new Set(['passed', 'failed', 'pending', 'abandoned']);

  function gateBadge(status) {
    const known = GATE.has(status);
    return el('span', { class: `badge gate-${known ? status : 'unknown'}`, title: 'gate status' }, status || 'no gate');
  }

  function passBadge(passed) {
    return el('span', { class: `badge ${passed ? 'gate-passed' : 'gate-failed'}` }, passed ? 'PASS' : 'FAIL');
  }

  const star = () => el('span', { class: 'star', title: 'champion', 'aria-label': 'champion' }, '★');

  function chip(text, cls) {
    return el('span', { class: `chip${cls ? ' ' + cls : ''}` }, text);
  }

  function aliasChips(aliases) {
    const entries = Object.entries(aliases || {});
    if (!entries.length) return null;
    return el('span', { class: 'chips' }, entries.map(([alias, v]) => chip(`${alias}: v${v}`)));
  }

  function section(title, id, ...children) {
    return el('section', { class: 'card', id }, el('h2', null, title), ...children);
  }

  function table(attrs, headers, rows) {
    const thead = el('thead', null, el('tr', null, headers.map((h) => (h instanceof Node ? h : el('th', { scope: 'col' }, h)))));
    const tbody = el('tbody');
    const frag = document.createDocumentFragment();
    for (const row of rows) frag.appendChild(row);
    tbody.appendChild(frag);
    return el('div', { class: 'table-wrap' }, el('table', attrs, thead, tbody));
  }

  const td = (attrs, ...children) => el('td', attrs, ...children);
  const empty = (text) => el('p', { class: 'empty' }, text);

  function setCrumbs(parts) {
    const nav = $('#crumbs');
    nav.replaceChildren();
    parts.forEach((p, i) => {
      if (i) nav.appendChild(el('span', { class: 'sep', 'aria-hidden': 'true' }, '›'));
      nav.appendChild(p.href && i < parts.length - 1 ? pageLink(p.href, p.text) : el('span', { class: 'here' }, p.text));
    });
  }

  function eventText(e) {
    const kind = e.kind === 'rollback' ? 'Rollback' : 'Promotion';
    let s = `${kind}: ${e.alias || 'alias'} → v${e.version}`;
    if (e.previous) s += ` (was v${e.previous})`;
    if (e.at) s += `, ${new Date(e.at).toString() === 'Invalid Date' ? e.at : new Date(e.at).toLocaleString()}`;
    if (e.by) s += ` by ${e.by}`;
    return s;
  }

  // ---------------------------------------------------------------- view: all models
  async function viewModels(route, signal) {
    setCrumbs([{ text: 'Models' }]);
    const data = await getJson('/models', signal, 'the model list');
    document.title = 'Models';
    const models = Array.isArray(data.models) ? data.models : [];
    const head = el('div', { class: 'page-head' }, el('h1', null, 'Models'), el('span', { class: 'muted' }, `${models.length} registered`));
    if (!models.length) {
      return el('div', null, head, empty('No registered models yet. A model appears here once a DAG with an ml_train task has registered a version.'));
    }
    const rows = models.map((m) => {
      const latest = m.latest;
      const promo = m.last_promotion;
      return el(
        'tr',
        { 'data-model': m.name },
        td({ class: 'name' }, pageLink(urls.model(m.name), m.name), m.description ? el('div', { class: 'desc muted', title: m.description }, m.description) : null),
        td(null, m.champion ? [pageLink(urls.version(m.name, m.champion), `v${m.champion}`), ' ', star()] : el('span', { class: 'muted' }, 'none')),
        td(null, latest ? [pageLink(urls.version(m.name, latest.version), `v${latest.version}`), ' ', el('span', { class: 'muted small' }, timeEl(latest.created))] : el('span', { class: 'muted' }, '—')),
        td(null, latest ? gateBadge(latest.gate_status) : null),
        td({ class: 'num' }, isNum(m.versions) ? String(m.versions) : '—'),
        td(
          null,
          promo
            ? [
                pageLink(urls.version(m.name, promo.version), `v${promo.version}`),
                promo.previous ? el('span', { class: 'muted' }, ` from v${promo.previous}`) : el('span', { class: 'muted' }, ' (first)'),
                el('div', { class: 'muted small' }, promo.alias ? `${promo.alias} · ` : '', timeEl(promo.at), promo.by ? ` · ${promo.by}` : ''),
              ]
            : el('span', { class: 'muted' }, 'never'),
        ),
        td(null, aliasChips(m.aliases)),
      );
    });
    return el(
      'div',
      null,
      head,
      el('section', { class: 'card flush' }, table({ id: 'models-table', class: 'grid' }, ['Model', 'Champion', 'Latest version', 'Gate', 'Versions', 'Last promotion', 'Aliases'], rows)),
    );
  }

  // ---------------------------------------------------------------- view: one model
  async function viewModel(route, signal) {
    const name = route.name;
    setCrumbs([{ text: 'Models', href: urls.models() }, { text: name }]);
    const data = await getJson(`/models/${seg(name)}/versions`, signal, `model ${name}`);
    document.title = `${name} · Models`;
    const versions = Array.isArray(data.versions) ? data.versions : [];
    const events = Array.isArray(data.events) ? data.events : [];
    let metrics = Array.isArray(data.gate_metrics) ? data.gate_metrics.slice() : [];
    if (!metrics.length) {
      const seen = new Set();
      for (const v of versions) for (const k of Object.keys(v.metrics || {})) seen.add(k);
      metrics = [...seen].sort().slice(0, 6);
    }

    const head = el(
      'div',
      { class: 'page-head' },
      el('h1', null, name),
      data.champion ? el('span', { class: 'chip champion' }, '★ champion ', pageLink(urls.version(name, data.champion), `v${data.champion}`)) : el('span', { class: 'chip' }, 'no champion'),
      aliasChips(Object.fromEntries(Object.entries(data.aliases || {}).filter(([, v]) => String(v) !== String(data.champion)))),
      el('span', { class: 'muted' }, `${versions.length} version${versions.length === 1 ? '' : 's'}`),
    );

    const plots = el('div', { class: 'plots' });
    if (!versions.length) plots.appendChild(empty('No versions yet.'));
    else if (!metrics.length) plots.appendChild(empty('The gate recorded no metrics for these versions.'));
    else for (const m of metrics) plots.appendChild(metricPlot(name, m, versions, events, data.champion));

    const rows = versions.map((v) => versionRow(name, v, metrics));
    const headers = ['Version', 'Created', 'DAG run', 'Gate', ...metrics.map((m) => el('th', { scope: 'col', class: 'num' }, m)), 'Champion', 'Aliases', 'Reproduction of'];
    return el(
      'div',
      null,
      head,
      section('Gate metrics over versions', 'plots', plots, plotLegend()),
      section(`Versions`, 'versions', versions.length ? table({ id: 'versions-table', class: 'grid' }, headers, rows) : empty('No versions yet.')),
    );
  }

  function versionRow(name, v, metrics) {
    const cells = [
      td({ class: 'num' }, pageLink(urls.version(name, v.version), String(v.version))),
      td({ class: 'small' }, timeEl(v.created)),
      td({ class: 'run' }, v.dag_id && v.dag_run_id ? airflowLink(airflowUrls.dagRun(v.dag_id, v.dag_run_id), el('span', { class: 'dag' }, v.dag_id), ' ', el('span', { class: 'muted', title: v.dag_run_id }, short(v.dag_run_id, 40))) : el('span', { class: 'muted' }, '—')),
      td(null, gateBadge(v.gate_status)),
    ];
    const values = v.metrics || {};
    for (const m of metrics) cells.push(td({ class: 'num mono', title: isNum(values[m]) ? String(values[m]) : null }, fmtNum(values[m])));
    cells.push(td({ class: 'center' }, v.champion ? star() : null));
    cells.push(td(null, Array.isArray(v.aliases) && v.aliases.length ? el('span', { class: 'chips' }, v.aliases.map((a) => chip(a))) : null));
    cells.push(td(null, v.reproduction_of ? refLink(v.reproduction_of, name) : null));
    return el('tr', { class: v.champion ? 'is-champion' : null, 'data-version': v.version }, ...cells);
  }

  function plotLegend() {
    return el(
      'div',
      { class: 'legend muted small' },
      el('span', { class: 'lg lg-passed' }, '●'), ' gate passed ',
      el('span', { class: 'lg lg-failed' }, '●'), ' gate failed ',
      el('span', { class: 'lg lg-other' }, '●'), ' pending / none ',
      el('span', { class: 'lg lg-champion' }, '◉'), ' champion ',
      el('span', { class: 'lg lg-promotion' }, '┆'), ' promotion ',
      el('span', { class: 'lg lg-rollback' }, '┆'), ' rollback (hover for details; click the plot to open the nearest version)',
    );
  }

  function niceTicks(min, max, count) {
    const span = max - min;
    if (!(span > 0)) return [min];
    const raw = span / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || 10 * mag;
    const ticks = [];
    for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
    ticks.decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9) + (String(step / mag).includes('.') ? 1 : 0));
    return ticks;
  }

  function metricPlot(name, metric, versions, events, champion) {
    const W = 560, H = 210, L = 52, R = 22, T = 26, B = 30;
    const all = versions
      .map((v) => ({ n: versionNumber(v.version), v }))
      .filter((p) => !Number.isNaN(p.n))
      .sort((a, b) => a.n - b.n);
    const pts = all.filter((p) => isNum((p.v.metrics || {})[metric])).map((p) => ({ ...p, y: p.v.metrics[metric] }));
    const box = el('figure', { class: 'metric-plot', 'data-metric': metric });
    if (!pts.length) {
      append(box, [el('figcaption', null, metric), empty(`No version recorded ${metric}.`)]);
      return box;
    }
    let x0 = all[0].n, x1 = all[all.length - 1].n;
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    let y0 = Math.min(...pts.map((p) => p.y)), y1 = Math.max(...pts.map((p) => p.y));
    if (y0 === y1) { const d = Math.abs(y0) * 0.05 || 0.5; y0 -= d; y1 += d; }
    else { const d = (y1 - y0) * 0.08; y0 -= d; y1 += d; }
    const sx = (n) => L + ((n - x0) / (x1 - x0)) * (W - L - R);
    const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
    const f1 = (n) => n.toFixed(1);

    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'plot', role: 'img', preserveAspectRatio: 'xMidYMid meet' });
    const champPt = pts.find((p) => String(p.v.version) === String(champion));
    root.setAttribute('aria-label', `${metric} over versions ${all[0].n} to ${all[all.length - 1].n}` + (champPt ? `; champion v${champPt.v.version} = ${fmtNum(champPt.y)}` : ''));
    root.appendChild(svg('text', { x: L, y: 16, class: 'plot-title' }, metric));

    // axes and grid
    const axes = svg('g', { class: 'axes' });
    const yTicks = niceTicks(y0, y1, 5);
    for (const t of yTicks) {
      axes.appendChild(svg('line', { x1: L, x2: W - R, y1: f1(sy(t)), y2: f1(sy(t)), class: 'grid' }));
      axes.appendChild(svg('text', { x: L - 6, y: f1(sy(t) + 4), class: 'tick', 'text-anchor': 'end' }, t.toFixed(Math.min(yTicks.decimals || 0, 6))));
    }
    for (const t of niceTicks(x0, x1, 6).filter((t) => Number.isInteger(t))) {
      axes.appendChild(svg('line', { x1: f1(sx(t)), x2: f1(sx(t)), y1: H - B, y2: H - B + 4, class: 'axis' }));
      axes.appendChild(svg('text', { x: f1(sx(t)), y: H - B + 16, class: 'tick', 'text-anchor': 'middle' }, `v${t}`));
    }
    axes.appendChild(svg('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'axis' }));
    root.appendChild(axes);

    // promotions and rollbacks: one vertical marker per version, details in <title>
    const byVersion = new Map();
    for (const e of events) {
      const n = versionNumber(e.version);
      if (Number.isNaN(n) || n < x0 || n > x1) continue;
      if (!byVersion.has(n)) byVersion.set(n, []);
      byVersion.get(n).push(e);
    }
    const marks = svg('g', { class: 'events' });
    for (const [n, evs] of byVersion) {
      const kind = evs.some((e) => e.kind === 'rollback') ? 'rollback' : 'promotion';
      const x = f1(sx(n));
      marks.appendChild(
        svg(
          'g',
          { class: `event ${kind}`, 'data-version': String(n) },
          svg('title', null, evs.map(eventText).join('\n')),
          svg('line', { x1: x, x2: x, y1: T, y2: H - B, class: 'mark' }),
          svg('line', { x1: x, x2: x, y1: T, y2: H - B, class: 'hit' }),
        ),
      );
    }
    root.appendChild(marks);

    // the line: one path, broken where a version did not record the metric
    const d = [];
    let pen = false;
    const dots = { passed: [], failed: [], other: [] };
    for (const p of all) {
      const y = (p.v.metrics || {})[metric];
      if (!isNum(y)) { pen = false; continue; }
      const X = f1(sx(p.n)), Y = f1(sy(y));
      d.push(`${pen ? 'L' : 'M'}${X} ${Y}`);
      pen = true;
      const g = p.v.gate_status === 'passed' ? 'passed' : p.v.gate_status === 'failed' ? 'failed' : 'other';
      dots[g].push(`M${X} ${Y}h0`);
    }
    root.appendChild(svg('path', { d: d.join(''), class: 'line' }));
    // dots shrink as versions crowd the x axis, so that the line stays visible at a thousand versions
    const dot = Math.max(2, Math.min(5, ((W - L - R) / Math.max(1, x1 - x0)) * 0.9)).toFixed(1);
    for (const [g, parts] of Object.entries(dots)) if (parts.length) root.appendChild(svg('path', { d: parts.join(''), class: `dots dots-${g}`, 'stroke-width': dot }));

    if (champPt) {
      root.appendChild(
        svg(
          'g',
          { class: 'champion-point' },
          svg('title', null, `champion v${champPt.v.version}: ${metric} = ${champPt.y}`),
          svg('circle', { cx: f1(sx(champPt.n)), cy: f1(sy(champPt.y)), r: 6 }),
          svg('text', { x: f1(sx(champPt.n)), y: f1(sy(champPt.y) - 10), 'text-anchor': 'middle', class: 'champion-label' }, '★'),
        ),
      );
    }

    // hover: nearest version; click: open it
    const focus = svg('circle', { r: 4, class: 'focus', visibility: 'hidden' });
    const readout = svg('text', { x: W - R, y: 16, class: 'readout', 'text-anchor': 'end' });
    root.append(focus, readout);
    const xs = pts.map((p) => p.n);
    const nearest = (ev) => {
      const rect = root.getBoundingClientRect();
      if (!rect.width) return null;
      const vx = ((ev.clientX - rect.left) / rect.width) * W;
      const n = x0 + ((vx - L) / (W - L - R)) * (x1 - x0);
      let lo = 0, hi = xs.length - 1;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (xs[mid] < n) lo = mid + 1; else hi = mid; }
      if (lo > 0 && Math.abs(xs[lo - 1] - n) <= Math.abs(xs[lo] - n)) lo -= 1;
      return pts[lo];
    };
    root.addEventListener('mousemove', (ev) => {
      const p = nearest(ev);
      if (!p) return;
      focus.setAttribute('cx', f1(sx(p.n)));
      focus.setAttribute('cy', f1(sy(p.y)));
      focus.setAttribute('visibility', 'visible');
      readout.textContent = `v${p.v.version}: ${fmtNum(p.y)} (${p.v.gate_status || 'no gate'})`;
    });
    root.addEventListener('mouseleave', () => {
      focus.setAttribute('visibility', 'hidden');
      readout.textContent = '';
    });
    root.addEventListener('click', (ev) => {
      const p = nearest(ev);
      if (p) navigate(urls.version(name, p.v.version));
    });
    box.appendChild(root);
    return box;
  }

  // ---------------------------------------------------------------- view: one version
  async function viewVersion(route, signal, note) {
    const { name, version } = route;
    setCrumbs([{ text: 'Models', href: urls.models() }, { text: name, href: urls.model(name) }, { text: `version ${version}` }]);
    const d = await getJson(`/models/${seg(name)}/versions/${seg(version)}`, signal, `version ${version} of model ${name}`);
    document.title = `${name} v${version} · Models`;
    const links = d.links || {};
    const champ = d.champion;

    const status = el(
      'div',
      { class: 'page-head' },
      el('h1', null, d.name ?? name, el('span', { class: 'muted' }, ` version ${d.version ?? version}`)),
      gateBadge(d.gate_status),
      d.is_champion
        ? el('span', { class: 'chip champion' }, '★ champion')
        : el('span', { class: 'chip' }, 'not champion', champ ? [' — champion is ', pageLink(urls.version(name, champ), `v${champ}`)] : ' — no champion yet'),
    );

    const facts = el('dl', { class: 'facts' });
    const fact = (k, ...v) => append(facts, [el('dt', null, k), el('dd', null, ...v)]);
    fact('Created', timeEl(d.created));
    if (d.dag_id) {
      fact(
        'Produced by',
        safeHref(links.dag_run) || d.dag_run_id ? airflowLink(safeHref(links.dag_run) || airflowUrls.dagRun(d.dag_id, d.dag_run_id), d.dag_id, ' / ', d.dag_run_id || '') : d.dag_id,
        d.task_id ? [' · task ', airflowLink(links.task_instance, d.task_id)] : null,
      );
    }
    if (d.fingerprint) fact('Fingerprint', el('code', { title: d.fingerprint }, fp12(d.fingerprint)));
    if (d.reproduction_of) fact('Reproduction of', refLink(d.reproduction_of, name));
    const linkList = [
      outLink(links.mlflow_run, 'MLflow run'),
      outLink(links.mlflow_version, 'MLflow model version'),
      safeHref(links.task_instance) ? airflowLink(links.task_instance, 'Airflow task instance') : null,
      safeHref(links.dag_run) ? airflowLink(links.dag_run, 'Airflow DAG run') : null,
    ].filter(Boolean);
    fact('Links', linkList.length ? linkList.flatMap((a, i) => (i ? [' · ', a] : [a])) : el('span', { class: 'muted' }, 'none recorded'));

    return el(
      'div',
      null,
      note || null,
      status,
      el('section', { class: 'card' }, facts),
      verdictSection(d),
      evidenceSection(d, version),
      historySection(d),
      reproductionsSection(d, name),
      lineageSection(d.lineage, links),
    );
  }

  function verdictSection(d) {
    const v = d.verdict;
    if (!v) {
      return section('Gate verdict', 'verdict', el('p', { class: 'warning' }, d.verdict_problem || 'No verdict was recorded for this version.'));
    }
    const checks = Array.isArray(v.checks) ? v.checks : [];
    const rows = checks.map((c) => el('tr', { class: c.passed ? 'pass' : 'fail' }, td(null, c.name), td(null, passBadge(c.passed)), td({ class: 'reason' }, c.reason || '')));
    return section(
      'Gate verdict',
      'verdict',
      el('p', null, passBadge(v.passed), ` ${checks.filter((c) => c.passed).length} of ${checks.length} checks passed`, v.decided_at ? [' · decided ', timeEl(v.decided_at)] : null),
      checks.some((c) => !c.passed)
        ? el('p', { class: 'failed-checks' }, el('strong', null, 'Failed: '), checks.filter((c) => !c.passed).flatMap((c, i) => [i ? ', ' : '', el('code', null, c.name)]))
        : null,
      checks.length ? table({ id: 'verdict-table', class: 'grid' }, ['Check', 'Result', 'Reason'], rows) : empty('The verdict lists no checks.'),
    );
  }

  function evidenceSection(d, version) {
    const ev = d.evidence;
    if (!ev) return section('Evidence', 'evidence', empty('No evidence was recorded for this version.'));
    const parts = [];

    const cand = (ev.metrics && ev.metrics.candidate) || {};
    const ch = ev.metrics ? ev.metrics.champion : null;
    const chm = (ch && ch.metrics) || {};
    const names = [...Object.keys(cand), ...Object.keys(chm).filter((k) => !(k in cand))];
    const chLabel = ch && ch.version ? `Champion (v${ch.version})` : 'Champion';
    parts.push(el('h3', null, 'Metrics'));
    if (ch && ch.error) parts.push(el('p', { class: 'warning' }, `Champion metrics unavailable: ${ch.error}`));
    else if (!ch) parts.push(el('p', { class: 'muted small' }, 'There was no champion to compare with.'));
    if (names.length) {
      parts.push(
        table({ id: 'evidence-metrics', class: 'grid compact' }, ['Metric', el('th', { class: 'num' }, `Candidate (v${d.version ?? version})`), el('th', { class: 'num' }, chLabel), el('th', { class: 'num' }, 'Δ')],
          names.map((k) => el('tr', null, td(null, k), td({ class: 'num mono', title: isNum(cand[k]) ? String(cand[k]) : null }, fmtNum(cand[k])), td({ class: 'num mono', title: isNum(chm[k]) ? String(chm[k]) : null }, fmtNum(chm[k])), td({ class: 'num mono muted' }, fmtDelta(cand[k], chm[k]))))),
      );
    } else parts.push(empty('No metrics recorded.'));

    const suites = Array.isArray(ev.suites) ? ev.suites : [];
    parts.push(el('h3', null, 'Data expectation suites'));
    if (suites.length) {
      parts.push(
        table({ id: 'suites-table', class: 'grid compact' }, ['Role', 'Suite', 'Result', el('th', { class: 'num' }, 'Evaluated'), 'Failed expectations'],
          suites.map((s) => {
            const failed = Array.isArray(s.failed) ? s.failed : [];
            return el('tr', { class: s.success ? 'pass' : 'fail' }, td(null, s.role), td(null, s.suite), td(null, passBadge(s.success)), td({ class: 'num' }, isNum(s.evaluated) ? String(s.evaluated) : '—'), td(null, failed.length ? el('ul', { class: 'plain' }, failed.map((f) => el('li', null, f))) : el('span', { class: 'muted' }, 'none')));
          })),
      );
    } else parts.push(empty('No suites ran.'));

    const sc = ev.scenarios;
    parts.push(el('h3', null, 'Scenarios'));
    if (sc) {
      const results = Array.isArray(sc.results) ? sc.results : [];
      parts.push(el('p', null, `${sc.passed ?? 0} passed, ${sc.failed ?? 0} failed`));
      if (results.length) {
        parts.push(table({ id: 'scenarios-table', class: 'grid compact' }, ['Scenario', 'Result', 'Reason'],
          results.map((r) => el('tr', { class: r.passed ? 'pass' : 'fail' }, td(null, r.name), td(null, passBadge(r.passed)), td({ class: 'reason' }, r.reason || '')))));
      }
    } else parts.push(empty('No scenarios ran.'));
    return section('Evidence', 'evidence', ...parts);
  }

  function historySection(d) {
    const history = Array.isArray(d.history) ? d.history : [];
    if (!history.length) return section('Promotion history', 'history', empty('This version was never promoted or rolled back to.'));
    return section('Promotion history', 'history',
      table({ id: 'history-table', class: 'grid compact' }, ['When', 'Kind', 'Alias', 'Version', 'Previous', 'By'],
        history.map((e) => el('tr', { class: e.kind === 'rollback' ? 'rollback' : 'promotion' }, td({ class: 'small' }, timeEl(e.at)), td(null, el('span', { class: `chip ${e.kind === 'rollback' ? 'rollback' : 'promotion'}` }, e.kind || 'promotion')), td(null, e.alias || ''), td(null, `v${e.version}`), td(null, e.previous ? `v${e.previous}` : '—'), td(null, e.by || '—')))));
  }

  function reproductionsSection(d, name) {
    const reps = Array.isArray(d.reproductions) ? d.reproductions : [];
    if (!reps.length) return section('Reproductions', 'reproductions', empty('No reproduction of this version was registered.'));
    return section('Reproductions', 'reproductions',
      el('ul', { class: 'plain' }, reps.map((r) => el('li', null, pageLink(urls.version(name, r.version), `v${r.version}`), ' ', gateBadge(r.gate_status)))));
  }

  // ---------------------------------------------------------------- lineage graph
  /** A dataset's name for a node: its file name, or "<folder>/<hash…>" for content-addressed paths. */
  function datasetName(uri) {
    const name = basename(uri);
    if (!/^[0-9a-f]{16,}(\.\w+)?$/i.test(name)) return name;
    const parent = basename(String(uri).replace(/[?#].*$/, '').replace(/\/+$/, '').replace(/\/[^/]*$/, ''));
    return `${parent ? parent + '/' : ''}${name.slice(0, 8)}…`;
  }

  function nodeLabel(n) {
    if (n.kind === 'dataset') return { kind: n.role ? `dataset · ${n.role}` : 'dataset', name: datasetName(n.uri) || n.id, fp: fp12(n.fingerprint) };
    if (n.kind === 'model') return { kind: 'model', name: `${n.name ?? '?'} v${n.version ?? '?'}`, fp: fp12(n.fingerprint) };
    if (n.kind === 'step') return { kind: n.status ? `step · ${n.status}` : 'step', name: n.step || (n.airflow && n.airflow.task_id) || n.id, fp: null };
    return { kind: n.kind || 'node', name: n.id, fp: null };
  }

  function nodeTooltip(n) {
    const lines = [n.id];
    if (n.uri) lines.push(`uri: ${n.uri}`);
    if (n.fingerprint) lines.push(`fingerprint: ${n.fingerprint}`);
    if (isNum(n.rows)) lines.push(`rows: ${n.rows}`);
    if (n.airflow && n.airflow.dag_id) lines.push(`airflow: ${n.airflow.dag_id} / ${n.airflow.run_id} / ${n.airflow.task_id}`);
    if (n.mlflow_run_id) lines.push(`mlflow run: ${n.mlflow_run_id}`);
    if (n.error) lines.push(`error: ${n.error}`);
    lines.push('(click for details)');
    return lines.join('\n');
  }

  /** Columns by depth (longest path from a source), rows ordered to follow their inputs. */
  function layout(nodes, edges) {
    const ids = nodes.map((n) => n.id);
    const inc = new Map(ids.map((i) => [i, []]));
    const out = new Map(ids.map((i) => [i, []]));
    for (const e of edges) {
      if (inc.has(e.to) && out.has(e.from)) { inc.get(e.to).push(e.from); out.get(e.from).push(e.to); }
    }
    const depth = new Map();
    const indeg = new Map(ids.map((i) => [i, inc.get(i).length]));
    const queue = ids.filter((i) => indeg.get(i) === 0);
    queue.forEach((i) => depth.set(i, 0));
    for (let k = 0; k < queue.length; k++) {
      const i = queue[k];
      for (const j of out.get(i)) {
        depth.set(j, Math.max(depth.get(j) ?? 0, depth.get(i) + 1));
        indeg.set(j, indeg.get(j) - 1);
        if (indeg.get(j) === 0) queue.push(j);
      }
    }
    for (const i of ids) if (!depth.has(i)) depth.set(i, Math.max(0, ...inc.get(i).map((p) => (depth.has(p) ? depth.get(p) + 1 : 0)))); // cycles
    for (const i of ids) {
      if (inc.get(i).length || !out.get(i).length) continue;
      depth.set(i, Math.max(0, Math.min(...out.get(i).map((j) => depth.get(j))) - 1));
    }
    const cols = [];
    for (const i of ids) (cols[depth.get(i)] = cols[depth.get(i)] || []).push(i);
    const pos = new Map();
    cols.forEach((col, c) => {
      if (c > 0) {
        const bary = (i) => { const ps = inc.get(i).filter((p) => pos.has(p)); return ps.length ? ps.reduce((s, p) => s + pos.get(p), 0) / ps.length : Infinity; };
        col.sort((a, b) => bary(a) - bary(b));
      }
      col.forEach((i, r) => pos.set(i, r));
    });
    return { cols: cols.map((c) => c || []), depth, pos };
  }

  function lineageSection(lin, links) {
    if (!lin || !Array.isArray(lin.nodes) || !lin.nodes.length) {
      return section('Lineage', 'lineage', el('p', { class: 'warning' }, lin && Array.isArray(lin.problems) && lin.problems.length ? lin.problems.join('; ') : 'No lineage was recorded for this version.'));
    }
    const nodes = lin.nodes.filter((n) => n && n.id !== undefined);
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const edges = (Array.isArray(lin.edges) ? lin.edges : []).filter((e) => e && byId.has(e.from) && byId.has(e.to));
    const { cols, pos, depth } = layout(nodes, edges);
    const NW = 172, NH = 64, CG = 46, RG = 20, PADX = 10, PADY = 10;
    const maxRows = Math.max(...cols.map((c) => c.length));
    const W = PADX * 2 + cols.length * NW + (cols.length - 1) * CG;
    // an edge that skips a column runs in a lane under the nodes, not through the columns it skips
    const longEdges = edges.filter((e) => depth.get(e.to) - depth.get(e.from) > 1);
    const LANE = 14;
    const nodesH = PADY * 2 + maxRows * NH + (maxRows - 1) * RG;
    const H = nodesH + (longEdges.length ? longEdges.length * LANE + 6 : 0);
    const xy = (id) => {
      const c = depth.get(id), col = cols[c];
      const offset = ((maxRows - col.length) * (NH + RG)) / 2;
      return { x: PADX + c * (NW + CG), y: PADY + offset + pos.get(id) * (NH + RG) };
    };

    const root = svg('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, style: { width: '100%', 'max-width': `${W}px`, 'min-width': `${Math.round(W * 0.8)}px`, height: 'auto' }, class: 'lineage', role: 'group', 'aria-label': `lineage of ${lin.requested || 'this version'}` });
    root.appendChild(svg('defs', null, svg('marker', { id: 'lin-arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, svg('path', { d: 'M0 0L10 5L0 10z', class: 'arrowhead' }))));

    const edgeLayer = svg('g', { class: 'edges' });
    for (const e of edges) {
      const a = xy(e.from), b = xy(e.to);
      const x1 = a.x + NW, y1 = a.y + NH / 2, x2 = b.x - 2, y2 = b.y + NH / 2;
      const lane = longEdges.indexOf(e);
      let d, lx, ly;
      if (lane < 0) {
        const mx = (x1 + x2) / 2;
        d = `M${x1} ${y1}C${mx} ${y1} ${mx} ${y2} ${x2} ${y2}`;
        lx = mx;
        ly = (y1 + y2) / 2 - 4;
      } else {
        const yl = nodesH + lane * LANE, ax = x1 + CG / 2, bx = x2 - CG / 2;
        d = `M${x1} ${y1}C${ax} ${y1} ${x1} ${yl} ${ax} ${yl}L${bx} ${yl}C${x2} ${yl} ${bx} ${y2} ${x2} ${y2}`;
        lx = (ax + bx) / 2;
        ly = yl - 3;
      }
      const g = svg('g', { class: lane < 0 ? 'edge' : 'edge long' }, svg('title', null, `${e.from} → ${e.to}${e.role ? ` (${e.role})` : ''}`),
        svg('path', { d, 'marker-end': 'url(#lin-arrow)' }));
      if (e.role) g.appendChild(svg('text', { x: lx, y: ly, 'text-anchor': 'middle', class: 'edge-label' }, short(e.role, 14)));
      edgeLayer.appendChild(g);
    }
    root.appendChild(edgeLayer);

    const details = el('div', { class: 'lineage-details', id: 'lineage-details' }, el('p', { class: 'muted small' }, 'Select a node to see its details.'));
    const nodeLayer = svg('g', { class: 'nodes' });
    for (const n of nodes) {
      const { x, y } = xy(n.id);
      const lab = nodeLabel(n);
      const cls = ['lineage-node', `kind-${['dataset', 'model', 'step'].includes(n.kind) ? n.kind : 'other'}`];
      if (n.id === lin.target) cls.push('target');
      if (n.error) cls.push('has-error');
      if (Array.isArray(lin.sources) && lin.sources.includes(n.id)) cls.push('source');
      const g = svg('g', { class: cls.join(' '), transform: `translate(${x} ${y})`, tabindex: 0, role: 'button', 'data-id': n.id, 'data-kind': n.kind },
        svg('title', null, nodeTooltip(n)),
        svg('rect', { width: NW, height: NH, rx: 6 }),
        svg('text', { x: 10, y: 16, class: 'node-kind' }, short(lab.kind, 25)),
        svg('text', { x: 10, y: 34, class: 'node-name' }, short(lab.name, 21)));
      if (n.kind === 'step') {
        const a = n.airflow || {};
        const line = svg('text', { x: 10, y: 53, class: 'node-links' });
        if (a.dag_id && a.run_id && a.task_id) line.appendChild(svg('a', { href: airflowUrls.task(a), 'data-nav': 'airflow', class: 'node-link' }, svg('tspan', null, 'Airflow task')));
        const ml = (n.links && n.links.mlflow_run) || mlflowRunUrl(links.mlflow_run, n.mlflow_run_id);
        if (safeHref(ml)) {
          if (line.childNodes.length) line.appendChild(svg('tspan', { class: 'muted' }, ' · '));
          line.appendChild(svg('a', { href: ml, 'data-nav': 'out', target: '_blank', rel: 'noopener noreferrer', class: 'node-link' }, svg('tspan', null, 'MLflow run ↗')));
        }
        if (!line.childNodes.length) line.appendChild(svg('tspan', { class: 'muted' }, 'no links recorded'));
        g.appendChild(line);
      } else {
        g.appendChild(svg('text', { x: 10, y: 53, class: 'node-fp' }, lab.fp ? `# ${lab.fp}` : n.error ? short(`error: ${n.error}`, 24) : 'no fingerprint'));
      }
      const select = () => {
        nodeLayer.querySelectorAll('.selected').forEach((s) => s.classList.remove('selected'));
        g.classList.add('selected');
        details.replaceChildren(nodeDetails(n, links));
      };
      g.addEventListener('click', (ev) => { if (!(ev.target instanceof Element && ev.target.closest('a'))) select(); });
      g.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); select(); } });
      nodeLayer.appendChild(g);
    }
    root.appendChild(nodeLayer);

    const parts = [];
    if (lin.complete === false || (Array.isArray(lin.problems) && lin.problems.length)) {
      parts.push(el('div', { class: 'warning', id: 'lineage-problems' }, el('strong', null, 'The lineage is incomplete:'), el('ul', null, (lin.problems || []).map((p) => el('li', null, p)))));
    }
    parts.push(el('p', { class: 'muted small' }, 'Data flows left to right: source data, the steps that read and wrote it, the model, and what it predicted. Hover a node for its ids; click it for its parameters, inputs and outputs.'));
    parts.push(el('div', { id: 'lineage-graph', class: 'graph-wrap' }, root));
    parts.push(details);
    return section('Lineage', 'lineage', ...parts);
  }

  function valueText(v) {
    if (v === null || v === undefined) return '—';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }

  function nodeDetails(n, links) {
    const dl = el('dl', { class: 'facts' });
    const row = (k, ...v) => append(dl, [el('dt', null, k), el('dd', null, ...v)]);
    const skip = new Set(['params', 'inputs', 'outputs', 'airflow', 'links']);
    for (const [k, v] of Object.entries(n)) if (!skip.has(k)) row(k, el('span', { class: 'mono' }, valueText(v)));
    const a = n.airflow;
    if (a && typeof a === 'object') {
      row('airflow', a.dag_id && a.run_id && a.task_id ? airflowLink(airflowUrls.task(a), `${a.dag_id} / ${a.run_id} / ${a.task_id}`) : valueText(a),
        isNum(a.try_number) ? ` (try ${a.try_number})` : '', isNum(a.map_index) && a.map_index >= 0 ? ` [map ${a.map_index}]` : '');
    }
    if (n.kind === 'step') {
      const ml = (n.links && n.links.mlflow_run) || mlflowRunUrl(links.mlflow_run, n.mlflow_run_id);
      if (safeHref(ml)) row('mlflow', outLink(ml, 'MLflow run'));
    }
    const parts = [el('h3', null, `${nodeLabel(n).kind}: ${nodeLabel(n).name}`), dl];
    const params = n.params && typeof n.params === 'object' ? Object.entries(n.params) : [];
    if (params.length) parts.push(el('h4', null, 'Parameters'), table({ class: 'grid compact params' }, ['Name', 'Value'], params.map(([k, v]) => el('tr', null, td({ class: 'mono' }, k), td({ class: 'mono' }, short(valueText(v), 500))))));
    for (const key of ['inputs', 'outputs']) {
      const list = Array.isArray(n[key]) ? n[key] : [];
      if (list.length) parts.push(el('h4', null, capital(key)), table({ class: 'grid compact' }, ['Role', 'URI', 'Fingerprint', el('th', { class: 'num' }, 'Rows')], list.map((e) => el('tr', null, td(null, e.role ?? ''), td({ class: 'mono' }, e.uri ?? ''), td({ class: 'mono', title: e.fingerprint ?? null }, fp12(e.fingerprint) ?? '—'), td({ class: 'num' }, isNum(e.rows) ? String(e.rows) : '—')))));
    }
    return el('div', null, parts);
  }

  // ---------------------------------------------------------------- view: a DAG run
  async function viewRun(route, signal) {
    const { dagId, runId } = route;
    setCrumbs([{ text: 'Models', href: urls.models() }, { text: `DAG run ${runId}` }]);
    const taskId = new URLSearchParams(location.search).get('task_id');
    const query = taskId ? `?task_id=${seg(taskId)}` : '';
    const d = await getJson(`/runs/${seg(dagId)}/${seg(runId)}${query}`, signal, `DAG run ${runId} of DAG ${dagId}`);
    const versions = Array.isArray(d.versions) ? d.versions : [];
    if (!versions.length) {
      document.title = `${dagId} · Models`;
      return el('div', null, el('h1', null, 'No model version'),
        el('p', { class: 'empty', id: 'no-version' }, `DAG run ${runId} of DAG ${dagId} produced no model version. `, airflowLink(airflowUrls.dagRun(dagId, runId), 'Open the DAG run'), ' · ', pageLink(urls.models(), 'All models')));
    }
    const first = versions[0];
    const note = el('p', { class: 'note' }, `DAG run ${runId} of ${dagId} produced `,
      versions.map((v, i) => [i ? ', ' : '', pageLink(urls.version(v.name, v.version), `${v.name} v${v.version}`)]),
      versions.length > 1 ? '. Showing the first.' : '.');
    return viewVersion({ name: first.name, version: String(first.version) }, signal, note);
  }

  // ---------------------------------------------------------------- routing
  function parseRoute(pathname) {
    const rest = pathname.startsWith(PREFIX) ? pathname.slice(PREFIX.length) : pathname;
    let parts;
    try {
      parts = rest.split('/').filter(Boolean).map(decodeURIComponent);
    } catch (e) {
      return { view: 'unknown', path: rest };
    }
    if (parts.length === 0) return { view: 'models' };
    if (parts[0] === 'models' && parts.length === 1) return { view: 'models' };
    if (parts[0] === 'models' && parts.length === 2) return { view: 'model', name: parts[1] };
    if (parts[0] === 'models' && parts.length === 4 && parts[2] === 'versions') return { view: 'version', name: parts[1], version: parts[3] };
    if (parts[0] === 'runs' && parts.length === 3) return { view: 'run', dagId: parts[1], runId: parts[2] };
    return { view: 'unknown', path: rest };
  }

  async function viewUnknown(route) {
    setCrumbs([{ text: 'Models', href: urls.models() }, { text: 'not found' }]);
    return el('div', null, el('h1', null, 'No such page'), el('p', { class: 'empty' }, `Nothing lives at ${PREFIX}${route.path}. `, pageLink(urls.models(), 'All models')));
  }

  const VIEWS = { models: viewModels, model: viewModel, version: (r, s) => viewVersion(r, s, null), run: viewRun, unknown: viewUnknown };

  let inflight = null;
  async function render() {
    if (inflight) inflight.abort();
    const ctl = new AbortController();
    inflight = ctl;
    const route = parseRoute(location.pathname);
    const view = $('#view');
    clearError();
    // data-view/data-path mark a finished render (tests wait on them), so clear them while loading
    document.body.removeAttribute('data-view');
    document.body.removeAttribute('data-path');
    view.setAttribute('aria-busy', 'true');
    const loading = setTimeout(() => { if (!ctl.signal.aborted) view.replaceChildren(el('p', { class: 'muted', id: 'loading' }, 'Loading…')); }, 150);
    try {
      const t0 = performance.now();
      const content = await VIEWS[route.view](route, ctl.signal);
      if (ctl.signal.aborted) return;
      view.replaceChildren(content);
      document.body.setAttribute('data-view', route.view);
      document.body.setAttribute('data-path', location.pathname);
      document.body.setAttribute('data-render-ms', String(Math.round(performance.now() - t0)));
    } catch (err) {
      if (ctl.signal.aborted || (err && err.name === 'AbortError')) return;
      view.replaceChildren();
      showError(err);
      document.body.setAttribute('data-view', 'error');
      document.body.setAttribute('data-path', location.pathname);
    } finally {
      clearTimeout(loading);
      if (inflight === ctl) view.removeAttribute('aria-busy');
    }
  }

  followHostTheme();
  render();
})();
