import { z } from 'zod';
import { duration } from './types.js';

/** `tls_tickets:` TLS session ticket keys (src/tls/ticket-keys.ts, docs/tls-tickets.md). */
export const ticketsSchema = z.object({
  /**
   * Keys file in HAProxy's tls-ticket-keys format: one base64 key of 48 bytes a line (key name ‖
   * AES-128 key ‖ HMAC key, e.g. `openssl rand 48 | base64 -w0`), oldest first; `#` comments.
   * Created (3 keys) when missing and `rotate` > 0. 80-byte (AES-256) keys are refused: Node's
   * ticket API takes AES-128 keys only. Without a file the keys live in memory (and, with HA, in the
   * sealed replicated state).
   */
  file: z.string().optional(),
  /** Rotation period of the encryption key; 0: never (the file is rotated by someone else). */
  rotate: duration.default('12h'),
  /** Keys kept (HAProxy keeps 3: previous, current, next). */
  keep: z.number().int().min(2).max(16).default(3),
}).strict();

export type TicketsConfig = z.output<typeof ticketsSchema>;
