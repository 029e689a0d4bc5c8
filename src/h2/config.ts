import { z } from 'zod';
import { durationAtLeast } from '../config/types.js';

/**
 * `h2_limits:` of a listen section or a frontend: what one HTTP/2 client connection may do before
 * it is refused (src/h2/guard.ts, docs/http2.md "Limits and attacks"). Defaults follow nginx and
 * HAProxy: 100 concurrent streams, 64 KiB windows (RFC 9113 default), header lists as large as an
 * HTTP/1.1 request head may be. The `*_per_10s` bounds are per connection, over fixed 10 s windows.
 */
export const h2LimitsSchema = z.object({
  /** SETTINGS_MAX_CONCURRENT_STREAMS: most streams a client may have open at once (nginx `http2_max_concurrent_streams` 128, HAProxy `tune.h2.max-concurrent-streams` 100). */
  max_concurrent_streams: z.number().int().min(1).max(10_000).default(100),
  /**
   * SETTINGS_MAX_HEADER_LIST_SIZE: largest decompressed request header list, bytes (each field
   * counts name + value + 32, RFC 9113 §6.5.2). A request over it is refused with RST_STREAM
   * (ENHANCE_YOUR_CALM) before any of it reaches a backend; this also bounds an HPACK bomb.
   */
  max_header_list_size: z.number().int().min(1024).max(1 << 20).default(16384),
  /** Most header fields in a request, pseudo-headers excluded. Default: the section's `max_headers`. */
  max_header_pairs: z.number().int().min(8).max(10_000).optional(),
  /** SETTINGS_HEADER_TABLE_SIZE: HPACK dynamic table the client's encoder may use (decoder memory per connection). */
  header_table_size: z.number().int().min(0).max(1 << 16).default(4096),
  /** SETTINGS_INITIAL_WINDOW_SIZE: how much request body a client may send per stream before we read it. */
  initial_window_size: z.number().int().min(16384).max(2 ** 31 - 1).default(65535),
  /** Most memory nghttp2 may hold for one connection, MiB; beyond it new streams are refused (Node's maxSessionMemory). */
  max_session_memory: z.number().int().min(1).max(1024).default(10),
  /**
   * A stream with no frame either way for this long is reset (RST_STREAM CANCEL) and its memory
   * freed: a client that never opens its flow-control window (zero-window stall) is cut here.
   * Longer than the backend's `timeouts.server` so a slow backend gets its 504 first.
   */
  stream_idle: durationAtLeast(100).default('60s'),
  /**
   * A connection with no open stream and no frame for this long is closed (GOAWAY NO_ERROR); this
   * also cuts a client that sends the preface and nothing else. Default: `timeouts.client`.
   */
  idle: durationAtLeast(100).optional(),
  /** Streams a client may cancel (RST_STREAM before the response ended) per 10 s; more: GOAWAY ENHANCE_YOUR_CALM (rapid reset, CVE-2023-44487). */
  max_resets_per_10s: z.number().int().min(1).max(1_000_000).default(200),
  /** Streams refused before reaching the proxy (header list too large, too many fields, HPACK bomb) per 10 s; more: GOAWAY ENHANCE_YOUR_CALM. */
  max_rejected_per_10s: z.number().int().min(1).max(1_000_000).default(50),
  /** PING frames a client may send per 10 s; more: GOAWAY ENHANCE_YOUR_CALM. */
  max_pings_per_10s: z.number().int().min(1).max(1_000_000).default(100),
  /** SETTINGS frames a client may send per 10 s; more: GOAWAY ENHANCE_YOUR_CALM. */
  max_settings_per_10s: z.number().int().min(1).max(1_000_000).default(50),
}).strict();

export type H2LimitsConfig = z.output<typeof h2LimitsSchema>;
