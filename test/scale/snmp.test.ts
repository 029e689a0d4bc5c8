import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SnmpPoller } from '../../src/scale/snmp.js';
import type { SnmpTarget } from '../../src/scale/config.js';
import { startSnmpd, freeUdpPort, type Snmpd } from '../helpers/snmpd.js';

/** The net-snmp shell against a real snmpd (v2c and v3 authPriv SHA/AES) whose load the test sets. */

let agent: Snmpd;
beforeAll(async () => { agent = await startSnmpd({ load: 2.5 }); });
afterAll(async () => { await agent?.stop(); });

const base = (): SnmpTarget => ({
  host: '127.0.0.1', port: agent.port, version: '3', user: agent.creds.user, auth_protocol: 'sha', auth_password: agent.creds.auth,
  priv_protocol: 'aes', priv_password: agent.creds.priv, interval: 200, timeout: 300, retries: 0,
  oid: '1.3.6.1.4.1.2021.10.1.3.1', divisor: 1,
});

async function read(t: Partial<SnmpTarget>) {
  const p = new SnmpPoller({ ...base(), ...t });
  try { return await p.read(); } finally { p.close(); }
}

describe('SNMP load polling (real snmpd)', () => {
  it('v3 authPriv SHA/AES reads laLoad.1 and follows the load file', async () => {
    const p = new SnmpPoller(base());
    try {
      expect(await p.read()).toMatchObject({ status: 'ok', load: 2.5 });
      agent.setLoad(0.4);
      expect(await p.read()).toMatchObject({ status: 'ok', load: 0.4 });
      agent.setLoad(2.5);
    } finally { p.close(); }
  });

  it('v2c with the community', async () => {
    expect(await read({ version: '2c', community: agent.creds.community })).toMatchObject({ status: 'ok', load: 2.5 });
  });

  it('laLoadInt with divisor 100', async () => {
    expect(await read({ oid: '.1.3.6.1.4.1.2021.10.1.5.1', divisor: 100 })).toMatchObject({ status: 'ok', load: 2.5 });
  });

  it.each([
    ['wrong v2c community', { version: '2c' as const, community: 'nope' }, /timeout/],
    ['wrong v3 privacy key', { priv_password: 'wrong-priv-key' }, /timeout/],
    ['wrong v3 auth key', { auth_password: 'wrong-auth-key' }, /invalid response|timeout/],
    ['unknown v3 user', { user: 'nobody' }, /invalid response|timeout|unknown/i],
    ['OID the agent does not serve', { oid: '1.3.6.1.4.1.2021.10.1.3.9' }, /nosuch/i],
  ])('%s is an unknown sample with a reason, never a low load', async (_n, t, re) => {
    const s = await read(t);
    expect(s.status).toBe('unknown');
    expect(s.load).toBeUndefined();
    expect(s.reason).toMatch(re);
  });

  it('no load file (handler answers NONE) is noSuchInstance', async () => {
    agent.setLoad(null);
    const s = await read({});
    agent.setLoad(2.5);
    expect(s).toMatchObject({ status: 'unknown', reason: expect.stringMatching(/nosuch/i) });
  });

  it('agent down: unknown after timeout × (retries + 1), bounded', async () => {
    const t0 = Date.now();
    const s = await read({ port: await freeUdpPort(), timeout: 200, retries: 1 });
    expect(s).toMatchObject({ status: 'unknown', reason: expect.stringMatching(/timeout/) });
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});
