import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Test PKI with the real openssl CLI: a root, an intermediate, and leaves with the names, key type
 * and lifetime a test asks for. Every file is PEM; `bundle` is leaf + intermediate + key in one
 * file (the directory format of docs/tls.md).
 */
export interface Ca { dir: string; rootCert: string; rootKey: string; intCert: string; intKey: string; serial: number }
export interface Leaf { cert: string; chain: string; key: string; bundle: string; names: string[] }

function ossl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
}

const keyArgs = (type: 'ec' | 'rsa') => (type === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', 'rsa:2048']);

export function makeCa(dir: string, name = 'pairlb test'): Ca {
  mkdirSync(dir, { recursive: true });
  ossl(['req', '-x509', ...keyArgs('ec'), '-nodes', '-keyout', 'root.key', '-out', 'root.crt', '-days', '3650', '-subj', `/CN=${name} root`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  ossl(['req', '-new', ...keyArgs('ec'), '-nodes', '-keyout', 'int.key', '-out', 'int.csr', '-subj', `/CN=${name} intermediate`], dir);
  writeFileSync(join(dir, 'int.ext'), 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n');
  ossl(['x509', '-req', '-in', 'int.csr', '-CA', 'root.crt', '-CAkey', 'root.key', '-set_serial', '1', '-days', '3650', '-extfile', 'int.ext', '-out', 'int.crt'], dir);
  return { dir, rootCert: join(dir, 'root.crt'), rootKey: join(dir, 'root.key'), intCert: join(dir, 'int.crt'), intKey: join(dir, 'int.key'), serial: 100 };
}

/** A leaf signed by the intermediate. `days` may be small (expiry warnings); `id` names the files. */
export function makeLeaf(ca: Ca, id: string, names: string[], opts: { type?: 'ec' | 'rsa'; days?: number } = {}): Leaf {
  const d = ca.dir;
  const type = opts.type ?? 'ec';
  ossl(['req', '-new', ...keyArgs(type), '-nodes', '-keyout', `${id}.key`, '-out', `${id}.csr`, '-subj', `/CN=${names[0]}`], d);
  writeFileSync(join(d, `${id}.ext`), `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature${type === 'rsa' ? ',keyEncipherment' : ''}\nextendedKeyUsage=serverAuth\nsubjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\n`);
  ossl(['x509', '-req', '-in', `${id}.csr`, '-CA', 'int.crt', '-CAkey', 'int.key', '-set_serial', String(++ca.serial), '-days', String(opts.days ?? 365), '-extfile', `${id}.ext`, '-out', `${id}.crt`], d);
  const leafPem = readFileSync(join(d, `${id}.crt`), 'utf8');
  const intPem = readFileSync(ca.intCert, 'utf8');
  const keyPem = readFileSync(join(d, `${id}.key`), 'utf8');
  writeFileSync(join(d, `${id}.chain.pem`), leafPem + intPem);
  writeFileSync(join(d, `${id}.bundle.pem`), leafPem + intPem + keyPem, { mode: 0o600 });
  return { cert: join(d, `${id}.crt`), chain: join(d, `${id}.chain.pem`), key: join(d, `${id}.key`), bundle: join(d, `${id}.bundle.pem`), names };
}

export function pemOf(file: string): string { return readFileSync(file, 'utf8'); }
