import { BlockList, isIP } from 'node:net';
import { z } from 'zod';

/**
 * Source address lists: `10.0.0.0/8`, `192.0.2.7` (one host), `2001:db8::/32`. The one home of
 * CIDR parsing and matching for every bind that filters by source (listen `allow`/`deny`, the stats
 * and admin binds; the PROXY protocol's trusted sources can use the same). Matching is node's
 * BlockList (compiled once per config; IPv4-mapped IPv6 clients, `::ffff:10.1.2.3`, match IPv4 rules).
 */
export const cidr = z.string().transform((s, ctx) => {
  const t = s.trim();
  const slash = t.indexOf('/');
  const addr = slash < 0 ? t : t.slice(0, slash);
  const fam = isIP(addr);
  const max = fam === 4 ? 32 : 128;
  const bits = slash < 0 ? max : /^\d{1,3}$/.test(t.slice(slash + 1)) ? Number(t.slice(slash + 1)) : -1;
  if (fam === 0 || bits < 0 || bits > max) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected an address or CIDR such as 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32 (got ${JSON.stringify(s)})` });
    return z.NEVER;
  }
  return `${addr}/${bits}`;
});

export const cidrList = z.array(cidr);

/** A compiled allow/deny pair: `admits(addr)` is true when addr is in `allow` (or allow is empty) and not in `deny`. */
export class SourceFilter {
  static readonly OPEN = new SourceFilter([], []);
  private readonly allow: BlockList | null;
  private readonly deny: BlockList | null;
  /** False when both lists are empty: callers skip the check altogether. */
  readonly active: boolean;

  constructor(allow: readonly string[], deny: readonly string[]) {
    this.allow = compile(allow);
    this.deny = compile(deny);
    this.active = this.allow !== null || this.deny !== null;
  }

  admits(address: string | undefined): boolean {
    if (!this.active) return true;
    if (!address) return false;
    let a = address;
    let fam: 'ipv4' | 'ipv6' = a.includes(':') ? 'ipv6' : 'ipv4';
    if (fam === 'ipv6' && a.startsWith('::ffff:') && a.includes('.')) { a = a.slice(7); fam = 'ipv4'; }
    if (this.allow !== null && !this.allow.check(a, fam)) return false;
    return this.deny === null || !this.deny.check(a, fam);
  }
}

function compile(list: readonly string[]): BlockList | null {
  if (list.length === 0) return null;
  const b = new BlockList();
  for (const c of list) {
    const i = c.indexOf('/');
    const addr = c.slice(0, i);
    b.addSubnet(addr, Number(c.slice(i + 1)), isIP(addr) === 4 ? 'ipv4' : 'ipv6');
  }
  return b;
}
