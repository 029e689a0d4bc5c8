import { parseArgs } from 'node:util';
import { register } from './registry.js';
import { DEFAULT_LOG_N, hashPassword } from '../stats/auth.js';

/** Reads one line from stdin; on a terminal, without echo. */
async function readSecret(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0];
  }
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  return new Promise((ok, fail) => {
    let s = '';
    const on = (b: Buffer) => {
      for (const ch of b.toString('utf8')) {
        if (ch === '\r' || ch === '\n') { done(); ok(s); return; }
        if (ch === '\u0003') { done(); fail(new Error('interrupted')); return; }
        if (ch === '\u007f' || ch === '\b') s = s.slice(0, -1); else s += ch;
      }
    };
    const done = () => { stdin.off('data', on); stdin.setRawMode(false); stdin.pause(); process.stderr.write('\n'); };
    stdin.on('data', on);
  });
}

register('hash-password', {
  summary: 'make an scrypt hash for stats.auth (reads the password from the terminal or stdin)',
  usage: [
    'pairlb hash-password [--ln N]',
    '',
    'Prints $scrypt$ln=N,r=8,p=1$salt$hash for stats.auth[].password. The password is read without',
    `echo from the terminal (asked twice), or as the first line of stdin. --ln: log2 of the scrypt cost, default ${DEFAULT_LOG_N}`,
    '(each step doubles the CPU time and memory of a check; the page caches a successful check for 5 minutes).',
  ].join('\n'),
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { ln: { type: 'string' } } });
    const ln = values.ln ? Number(values.ln) : DEFAULT_LOG_N;
    if (!Number.isInteger(ln) || ln < 10 || ln > 20) { process.stderr.write('pairlb hash-password: --ln must be an integer 10..20\n'); return 2; }
    const pw = await readSecret('Password: ');
    if (process.stdin.isTTY) {
      const again = await readSecret('Again: ');
      if (again !== pw) { process.stderr.write('pairlb hash-password: the passwords differ\n'); return 1; }
    }
    if (!pw) { process.stderr.write('pairlb hash-password: empty password\n'); return 1; }
    process.stdout.write(await hashPassword(pw, ln) + '\n');
    return 0;
  },
});
