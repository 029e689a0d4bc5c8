import { beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cli, ensureBuilt, tempDir } from '../daemon/daemon.js';

/**
 * The edge, core request path (issue 10): what pairlb refuses before any backend is chosen and what
 * it forwards, on every engine, with raw bytes on both sides.
 */

describe('engine http-proxy was removed', () => {
  beforeAll(() => ensureBuilt());

  it('pairlb check and pairlb start refuse `engine: http-proxy`, naming undici and native', () => {
    const dir = tempDir('edge-hp');
    try {
      const f = join(dir, 'hp.yaml');
      writeFileSync(f, 'listen:\n  - name: web\n    bind: 127.0.0.1:0\n    engine: http-proxy\n    backends:\n      - name: a\n        address: 127.0.0.1:9\n');
      for (const args of [['check', '-c', f], ['start', '-c', f, '--state-dir', join(dir, 'state')]]) {
        const r = cli(args);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('listen[0].engine: engine http-proxy was removed');
        expect(r.stderr).toContain('use undici (the default) or native (line 4)');
      }
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });
});
