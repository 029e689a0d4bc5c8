import type { Algorithm, Balancer, Candidate, HashType } from './balancer.js';
import { RoundRobinBalancer } from './round-robin.js';
import { LeastConnBalancer } from './least-conn.js';
import { HashBalancer } from './hashed.js';
import { RandomBalancer } from './random.js';

export type { Algorithm, Balancer, Candidate, HashType } from './balancer.js';
export { hashString } from './hash.js';

export interface BalanceOptions { algorithm: Algorithm; hashType: HashType }

/**
 * The balancer of one server set (primaries or backups) for one snapshot, carrying the position of
 * `prev` (the same set's balancer in the previous snapshot) when given.
 */
export function createBalancer<T extends Candidate>(o: BalanceOptions, items: readonly T[], prev?: Balancer<T>): Balancer<T> {
  let b: Balancer<T>;
  switch (o.algorithm) {
    case 'roundrobin': b = new RoundRobinBalancer(items); break;
    case 'leastconn': b = new LeastConnBalancer(items); break;
    case 'random': b = new RandomBalancer(items); break;
    case 'source': case 'uri': case 'header': b = new HashBalancer(items, o.hashType); break;
  }
  if (prev !== undefined) b.carry(prev);
  return b;
}
