import type { AcmeStatus } from '../acme/module.js';
import { PAGE_COLUMNS, fmtDuration, statusText, type Column, type Row } from './columns.js';
import type { FrontendRow, ListenTable } from './model.js';
import type { TlsStatus } from '../tls/terminator.js';
import { STATUS_CRIT_DAYS, STATUS_WARN_DAYS, certSummaries } from '../tls/status.js';

/**
 * The HTML stats page (pure: tables + panels in, HTML out). No external assets; a tiny inline script
 * (CSP nonce) reloads the page every `refresh` ms unless the operator is typing in a form field.
 * Columns marked `wide` are hidden on narrow screens so a phone shows the at-a-glance columns; the
 * table scrolls sideways with the backend name pinned.
 */

export interface PageInput {
  node: string;
  role: string;
  now: number;
  tables: ListenTable[];
  /** `frontends` entries (a listen section's frontend is its table's TOTAL). */
  frontends?: FrontendRow[];
  ha?: Record<string, unknown>;
  scale?: Record<string, unknown>;
  refreshMs: number;
  nonce: string;
  /** Present when admin actions are allowed for this user: the anti-CSRF token. */
  csrf?: string;
  user?: string;
  flash?: { ok: boolean; text: string };
  /** Why admin actions are not offered here (e.g. this node is the HA backup). */
  note?: string;
  /** Show every column whatever the screen width (?all=1). */
  all?: boolean;
  /** The signed-in user has role read-only (no actions offered). */
  readOnlyUser?: boolean;
  /** Login limit counters for the footer (src/stats/login-guard.ts). */
  logins?: { failures: number; locked: number; busy: number; lockouts: number; sources: number };
  /** Process limits for the footer (src/proxy/accept-guard.ts). */
  conn?: { open: number; maxconn: number; fdLimit?: number; fdLimitHits: number };
  /** TLS binds: certificates (names, expiry), files left out, handshake counters. */
  tls?: TlsStatus[];
  /** ACME certificates and their alarms (src/acme/module.ts). */
  acme?: AcmeStatus;
  /** This process, for the header: pid, package version, uptime in seconds. */
  proc?: { pid: number; version: string; uptimeS: number };
  /** Heartbeat paths configured (a path that is not configured is not shown as DOWN). */
  haPaths?: { dedicated: boolean; public: boolean };
  /** Hide the rows of backends that are DOWN (?hide=down). */
  hideDown?: boolean;
}

function loginText(l: PageInput['logins']): string {
  if (!l) return '';
  const refused = l.locked + l.busy;
  return `failed logins ${l.failures}${refused ? `, <span class="bad">${refused} refused</span> (${l.locked} locked out, ${l.busy} busy)` : ''} · `;
}

function connText(c: PageInput['conn']): string {
  if (!c) return '';
  return `client connections ${c.open}/${c.maxconn}${c.fdLimit !== undefined ? ` (open-file limit ${c.fdLimit})` : ''}` +
    (c.fdLimitHits ? ` · <span class="bad">open-file limit reached: ${c.fdLimitHits} s</span>` : '') + ' · ';
}

export function esc(s: unknown): string {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const CSS = `
:root{--bg:#f4f5f7;--fg:#1d2430;--mut:#5d6878;--line:#d9dde3;--up:#d7f5dd;--upf:#0b6b2a;--down:#fbd5d5;--downf:#a3121b;--drain:#dbe7ff;--drainf:#1b4fb5;--maint:#e6e1d6;--maintf:#5b4a2a;--trans:#fff1c2;--transf:#7a5a00;--card:#fff}
*{box-sizing:border-box}
body{margin:0;font:14px/1.35 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;align-items:baseline;padding:.6rem 1rem;background:#1d2430;color:#fff}
header h1{font-size:1.15rem;margin:0}
header .k{color:#aab4c3}
header a{color:#cfe0ff}
header .links{margin-left:auto;display:flex;gap:.8rem}
.role{padding:.05rem .45rem;border-radius:.3rem;font-weight:600;background:#3a4456}
.role-master,.role-standalone{background:#1f7a3a}.role-backup{background:#3159a8}.role-fault{background:#b3261e}.role-init{background:#7a6a1f}
main{padding:.6rem 1rem 2rem}
.flash{margin:.3rem 0 .8rem;padding:.5rem .8rem;border-radius:.4rem;background:var(--up);color:var(--upf)}
.flash.err{background:var(--down);color:var(--downf)}
.flash.note{background:var(--drain);color:var(--drainf)}
.panels{display:grid;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr));gap:.8rem;margin-bottom:1rem}
.panel{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:.5rem .8rem}
.panel h2{font-size:1rem;margin:.1rem 0 .4rem}
.panel.warn{border-color:var(--downf);box-shadow:inset 4px 0 var(--downf)}
.panel details{margin-top:.3rem;color:var(--mut)}
.panel dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem .8rem;margin:0}
.panel dt{color:var(--mut)}.panel dd{margin:0;overflow-wrap:anywhere}
.panel.tls{grid-column:1/-1}.certs{border-collapse:collapse;width:100%}.certs td,.certs th{padding:.1rem .5rem;text-align:left;border-bottom:1px solid var(--line)}
.certs .src{color:var(--mut);overflow-wrap:anywhere}.certs tr.bad td{background:var(--down);color:var(--downf)}.certs tr.warnt td{background:var(--trans);color:var(--transf)}.certs tr.off td{color:var(--mut)}
.off{color:var(--mut);font-style:italic;margin:0}
.off-panel h2,.off-panel p{display:inline;margin-right:.6rem}
section.listen{margin:0 0 1.2rem}
section.listen h2{font-size:1.1rem;margin:.2rem 0 .35rem;display:flex;gap:.8rem;align-items:baseline;flex-wrap:wrap}
section.listen h2 .sum{font-size:.9rem;font-weight:500;color:var(--mut)}
.bad{color:var(--downf)!important;font-weight:700}
.scroll{overflow-x:auto;background:var(--card);border:1px solid var(--line);border-radius:.5rem}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:.3rem .45rem;border-bottom:1px solid var(--line);white-space:nowrap;text-align:right}
th{background:#eef0f4;font-weight:600;font-size:.8rem;color:#394355}
thead tr.g th{font-size:.72rem;text-transform:uppercase;letter-spacing:.03em;color:var(--mut);text-align:center;border-bottom:0}
td.name,th.name{text-align:left;position:sticky;left:0;z-index:1;width:11rem;min-width:11rem;max-width:11rem;overflow:hidden;text-overflow:ellipsis}
td.status,th.status{position:sticky;left:11rem;z-index:1;width:7.5rem;min-width:7.5rem;box-shadow:inset -1px 0 var(--line)}
th.name,th.status{background:#eef0f4}td.name{background:inherit}
td.status small{display:block;font-weight:400;font-size:.72rem;opacity:.85}
tbody tr{background:#fff}
tfoot td.name,tfoot td.status{background:#eef0f4}
.filters{margin:0 0 .6rem;color:var(--mut);font-size:.85rem}.filters a{margin-right:.8rem}
td.name{font-weight:600}
td.name small{display:block;font-weight:400;color:var(--mut);font-size:.75rem}
td.status{text-align:center;font-weight:700;border-radius:0}
tr.s-UP td.status{background:var(--up);color:var(--upf)}
tr.s-DOWN td.status{background:var(--down);color:var(--downf)}
tr.s-DRAIN td.status,tr.s-REMOVING td.status{background:var(--drain);color:var(--drainf)}
tr.s-MAINT td.status{background:var(--maint);color:var(--maintf)}
tr.s-DOWN td.name{box-shadow:inset 4px 0 var(--downf)}
tr.t td.status{background:var(--trans);color:var(--transf)}
tr.s-MAINT,tr.s-DRAIN{color:#4a5364}
tfoot td{font-weight:700;background:#eef0f4;border-bottom:0}
td.act,th.act{text-align:left}
.wt{display:inline-flex;gap:.25rem;margin-left:.3rem}
td.act form{display:flex;gap:.25rem;align-items:center;margin:0}
button{font:inherit;font-size:.8rem;padding:.2rem .5rem;border:1px solid #9aa5b6;border-radius:.3rem;background:#fff;cursor:pointer}
button:hover{background:#eef3ff}
button[disabled]{opacity:.45;cursor:default}
button.drain{border-color:#6d8fd6}button.maint{border-color:#a08a5f}button.ready{border-color:#5aa56e}
input[type=number]{width:3.6rem;font:inherit;font-size:.8rem;padding:.15rem .25rem}
footer{color:var(--mut);font-size:.8rem;padding:0 1rem 1rem}
@media (max-width:1499px){body:not(.all) .x{display:none}}
@media (max-width:760px){
 body{font-size:13px}
 body:not(.all) .w,body:not(.all) .x,.wt{display:none}
 .panel.off-panel{padding:.3rem .6rem}
 .panels{gap:.4rem;margin-bottom:.6rem}
 header .links{margin-left:0}
 main{padding:.5rem}
 th,td{padding:.3rem .2rem}
 header{padding:.5rem .6rem}
 td.name small{display:none}
 td.name,th.name{width:6.5rem;min-width:6.5rem;max-width:6.5rem}
 td.status,th.status{left:6.5rem;width:4.6rem;min-width:4.6rem}
 td.act button{padding:.3rem .3rem;font-size:.75rem}
 td.act form{gap:.15rem}
}
`;

function fmtCell(c: Column, r: Row): string {
  const v = c.value(r);
  return c.display ? c.display(v, r) : v === null ? '' : String(v);
}

function stateClass(r: Row): string {
  const s = statusText(r).split(' ')[0];
  return 's-' + s + (r.transition && !r.removing ? ' t' : '');
}

const tierClass = (c: Column): string => (c.tier === 3 ? 'x' : c.tier === 2 ? 'w' : '');

function groupHeader(cols: readonly Column[], admin: boolean): string {
  const out: string[] = [`<th class="name"></th><th class="status"></th>`];
  if (admin) out.push('<th></th>');
  let i = 0;
  while (i < cols.length) {
    const g = cols[i].group;
    let j = i;
    while (j < cols.length && cols[j].group === g) j++;
    // One <th> per visibility tier of the group, so the spans stay right at every screen width
    // (hidden columns have hidden header cells too); the label goes on the first one.
    let labelled = false;
    for (const t of [undefined, 2, 3] as const) {
      const n = cols.slice(i, j).filter((c) => c.tier === t).length;
      if (!n) continue;
      const cls = t === 3 ? ' class="x"' : t === 2 ? ' class="w"' : '';
      out.push(`<th${cls} colspan="${n}">${labelled ? '' : esc(g)}</th>`);
      labelled = true;
    }
    i = j;
  }
  return out.join('');
}

function orderCols(): Column[] {
  // Within a group, the always-visible columns first, then phone-hidden, then wide-screen only.
  const groups: Column[][] = [];
  for (const c of PAGE_COLUMNS) {
    const last = groups[groups.length - 1];
    if (last && last[0].group === c.group) last.push(c); else groups.push([c]);
  }
  return groups.flatMap((g) => [...g.filter((c) => !c.tier), ...g.filter((c) => c.tier === 2), ...g.filter((c) => c.tier === 3)]);
}

/**
 * Name and Status first and pinned (sticky), the Actions right after them: at 1,366 px the
 * actions are on screen without scrolling, and scrolling sideways keeps name and state in view.
 */
const ORDERED = orderCols();
const PINNED = ['name', 'status'].map((k) => ORDERED.find((c) => c.key === k)!);
const REST = ORDERED.filter((c) => !PINNED.includes(c));
const COLS = [...PINNED, ...REST];

function cell(c: Column, r: Row): string {
  const cls = [c.key === 'name' ? 'name' : c.key === 'status' ? 'status' : '', tierClass(c)].filter(Boolean).join(' ');
  let inner = esc(fmtCell(c, r));
  if (c.key === 'name' && r.b) inner += `<small>${esc(r.b.address)}${r.b.backup ? ' · backup' : ''}${r.b.origin !== 'config' ? ' · ' + esc(r.b.origin) : ''}</small>`;
  // Time in this state, in the cell itself (HAProxy's "UP 2h3m"): the Since column is wide-screen only.
  if (c.key === 'status' && r.b) inner += ` <small>${esc(fmtDuration(Math.max(0, Math.round((r.now - r.b.lastChange) / 1000))))}</small>`;
  const title = c.key === 'status' && r.b ? ` title="${esc(r.b.lastReason)}"` : c.key === 'last_check' && r.b?.lastCheck?.detail ? ` title="${esc(r.b.lastCheck.detail)}"` : '';
  return `<td${cls ? ` class="${cls}"` : ''}${title}>${inner}</td>`;
}

function actions(r: Row, csrf: string): string {
  const b = r.b!;
  if (r.removing) return '<td class="act">removing…</td>';
  const btn = (a: string, label: string) => `<button class="${a}" name="action" value="${a}"${b.admin === a ? ' disabled' : ''}>${label}</button>`;
  return `<td class="act"><form method="post" action="./action">` +
    `<input type="hidden" name="csrf" value="${esc(csrf)}"><input type="hidden" name="listen" value="${esc(b.listen)}"><input type="hidden" name="backend" value="${esc(b.name)}">` +
    btn('ready', 'Ready') + btn('drain', 'Drain') + btn('maint', 'Maint') +
    `<span class="wt"><input type="number" name="weight" min="0" max="256" value="${b.weight}" aria-label="weight of ${esc(b.name)}"><button name="action" value="weight">Set</button></span>` +
    '</form></td>';
}

function row(r: Row, csrf: string | undefined): string {
  const cells = COLS.map((c) => cell(c, r));
  if (csrf !== undefined) cells.splice(PINNED.length, 0, r.b ? actions(r, csrf) : '<td></td>');
  return `<tr class="${stateClass(r)}" data-backend="${esc(r.name)}">${cells.join('')}</tr>`;
}

function titles(admin: boolean): string {
  const out = COLS.map((c) => {
    const cls = [c.key === 'name' ? 'name' : c.key === 'status' ? 'status' : '', tierClass(c)].filter(Boolean).join(' ');
    return `<th${cls ? ` class="${cls}"` : ''} title="${esc(c.help)}">${esc(c.title)}</th>`;
  });
  if (admin) out.splice(PINNED.length, 0, '<th class="act">Actions</th>');
  return out.join('');
}

function kv(o: Record<string, unknown>): string {
  const rows: string[] = [];
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined || v === null) continue;
    let s: string;
    if (typeof v === 'object') {
      if (Array.isArray(v)) s = v.length ? v.slice(-5).map((x) => (typeof x === 'object' ? compact(x) : String(x))).join('; ') : '—';
      else s = compact(v);
    } else s = String(v);
    rows.push(`<dt>${esc(k.replace(/_/g, ' '))}</dt><dd>${esc(s)}</dd>`);
  }
  return rows.length ? `<dl>${rows.join('')}</dl>` : '<p class="off">no data yet</p>';
}

function compact(o: unknown): string {
  if (!o || typeof o !== 'object') return String(o);
  return Object.entries(o as Record<string, unknown>).filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(', ');
}

function ago(ms: unknown): string | undefined {
  return typeof ms === 'number' && Number.isFinite(ms) ? fmtDuration(ms / 1000) + ' ago' : undefined;
}

function failover(v: unknown, now: number): string | undefined {
  if (!v || typeof v !== 'object') return v === undefined || v === null ? undefined : String(v);
  const f = v as Record<string, unknown>;
  const at = typeof f.at === 'string' || typeof f.at === 'number' ? new Date(f.at).getTime() : NaN;
  const when = Number.isFinite(at) ? ago(now - at) : undefined;
  return [f.from !== undefined && f.to !== undefined ? `${f.from} → ${f.to}` : undefined, when, f.reason ? `(${f.reason})` : undefined].filter(Boolean).join(' ');
}

function pairPanel(p: PageInput): string {
  if (!p.ha) return `<div class="panel off-panel"><h2>Pair</h2> <p class="off">HA not configured: this node (${esc(p.node)}) runs standalone.</p></div>`;
  const h = p.ha;
  const peer = (h.peer && typeof h.peer === 'object' ? h.peer : undefined) as Record<string, unknown> | undefined;
  const hb = peer ? (ago(peer.lastSeenMs ?? peer.ageMs ?? peer.lastHeardMs) ?? 'never') : ago(h.peerAgeMs ?? h.heartbeatAgeMs);
  // A path that is not configured (no ha.node.public) is absent, not DOWN.
  const configured = p.haPaths as Record<string, boolean> | undefined;
  const paths = peer?.paths && typeof peer.paths === 'object' ? Object.entries(peer.paths as Record<string, unknown>).filter(([k]) => !configured || configured[k] !== false).map(([k, v]) => `${k} ${v ? 'up' : 'DOWN'}`).join(', ') : undefined;
  const known: Record<string, unknown> = {
    node: h.node ?? p.node,
    role: h.role ?? p.role,
    peer: peer ? [peer.name ?? peer.node, peer.role, peer.alive === false ? 'SILENT' : undefined].filter(Boolean).join(' · ') : h.peer,
    'last heartbeat': hb,
    paths,
    VIP: h.vip,
    'last failover': failover(h.lastFailover, p.now) ?? 'none since start',
  };
  const rep = replicationRows(h.replication);
  Object.assign(known, rep.rows);
  const skip = ['node', 'role', 'peer', 'vip', 'lastFailover', 'peerAgeMs', 'heartbeatAgeMs', 'replication'];
  const rest = Object.fromEntries(Object.entries(h).filter(([k]) => !skip.includes(k)));
  const silent = peer?.alive === false;
  return `<div class="panel${silent || rep.alarm ? ' warn' : ''}"><h2>Pair</h2>${kv(known)}${rep.differences}${Object.keys(rest).length ? `<details><summary>details</summary>${kv(rest)}</details>` : ''}</div>`;
}

/**
 * Replicated state rows of the pair panel from HaStatus.replication (src/ha/replication.ts
 * ReplicationStatus): sync with the peer, and a conflict — the differences a reconciliation
 * discarded — for the operator to resolve.
 */
function replicationRows(v: unknown): { rows: Record<string, unknown>; differences: string; alarm: boolean } {
  if (!v || typeof v !== 'object') return { rows: {}, differences: '', alarm: false };
  const r = v as Record<string, any>;
  const rows: Record<string, unknown> = {};
  const ver = typeof r.version?.text === 'string' ? r.version.text : undefined;
  const sync = r.sync === 'same' ? `in sync (${ver})` : r.sync === 'diverged' ? `DIVERGED: ours ${ver}, peer ${r.peer?.text}` : r.sync === 'unknown' ? `peer unknown (ours ${ver})` : `${r.sync}: ours ${ver}, peer ${r.peer?.text}`;
  rows['replicated state'] = r.enabled === false ? 'not replicated' : sync + (r.unacked ? ` — not acknowledged for ${fmtDuration(r.unacked.ms / 1000)} (${r.unacked.attempts} sends)` : '');
  const c = r.conflicts as { count?: number; open?: number; last?: Record<string, unknown>; acknowledged?: { at?: string; by?: string } } | undefined;
  let differences = '';
  const open = c && typeof c.open === 'number' ? c.open : c?.count ?? 0;
  if (c && typeof c.count === 'number' && c.count > 0 && c.last) {
    const l = c.last;
    const what = `${l.here === 'kept' ? `${l.loser}'s changes were discarded` : `this node's changes were discarded for ${l.winner}'s`} (${l.rule}) at ${l.at}${l.file ? `; both states in ${l.file}` : ''}`;
    if (open > 0) {
      rows['state CONFLICT'] = `${open} open — ${what}`;
      const d = Array.isArray(l.differences) ? (l.differences as unknown[]).map(String) : [];
      if (d.length) differences = `<details open><summary>state differences to resolve (${d.length})</summary><ul>${d.map((x) => `<li>${esc(x)}</li>`).join('')}</ul></details>`;
    } else rows['state conflicts'] = `${c.count}, acknowledged${c.acknowledged?.by ? ` by ${c.acknowledged.by}` : ''} — last: ${what}`;
  }
  return { rows, differences, alarm: r.sync === 'diverged' || open > 0 };
}

type Obj = Record<string, unknown>;
const arr = (v: unknown): Obj[] => (Array.isArray(v) ? (v.filter((x) => x && typeof x === 'object') as Obj[]) : []);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** Scaling panel from the scaler's status() (src/scale/scaler.ts ScaleStatus), read defensively. */
function scalePanel(p: PageInput): string {
  if (!p.scale) return '<div class="panel off-panel"><h2>Scaling</h2> <p class="off">Scaling not configured.</p></div>';
  const s = p.scale;
  const since = (at: unknown) => { const t = num(at); return t !== undefined ? ago(p.now - t) : undefined; };
  const rows: Obj = {};
  rows.scaler = s.enabled === false ? 'disabled' : s.active === false ? 'standby (runs on the master)' : s.active === true ? 'active on this node' : undefined;
  const targets = arr(s.targets);
  if (targets.length) {
    rows['load (SNMP)'] = targets.map((t) => {
      const last = t.last as Obj | undefined;
      const v = !last ? 'no sample yet' : last.status === 'ok' && num(last.load) !== undefined ? (num(last.load) as number).toFixed(2) : `unknown${last.reason ? ': ' + String(last.reason) : ''}`;
      return `${String(t.name)} ${v}${last ? ' (' + (since(last.at) ?? '') + ')' : ''}`;
    }).join(' · ');
  }
  const clones = arr(s.clones);
  rows.clones = clones.length ? clones.map((c) => `${String(c.name)} ${String(c.state ?? '')}${c.address ? ' ' + String(c.address) : ''}${c.error ? ' ERROR ' + String(c.error) : ''}`).join(' · ') : 'none';
  const decisions = arr(s.decisions);
  if (decisions.length) rows['last decisions'] = decisions.slice(-6).map((d) => `${String(d.source ?? '')}: ${String(d.action ?? '')}${d.clone ? ' ' + String(d.clone) : ''} (${String(d.reason ?? '')}) ${since(d.at) ?? ''}`.trim()).join(' · ');
  const alarms = arr(s.alarms);
  if (alarms.length) rows.alarms = alarms.slice(-3).map((a) => `${String(a.code ?? '')}: ${String(a.message ?? '')} ${since(a.at) ?? ''}`.trim()).join(' · ');
  const rc = s.lastReconcile as Obj | undefined;
  if (rc) rows['last reconcile'] = `${rc.ok ? 'ok' : 'FAILED'} ${since(rc.at) ?? ''}${rc.ok ? '' : ': ' + String(rc.message ?? '')}`;
  const events = arr(s.events);
  const ev = events.length ? `<details><summary>recent events</summary><dl>${events.slice(-8).reverse().map((e) => `<dt>${esc(since(e.at) ?? '')}</dt><dd>${esc(String(e.message ?? e.event ?? ''))}</dd>`).join('')}</dl></details>` : '';
  return `<div class="panel${alarms.length ? ' warn' : ''}"><h2>Scaling</h2>${kv(rows)}${ev}</div>`;
}

/**
 * Certificates of the TLS binds, soonest expiry first: names, key type, expiry and days left
 * (warn within 14 days, bad within 3, as `pairlb status`), and files left out of a directory.
 */
function tlsPanel(p: PageInput, now: number): string {
  const ts = p.tls ?? [];
  if (!ts.length) return '';
  const certs = certSummaries(ts, now);
  let alarm = false;
  const rows = certs.map((c) => {
    const d = c.daysLeft;
    const cls = !c.inUse ? 'off' : d < STATUS_CRIT_DAYS ? 'bad' : d < STATUS_WARN_DAYS ? 'warnt' : '';
    if (c.inUse && d < STATUS_WARN_DAYS) alarm = true;
    const left = d <= 0 ? 'EXPIRED' : d < 1 ? `${Math.max(1, Math.round(d * 24))}h` : `${Math.floor(d)}d`;
    const info = ts.find((t) => t.listen === c.listen)?.certificates.find((x) => x.source === c.source);
    return `<tr class="${cls}"><td>${esc(c.listen)}</td><td>${esc(c.names.join(', '))}</td><td>${esc(info?.keyType ?? '')}</td>` +
      `<td>${esc(new Date(c.notAfter).toISOString().slice(0, 10))}</td><td>${esc(left)}${c.inUse ? '' : ' (replaced)'}</td><td class="src">${esc(c.source)}</td></tr>`;
  }).join('');
  const errs = ts.flatMap((t) => t.errors.map((e) => `<li>${esc(t.listen)}: ${esc(e.message)}</li>`));
  if (errs.length) alarm = true;
  const hs = ts.map((t) => {
    const c = t.counters;
    const failed = Object.values(c.failures).reduce((a, b) => a + b, 0);
    return `${esc(t.listen)}: ${c.full} full, ${c.resumed} resumed, ${failed} failed`;
  }).join(' · ');
  return `<div class="panel tls${alarm ? ' warn' : ''}"><h2>TLS certificates</h2>` +
    `<table class="certs"><thead><tr><th>listen</th><th>names</th><th>key</th><th>not after</th><th>left</th><th>file</th></tr></thead><tbody>${rows || '<tr><td colspan="6">no certificate loaded</td></tr>'}</tbody></table>` +
    (errs.length ? `<p class="bad">left out:</p><ul>${errs.join('')}</ul>` : '') +
    `<details><summary>handshakes</summary><p>${hs}</p></details></div>`;
}

/** ACME: one row per certificate (state, expiry, renewal, failures), alarms first and red. */
function acmePanel(p: PageInput): string {
  const a = p.acme;
  if (!a) return '';
  const day = (iso?: string) => (iso ? iso.slice(0, 16).replace('T', ' ') : '—');
  const rows = a.certs.map((c) => {
    const cls = c.state === 'failing' || c.state === 'missing' ? 'bad' : c.state === 'ordering' ? 'warnt' : '';
    return `<tr class="${cls}"><td>${esc(c.id)}</td><td>${esc(c.names.join(', '))}</td><td>${esc(c.state)}</td><td>${esc(day(c.notAfter))}</td>` +
      `<td>${esc(day(c.renewAt))}</td><td>${c.failures ? `${c.failures} · ${esc(c.lastError ?? '')} · next ${esc(day(c.nextAttempt))}` : '0'}</td></tr>`;
  }).join('');
  const alarms = a.alarms.map((x) => `<li>${esc(x.message)}</li>`).join('');
  return `<div class="panel acme${a.alarms.length ? ' warn' : ''}"><h2>ACME certificates</h2>` +
    (alarms ? `<ul class="bad">${alarms}</ul>` : '') +
    `<table class="certs"><thead><tr><th>section</th><th>names</th><th>state</th><th>not after</th><th>renew at</th><th>failures</th></tr></thead><tbody>${rows}</tbody></table>` +
    `<p class="k">${esc(a.directory)}${a.active ? '' : ' · standby: the master orders'}</p></div>`;
}

/** The frontends: one row each (the same columns as a TOTAL), with bind, rules and default backend. */
function frontendSection(p: PageInput, admin: boolean): string {
  const fs = p.frontends ?? [];
  if (!fs.length) return '';
  const body = fs.map((f) => row({ ...f.row, name: f.name }, admin ? '' : undefined)).join('');
  const info = fs.map((f) => `${esc(f.name)} on ${esc(f.bind)}: ${f.rules} rule${f.rules === 1 ? '' : 's'}, default ${esc(f.default_backend ?? '404')}`).join(' · ');
  return `<section class="listen" id="frontends"><h2>Frontends <span class="sum">${info}</span></h2>` +
    `<div class="scroll"><table><thead><tr class="g">${groupHeader(REST, admin)}</tr><tr>${titles(admin)}</tr></thead>` +
    `<tbody>${body}</tbody></table></div></section>`;
}

/** A link to this page with the view options changed (all columns, hide DOWN). */
function link(p: PageInput, change: { all?: boolean; hideDown?: boolean }, text: string): string {
  const all = change.all ?? p.all;
  const hide = change.hideDown ?? p.hideDown;
  const q = [all ? 'all=1' : '', hide ? 'hide=down' : ''].filter(Boolean).join('&');
  return `<a href="./${q ? '?' + q : ''}">${esc(text)}</a>`;
}

/**
 * On touch screens (pointer: coarse) Drain and Maint ask first: a thumb scrolling the table must
 * not take a server out of service. A mouse click acts at once, as before.
 */
function confirmScript(nonce: string): string {
  return `<script nonce="${esc(nonce)}">(function(){if(!window.matchMedia||!matchMedia('(pointer: coarse)').matches)return;` +
    `document.addEventListener('submit',function(e){var b=e.submitter;if(!b||(b.value!=='drain'&&b.value!=='maint'))return;` +
    `var f=e.target,n=f.querySelector('input[name=backend]'),l=f.querySelector('input[name=listen]');` +
    `if(!confirm(b.value.toUpperCase()+' '+(l?l.value+'/':'')+(n?n.value:'')+'?'))e.preventDefault()},true)})();</script>`;
}

export function renderPage(p: PageInput): string {
  const admin = p.csrf !== undefined;
  const sections = p.tables.map((t) => {
    const sum = t.total;
    const bad = (sum.upCount ?? 0) === 0;
    const down = t.backends.filter((r) => r.b && r.b.health === 'down' && r.b.admin !== 'maint').length;
    const shown = p.hideDown ? t.backends.filter((r) => !(r.b && r.b.health === 'down' && r.b.admin !== 'maint')) : t.backends;
    // Spaces between the heading's parts: copied or read aloud, "web 1/2 up 1 down", not "web1/2 up1 down".
    return `<section class="listen" id="l-${esc(t.listen)}"><h2>${esc(t.listen)} ` +
      (t.frontends.length ? `<span class="sum">backend · from ${t.frontends.map((f) => esc(f)).join(', ')}</span> ` : '') +
      `<span class="sum${bad ? ' bad' : ''}">${sum.upCount}/${sum.backendCount} up</span> ` +
      (down ? `<span class="sum bad">${down} down${p.hideDown ? ' (hidden)' : ''}</span> ` : '') +
      `<span class="sum">${Math.round(sum.rate * 10) / 10} req/s · ${sum.c.cur} active</span></h2>` +
      `<div class="scroll"><table><thead><tr class="g">${groupHeader(REST, admin)}</tr><tr>${titles(admin)}</tr></thead>` +
      `<tbody>${shown.map((r) => row(r, p.csrf)).join('') || `<tr><td class="name">${t.backends.length ? 'every backend is DOWN (hidden)' : 'no backends'}</td></tr>`}</tbody>` +
      `<tfoot>${row(sum, admin ? '' : undefined)}</tfoot></table></div></section>`;
  }).join('') + frontendSection(p, admin);
  const time = new Date(p.now).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
  const refresh = p.refreshMs > 0
    ? `<script nonce="${esc(p.nonce)}">(function(){var ms=${Math.max(1000, p.refreshMs | 0)};function t(){var a=document.activeElement;if(a&&(a.tagName==='INPUT'||a.tagName==='SELECT')){setTimeout(t,2000);return}location.replace(location.pathname+location.search.replace(/([?&])(ok|err)=[^&]*/g,'$1'))}setTimeout(t,ms)})();</script>` +
      `<noscript><meta http-equiv="refresh" content="${Math.max(1, Math.round(p.refreshMs / 1000))}"></noscript>`
    : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">` +
    `<title>pairlb ${esc(p.node)} · ${esc(p.role)}</title><style nonce="${esc(p.nonce)}">${CSS}</style></head><body${p.all ? ' class="all"' : ''}>` +
    `<header><h1>pairlb</h1> <span><span class="k">node</span> ${esc(p.node)}</span> <span class="role role-${esc(p.role)}">${esc(p.role)}</span> ` +
    (p.proc ? `<span class="proc"><span class="k">pid</span> ${p.proc.pid} <span class="k">version</span> ${esc(p.proc.version)} <span class="k">uptime</span> ${esc(fmtDuration(p.proc.uptimeS))}</span> ` : '') +
    `<span class="k">${esc(time)}</span> ` +
    `<span class="links">${link(p, { all: !p.all }, p.all ? 'fewer columns' : 'all columns')} ${link(p, { hideDown: !p.hideDown }, p.hideDown ? 'show DOWN' : 'hide DOWN')} <a href="./stats.csv">CSV</a> <a href="./;csv">HAProxy CSV</a> <a href="./stats.json">JSON</a> <a href="./metrics">metrics</a></span></header><main>` +
    (p.flash ? `<div class="flash${p.flash.ok ? '' : ' err'}" role="status">${esc(p.flash.text)}</div>` : '') +
    (p.note ? `<div class="flash note">${esc(p.note)}</div>` : '') +
    `<div class="panels">${pairPanel(p)}${scalePanel(p)}${tlsPanel(p, p.now)}${acmePanel(p)}</div>${sections}</main>` +
    `<footer>${p.user ? `signed in as ${esc(p.user)}${admin ? ' (admin)' : p.readOnlyUser ? ' (read-only)' : ''} · ` : ''}${connText(p.conn)}${loginText(p.logins)}${p.refreshMs > 0 ? `refreshes every ${Math.round(p.refreshMs / 100) / 10}s` : 'no auto-refresh'}</footer>` +
    refresh + (admin ? confirmScript(p.nonce) : '') + '</body></html>';
}
