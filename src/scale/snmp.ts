import type snmpT from 'net-snmp';
import { lazy } from '../lazy.js';
import type { SnmpTarget } from './config.js';
import type { Sample } from './policy.js';

/**
 * Reads one load value from one SNMP agent (v2c or v3 authPriv). Thin shell around net-snmp:
 * every failure — agent down, timeout, wrong community, wrong keys, noSuchObject/Instance, a value
 * that is not a number — is a Sample of status 'unknown' with its reason, never a low load.
 *
 * Over UDP an agent that is down, a wrong v2c community and a wrong v3 privacy key all look the
 * same: no answer (timeout). A wrong v3 auth key is rejected at once (ResponseInvalidError).
 */

const netSnmp = lazy<typeof snmpT>('net-snmp');

function authProtocol(p: SnmpTarget['auth_protocol']): snmpT.AuthProtocols {
  const a = netSnmp().AuthProtocols;
  return { md5: a.md5, sha: a.sha, sha224: a.sha224, sha256: a.sha256, sha384: a.sha384, sha512: a.sha512 }[p];
}
function privProtocol(p: SnmpTarget['priv_protocol']): snmpT.PrivProtocols {
  const v = netSnmp().PrivProtocols;
  return { des: v.des, aes: v.aes, aes256b: v.aes256b, aes256r: v.aes256r }[p];
}

export class SnmpPoller {
  private session: snmpT.Session | undefined;
  private readonly oid: string;

  constructor(readonly target: SnmpTarget, private readonly now: () => number = Date.now) {
    this.oid = target.oid.replace(/^\./, '');
  }

  private open(): snmpT.Session {
    if (this.session) return this.session;
    const t = this.target;
    // Always explicit: net-snmp's default is 5 s × 2 tries, far too long for a poll loop.
    const common = { port: t.port, timeout: t.timeout, retries: t.retries, transport: 'udp4' as const };
    const s = t.version === '2c'
      ? netSnmp().createSession(t.host, t.community!, { ...common, version: netSnmp().Version2c })
      : netSnmp().createV3Session(t.host, {
        name: t.user!, level: netSnmp().SecurityLevel.authPriv,
        authProtocol: authProtocol(t.auth_protocol), authKey: t.auth_password!,
        privProtocol: privProtocol(t.priv_protocol), privKey: t.priv_password!,
      }, { ...common, version: netSnmp().Version3 });
    // A socket error must not crash the process; the pending request then times out as unknown.
    s.on('error', () => { this.close(); });
    this.session = s;
    return s;
  }

  /** One reading. Never rejects. */
  read(): Promise<Sample> {
    const at = this.now();
    const unknown = (reason: string): Sample => ({ at, status: 'unknown', reason });
    return new Promise<Sample>((resolve) => {
      let done = false;
      const finish = (s: Sample) => { if (!done) { done = true; clearTimeout(guard); resolve(s); } };
      // Belt and braces: net-snmp calls back after timeout × (retries + 1); never wait longer.
      const guard = setTimeout(() => { this.close(); finish(unknown('timeout (no callback)')); }, this.target.timeout * (this.target.retries + 1) + 1000);
      let session: snmpT.Session;
      try { session = this.open(); } catch (e) { finish(unknown(`session: ${(e as Error).message}`)); return; }
      try {
        session.get([this.oid], (err, varbinds) => {
          if (err) { finish(unknown(describeError(err))); return; }
          const vb = varbinds?.[0];
          if (!vb) { finish(unknown('empty response')); return; }
          if (netSnmp().isVarbindError(vb)) { finish(unknown(netSnmp().varbindError(vb))); return; }
          const load = parseValue(vb.value) / this.target.divisor;
          if (!Number.isFinite(load) || load < 0) { finish(unknown(`unparsable value ${JSON.stringify(String(vb.value)).slice(0, 40)}`)); return; }
          finish({ at, status: 'ok', load });
        });
      } catch (e) {
        this.close();
        finish(unknown(`request: ${(e as Error).message}`));
      }
    });
  }

  close(): void {
    const s = this.session;
    this.session = undefined;
    if (s) try { s.close(); } catch { /* already closed */ }
  }
}

function parseValue(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (Buffer.isBuffer(v)) return parseFloat(v.toString('latin1'));
  if (typeof v === 'string') return parseFloat(v);
  return NaN;
}

function describeError(err: Error): string {
  // @types/net-snmp lacks RequestTimedOutError: match on the name.
  switch (err.name) {
    case 'RequestTimedOutError': return 'timeout (agent down, wrong community or wrong privacy key)';
    case 'ResponseInvalidError': return `invalid response (${err.message}; wrong auth key?)`;
    case 'RequestFailedError': return `request failed (${err.message})`;
    default: return `${err.name}: ${err.message}`;
  }
}
