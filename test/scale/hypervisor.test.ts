import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { HypervisorClient, parseCloneOutput, parseList, renderCommand } from '../../src/scale/hypervisor.js';
import { hypervisorSchema } from '../../src/scale/config.js';
import { startHypervisor, freeTcpPort, type Hypervisor } from '../helpers/sshd.js';

/** The ssh2 shell against a real sshd with the fixture dispatch/clone/destroy/list scripts. */

let hv: Hypervisor;
beforeAll(async () => { hv = await startHypervisor('hv1'); });
afterAll(async () => { await hv?.stop(); });

const client = (over: Partial<{ host_key: string; port: number; key_file: string }> = {}, connect = 3000) =>
  new HypervisorClient(hypervisorSchema.parse({ name: 'hv1', host: '127.0.0.1', port: hv.port, key_file: hv.keyFile, host_key: hv.hostKey, ...over }), connect);

describe('hypervisor over ssh2 (real sshd)', () => {
  it('clones (real backend process), lists and destroys', async () => {
    hv.setMode('ok');
    const c = client();
    const r = await c.clone('clone {source} {name}', 'vds-01', 'vds-01-clone-aaaaaa', 10_000);
    expect(r.ok, JSON.stringify(r)).toBe(true);
    if (!r.ok) return;
    expect(r.out.name).toBe('vds-01-clone-aaaaaa');
    const res = await request(`http://${r.out.address}/`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('vds-01-clone-aaaaaa\n');
    const l = await c.list('list', 5000);
    expect(l.ok && l.vms.map((v) => v.name)).toEqual(['vds-01-clone-aaaaaa']);
    expect(l.ok && l.vms[0].address).toBe(r.out.address);
    const d = await c.destroy('destroy {name}', 'vds-01-clone-aaaaaa', 10_000);
    expect(d.ok, d.stderr).toBe(true);
    expect(hv.clones()).toEqual([]);
    await expect(request(`http://${r.out.address}/`)).rejects.toThrow();
  });

  it('refuses a host key that does not match the pin, before authenticating', async () => {
    const before = hv.commands().length;
    const r = await client({ host_key: 'SHA256:' + 'A'.repeat(43) }).exec('list', 5000);
    expect(r.ok).toBe(false);
    expect(r.kind).toBe('hostkey');
    expect(r.reason).toContain(hv.hostKey);
    expect(hv.commands().length).toBe(before);
  });

  it('sshd down: connection refused at once', async () => {
    const r = await client({ port: await freeTcpPort() }).exec('list', 5000);
    expect(r).toMatchObject({ ok: false, kind: 'connect' });
    expect(r.ms).toBeLessThan(3000);
  });

  it('non-zero exit is a failure with stderr; the forced command refuses other verbs', async () => {
    hv.setMode('fail');
    const r = await client().clone('clone {source} {name}', 'vds-01', 'vds-01-clone-bbbbbb', 10_000);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.started).toBe(true);
    expect(r.res).toMatchObject({ kind: 'exit', code: 3 });
    expect(r.res.stderr).toContain('no space left');
    const x = await client().exec('rm -rf /', 5000);
    expect(x).toMatchObject({ ok: false, kind: 'exit', code: 126 });
    hv.setMode('ok');
  });

  it('garbage output is a failed clone (and the VM it may have made is still listed)', async () => {
    hv.setMode('garbage');
    const r = await client().clone('clone {source} {name}', 'vds-01', 'vds-01-clone-cccccc', 10_000);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.res.kind).toBe('output');
    expect(hv.clones()).toEqual(['vds-01-clone-cccccc']);
    expect((await client().destroy('destroy {name}', 'vds-01-clone-cccccc', 10_000)).ok).toBe(true);
    hv.setMode('ok');
  });

  it('command timeout', async () => {
    hv.setMode('hang');
    const r = await client().clone('clone {source} {name}', 'vds-01', 'vds-01-clone-dddddd', 800);
    expect(r.ok).toBe(false);
    if (!r.ok) { expect(r.res.kind).toBe('timeout'); expect(r.started).toBe(true); }
    hv.setMode('ok');
  });
});

describe('hypervisor output parsing (pure)', () => {
  it.each([
    ['{"name":"a","address":"10.0.0.5:80"}', { name: 'a', address: '10.0.0.5:80' }],
    ['progress 50%\nprogress 100%\n{"name":"a","address":"10.0.0.5:80","snmp":"10.0.0.5:161"}\n', { name: 'a', address: '10.0.0.5:80', snmp: '10.0.0.5:161' }],
    ['', { error: expect.stringContaining('no output') }],
    ['done', { error: expect.stringContaining('not JSON') }],
    ['{"name":"b","address":"10.0.0.5:80"}', { error: expect.stringContaining('differs') }],
    ['{"name":"a","address":"10.0.0.5"}', { error: expect.stringContaining('host:port') }],
  ])('parseCloneOutput(%j)', (out, want) => {
    expect(parseCloneOutput(out, 'a')).toEqual(want);
  });

  it('parseList accepts JSON lines and bare names', () => {
    expect(parseList('{"name":"x","address":"1.2.3.4:80"}\nvm-2\n\n not a name!\n')).toEqual([{ name: 'x', address: '1.2.3.4:80', snmp: undefined }, { name: 'vm-2' }]);
  });

  it('renderCommand refuses unsafe values', () => {
    expect(renderCommand('clone {source} {name}', { source: 's', name: 'n-1' })).toBe('clone s n-1');
    expect(() => renderCommand('destroy {name}', { name: 'x; rm -rf /' })).toThrow(/unsafe/);
  });
});
