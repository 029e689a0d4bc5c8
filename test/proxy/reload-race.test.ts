import { describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { parseConfig } from '../../src/config/load.js';
import { startApp } from '../helpers/app.js';
import { startBackend } from '../helpers/backend.js';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', () => ok()));
  const p = (s.address() as AddressInfo).port;
  await new Promise<void>((ok) => s.close(() => ok()));
  return p;
}

const yaml = (addr: string, port: number) => `listen:\n  - name: web\n    bind: 127.0.0.1:${port}\n    backends:\n      - name: a\n        address: ${addr}\n        check: false\n`;

// Data plane in the App's thread (0) and in two worker threads (2): the same lifecycle.
describe.each([0, 2])('reloads and connection closing (workers %d)', (workers) => {
  it('overlapping reloads are serialized and the newest config wins', async () => {
    const a = await startBackend('a');
    const p = await startApp(yaml(a.address, 0), { workers });
    try {
      const [p1, p2] = [await freePort(), await freePort()];
      const results = await Promise.allSettled([p.app.reload(parseConfig(yaml(a.address, p1))), p.app.reload(parseConfig(yaml(a.address, p2)))]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
      expect(p.app.proxy.address('web')!.port).toBe(p2);
      expect(await (await fetch(`http://127.0.0.1:${p2}/`)).text()).toBe('a');
    } finally { await p.stop(); await a.close(); }
  });

  it('a reload during a stop is ignored: no listener is left open', async () => {
    const a = await startBackend('a');
    const p = await startApp(yaml(a.address, 0), { workers });
    const p2 = await freePort();
    const stopping = p.stop();
    await p.app.reload(parseConfig(yaml(a.address, p2)));
    await stopping;
    await expect(fetch(`http://127.0.0.1:${p2}/`)).rejects.toThrow();
    await a.close();
  });

  it('destroyConnectionsTo(address) closes client connections to that local address (a released VIP)', async () => {
    const hang = await startBackend('hang', () => true /* never answers */);
    const p = await startApp(yaml(hang.address, 0), { workers });
    try {
      const { connect } = await import('node:net');
      const s = connect(p.port(), '127.0.0.1');
      const closed = new Promise<void>((ok) => s.on('close', () => ok()));
      s.on('error', () => {});
      s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      await expect.poll(() => hang.seen.length, { timeout: 5000 }).toBe(1);
      expect(await p.app.proxy.destroyConnectionsTo('127.0.0.2')).toBe(0);
      expect(await p.app.proxy.destroyConnectionsTo('127.0.0.1')).toBe(1);
      await closed;
    } finally { await p.stop(); await hang.close(); }
  });
});
