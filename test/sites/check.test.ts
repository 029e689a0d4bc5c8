import { beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { makeCa, makeLeaf, pemOf } from '../helpers/certs.js';
import { join } from 'node:path';
import { cli, ensureBuilt, tempDir } from '../daemon/daemon.js';

/**
 * `pairlb check` (the real CLI from dist/) on frontends, backends and rules: every problem at once,
 * each with its key path and line, exit 1; the shipped many-sites example passes.
 */

beforeAll(() => ensureBuilt());

describe('pairlb check: frontends, backends, rules', () => {
  it('reports unknown backends, unreachable rules, invalid regexes, header injection and duplicate names with key path and line', () => {
    const dir = tempDir('sites-check');
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, [
      'listen:',
      '  - { name: www, bind: "127.0.0.1:0", backends: [] }',
      'frontends:',
      '  - name: www',
      '    bind: "127.0.0.1:0"',
      '  - name: f',
      '    bind: "127.0.0.1:0"',
      '    rules:',
      '      - when: { path_regex: "([" }',
      '        backend: app',
      '      - backend: nope',
      '      - when: { host: a.example.com }',
      '        backend: app',
      '      - when: { host: b.example.com }',
      '        set_header: { X-A: "a\\r\\nX-Evil: 1" }',
      '      - when: { host: c.example.com }',
      '        response_set_header: { Content-Length: "0" }',
      '    default_backend: zzz',
      'backends:',
      '  - { name: app, servers: [] }',
      '  - { name: www, servers: [] }',
      '',
    ].join('\n'));
    const r = cli(['check', '--schema-only', '-c', file]);
    expect(r.code).toBe(1);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('  ')).map((l) => l.trim()).sort();
    expect(lines).toEqual([
      'backends[1].name: duplicate name "www" (also listen[0]; backends and listen sections share names) (line 21)',
      'frontends[0].name: duplicate name "www" (also listen[0]; frontends and listen sections share names) (line 4)',
      'frontends[1].default_backend: no backend named "zzz" (known: "www", "app") (line 18)',
      'frontends[1].rules[0].when.path_regex: invalid regular expression: Invalid regular expression: /([/: Unterminated character class (line 9)',
      'frontends[1].rules[1].backend: no backend named "nope" (known: "www", "app") (line 11)',
      'frontends[1].rules[2]: this rule can never match: rules[1] before it has no condition and matches every request (line 12)',
      'frontends[1].rules[3]: this rule can never match: rules[1] before it has no condition and matches every request (line 14)',
      'frontends[1].rules[3].set_header.X-A: expected a header value without CR, LF, NUL or other control characters, nor leading/trailing spaces (line 15)',
      'frontends[1].rules[4]: this rule can never match: rules[1] before it has no condition and matches every request (line 16)',
      'frontends[1].rules[4].response_set_header.Content-Length: Content-Length is a framing or hop-by-hop header: rules may not change it (line 17)',
    ].sort());
  });

  // The full check (not --schema-only) reads every certificate the example names: the test makes
  // them with openssl (test/helpers/certs.ts) and points the example's paths at them. ACME's names
  // need no file yet (pairlb orders them at start); every other routed name must be served.
  it('config/examples/sites.yaml passes the full pairlb check with the certificate files it names', () => {
    const dir = tempDir('stg-sites-example');
    const ca = makeCa(join(dir, 'ca'));
    const certs = join(dir, 'etc-certs');
    const bundles = join(dir, 'var-certs');
    mkdirSync(certs); mkdirSync(bundles);
    const com = makeLeaf(ca, 'example.com', ['example.com', 'www.example.com', 'api.example.com', 'old.example.com']);
    copyFileSync(com.bundle, join(certs, 'example.com.pem'));
    // The directory: the operator's blog bundles, RSA and ECDSA for the same names.
    copyFileSync(makeLeaf(ca, 'blog-ec', ['blog.example.org', '*.blog.example.org']).bundle, join(bundles, 'blog.example.org.pem'));
    copyFileSync(makeLeaf(ca, 'blog-rsa', ['blog.example.org', '*.blog.example.org'], { type: 'rsa' }).bundle, join(bundles, 'blog.example.org.rsa.pem'));
    const text = readFileSync(join(import.meta.dirname, '../../config/examples/sites.yaml'), 'utf8');
    const paths = ['/etc/pairlb/certs', '/var/lib/pairlb/certs', 'state_dir: /var/lib/pairlb'];
    for (const p of paths) expect(text, p).toContain(p);
    const file = join(dir, 'sites.yaml');
    writeFileSync(file, text.replaceAll('/etc/pairlb/certs', certs).replaceAll('/var/lib/pairlb/certs', bundles).replace('state_dir: /var/lib/pairlb', `state_dir: ${join(dir, 'state')}`));
    const r = cli(['check', '-c', file]);
    expect([r.code, r.stderr, r.stdout]).toEqual([0, '', `Configuration file is valid: ${file}\n`]);
    // It read the files: without the directory's bundles the blog names are not served.
    rmSync(join(bundles, 'blog.example.org.pem')); rmSync(join(bundles, 'blog.example.org.rsa.pem'));
    const w = cli(['check', '-c', file]);
    expect(w.code).toBe(0);
    expect(w.stderr).toMatch(/warning: frontends\[1\]\.rules\[\d\]\.when\.host(\[\d\])?: no certificate of https serves blog\.example\.org/);
    expect(w.stderr).not.toMatch(/shop\.example\.com/);
    // A bundle whose key is not its certificate's is refused, with the key path.
    writeFileSync(join(certs, 'example.com.pem'), pemOf(com.chain) + pemOf(makeLeaf(ca, 'other', ['other.example.com']).key));
    const bad = cli(['check', '-c', file]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/frontends\[1\]\.tls\.certificates\[0\]: .*(key|match)/i);
  });

  it('config/examples/sites.yaml passes', () => {
    const r = cli(['check', '--schema-only', '-c', join(import.meta.dirname, '../../config/examples/sites.yaml')]);
    expect([r.code, r.stderr]).toEqual([0, '']);
  });
});
