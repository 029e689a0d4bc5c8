import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

/**
 * Secrets inside the replicated state (TLS ticket keys, the ACME account key, certificate keys).
 * The state document travels between the nodes authenticated (HMAC, advert.ts) but not encrypted,
 * and is written to state_dir/runtime.json: a secret is put there only sealed with a key derived
 * from the HA key (HKDF-SHA256, one derived key per purpose), AES-256-GCM, random 96-bit IV. The
 * purpose is also the additional authenticated data, so a blob of one section cannot be replayed
 * as another's.
 *
 * Format: `v1.` + base64(iv ‖ tag ‖ ciphertext). A sealed value is deterministic only as long as
 * its owner keeps the string (the IV is random): owners cache it, so that exporting the same
 * secret twice gives the same state hash.
 */
export class Sealer {
  private readonly key: Buffer;
  private readonly aad: Buffer;

  /** `haKey`: the bytes of ha.key_file (at least 16). */
  constructor(haKey: Buffer, readonly purpose: string) {
    this.key = Buffer.from(hkdfSync('sha256', haKey, 'pairlb sealed state', `pairlb ${purpose} v1`, 32));
    this.aad = Buffer.from(purpose, 'utf8');
  }

  seal(plain: Buffer): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(this.aad);
    const ct = Buffer.concat([c.update(plain), c.final()]);
    return 'v1.' + Buffer.concat([iv, c.getAuthTag(), ct]).toString('base64');
  }

  /** The plaintext, or undefined for anything not sealed by this key and purpose. */
  open(sealed: unknown): Buffer | undefined {
    if (typeof sealed !== 'string' || !sealed.startsWith('v1.')) return undefined;
    const raw = Buffer.from(sealed.slice(3), 'base64');
    if (raw.length < 28) return undefined;
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
      d.setAAD(this.aad);
      d.setAuthTag(raw.subarray(12, 28));
      return Buffer.concat([d.update(raw.subarray(28)), d.final()]);
    } catch {
      return undefined;
    }
  }
}
