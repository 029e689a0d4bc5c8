import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

/** The scale section of the config: defaults, and every refusal with its key path. */

const base = (scale: string) => `
listen:
  - name: www
    bind: 127.0.0.1:0
    backends:
      - { name: php-01, address: 10.0.2.11:80 }
scale:
${scale}`;

const ok = `
  snmp: { version: "3", user: pairlb, auth_password: auth-pass-1, priv_password: priv-pass-1 }
  vds: [{ name: php-01, listen: www }]
  hypervisors:
    - { name: hv-01, host: 10.0.3.1, key_file: /etc/pairlb/hv_key, host_key: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU" }`;

function problems(yaml: string): string[] {
  try { parseConfig(yaml); return []; } catch (e) {
    if (e instanceof ConfigError) return e.problems.map((p) => `${p.path}: ${p.message}`);
    throw e;
  }
}

describe('scale config', () => {
  it('defaults: v3, laLoad.1, up 2 / down 1, N=2, M=3, report unknown clones', () => {
    const c = parseConfig(base(ok)).scale!;
    expect(c.snmp).toMatchObject({ version: '3', port: 161, interval: 5000, timeout: 1000, retries: 1, oid: '1.3.6.1.4.1.2021.10.1.3.1', auth_protocol: 'sha', priv_protocol: 'aes' });
    expect(c.policy).toMatchObject({ up: 2, down: 1, up_samples: 2, down_samples: 3 });
    expect(c.commands).toEqual({ clone: 'clone {source} {name}', destroy: 'destroy {name}', list: 'list' });
    expect(c.hypervisors[0]).toMatchObject({ port: 22, user: 'root' });
    expect(c.unknown_clones).toBe('report');
  });

  it('a VDS names its pool with backend: (a backends entry or a listen section); listen: is the same key', () => {
    const pools = `
frontends:
  - { name: web, bind: 127.0.0.1:0, default_backend: app }
backends:
  - name: app
    servers:
      - { name: php-02, address: 10.0.2.12:80 }
`;
    const two = ok.replace('vds: [{ name: php-01, listen: www }]', 'vds: [{ name: php-01, listen: www }, { name: php-02, backend: app }]');
    const c = parseConfig(base(two) + pools).scale!;
    expect(c.vds.map((v) => [v.name, v.listen, v.backend])).toEqual([['php-01', 'www', undefined], ['php-02', 'app', 'app']]);
    // Both keys, naming the same pool: accepted.
    expect(parseConfig(base(ok.replace('listen: www', 'backend: www, listen: www'))).scale!.vds[0].listen).toBe('www');
    // A backends pool's server that does not exist: named by the key the file used.
    expect(problems(base(ok.replace('listen: www', 'backend: app').replace('name: php-01, backend', 'name: php-09, backend')) + pools).join('\n')).toMatch(/scale\.vds\[0\]\.name: backend app has no server named "php-09"/);
  });

  it.each([
    ['no host key pin', ok.replace(/, host_key: "[^"]+"/, ''), /scale\.hypervisors\[0\]\.host_key: required/],
    ['a host key that is not a SHA256 fingerprint', ok.replace(/SHA256:[^"]+/, 'MD5:aa:bb'), /host_key: expected an OpenSSH SHA256 fingerprint/],
    ['v3 without passwords', ok.replace(', auth_password: auth-pass-1, priv_password: priv-pass-1', ''), /scale\.snmp\.auth_password: vds php-01: SNMP v3 \(authPriv\) needs auth_password/],
    ['v2c without community', ok.replace('version: "3"', 'version: "2c"').replace(/, user.*priv-pass-1/, ''), /scale\.snmp\.community: vds php-01: SNMP v2c needs a community/],
    ['unknown listen', ok.replace('listen: www', 'listen: nope'), /scale\.vds\[0\]\.listen: no listen section named "nope"/],
    ['unknown backend', ok.replace('name: php-01, listen', 'name: php-09, listen'), /scale\.vds\[0\]\.name: listen www has no backend named "php-09"/],
    ['neither backend nor listen', ok.replace(', listen: www', ''), /scale\.vds\[0\]\.backend: required: the pool the VDS serves/],
    ['backend and listen naming different pools', ok.replace('listen: www', 'backend: www, listen: web'), /scale\.vds\[0\]\.listen: listen is the old name of backend/],
    ['unknown backend pool', ok.replace('listen: www', 'backend: nope'), /scale\.vds\[0\]\.backend: no backends entry named "nope"/],
    ['down >= up', ok + '\n  policy: { up: 1.5, down: 1.5 }', /scale\.policy\.down: down \(1\.5\) must be below up \(1\.5\): hysteresis/],
    ['clone template without {name}', ok + '\n  commands: { clone: "clone {source}" }', /scale\.commands\.clone: the clone template must contain \{name\}/],
    ['no hypervisor', ok.replace(/ {2}hypervisors:\n.*$/s, ''), /scale\.hypervisors: at least one hypervisor is required/],
    ['short USM password', ok.replace('auth-pass-1', 'short'), /scale\.snmp\.auth_password: USM passwords are at least 8 characters/],
    ['unknown key', ok + '\n  treshold: 3', /scale\.treshold: unknown key/],
  ])('refuses %s', (_n, scale, re) => {
    const p = problems(base(scale));
    expect(p.join('\n')).toMatch(re);
  });
});
