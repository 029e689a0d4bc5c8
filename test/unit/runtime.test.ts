import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createRequire } from 'node:module';
import { checkHttpParserInternal } from '../../src/proxy/engines/native.js';

const require = createRequire(import.meta.url);

const root = resolve(import.meta.dirname, '../..');

describe('runtime: Node 24 LTS', () => {
  it('the test suite itself runs on Node >= 24 (npm scripts put node_modules/.bin/node first)', () => {
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(24);
  });

  it('bin/pairlb runs the bundled Node 24 even when PATH has an older node first', () => {
    // /usr/bin/node is the machine's (20 here); the launcher must not pick it.
    const out = execFileSync(resolve(root, 'bin/pairlb'), ['--help'], { env: { ...process.env, PATH: '/usr/local/bin:/usr/bin:/bin' } }).toString();
    expect(out).toMatch(/^pairlb: load balancer/);
    const ver = execFileSync('/bin/sh', ['-c', `exec "${root}/node_modules/node/bin/node" --version`]).toString().trim();
    expect(Number(ver.slice(1).split('.')[0])).toBe(24);
    const pkg = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8'));
    expect(pkg.engines.node).toBe('>=24');
    expect(pkg.bin.pairlb).toBe('bin/pairlb');
  });

  it('dist/cli/main.js refuses a Node older than 24 with a clear message', () => {
    let sysNode = '';
    try { sysNode = execFileSync('/bin/sh', ['-c', 'command -v /usr/bin/node']).toString().trim(); } catch { /* none */ }
    if (!sysNode) { expect(checkHttpParserInternal(require('_http_common').HTTPParser)).toEqual([]); return; } // machine without an old node: nothing to refuse
    const major = Number(execFileSync(sysNode, ['-p', 'process.versions.node']).toString().split('.')[0]);
    if (major >= 24) { expect(major).toBeGreaterThanOrEqual(24); return; }
    let code = 0; let err = '';
    try { execFileSync(sysNode, [resolve(root, 'dist/cli/main.js'), '--help'], { stdio: 'pipe' }); } catch (e) { code = (e as { status: number }).status; err = String((e as { stderr: Buffer }).stderr); }
    expect(code).toBe(1);
    expect(err).toMatch(/needs Node\.js 24 or newer/);
  });

  it('the native engine\'s Node internal (_http_common.HTTPParser) has the shape it relies on', () => {
    expect(checkHttpParserInternal(require('_http_common').HTTPParser)).toEqual([]);
    // The check itself can fail: a changed internal is reported, not ignored.
    expect(checkHttpParserInternal(null)).toEqual(['_http_common.HTTPParser is not a constructor']);
    class Fake { static RESPONSE = 2; execute(): void {} }
    expect(checkHttpParserInternal(Fake).join('\n')).toMatch(/kOnHeaders is undefined[\s\S]*prototype\.initialize is missing/);
  });
});
