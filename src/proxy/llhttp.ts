import { createRequire } from 'node:module';

/**
 * Node's own native llhttp binding, the `HTTPParser` that node:http uses, for the native upstream
 * engine (src/proxy/engines/native.ts: responses) and the lean HTTP/1 front (src/proxy/front/h1.ts:
 * requests). `_http_common` is an internal module of Node (present in Node 20, 22 and 24): it is
 * loaded in this file only and its shape checked at load (checkHttpParserInternal, also in
 * test/unit/runtime.test.ts), so a Node upgrade that changes it fails loudly, not per request.
 */
const require = createRequire(import.meta.url);

export interface ParserCtor {
  new (): Parser;
  REQUEST: number;
  RESPONSE: number;
  kOnMessageBegin: number; kOnHeaders: number; kOnHeadersComplete: number; kOnBody: number; kOnMessageComplete: number; kOnExecute: number;
}
export interface Parser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(b: Buffer): number | Error;
  finish(): number | Error | undefined;
  close(): void;
  /** Parse what the stream handle reads in C++, without a JS 'data' event per read (node:http does this). */
  consume(handle: object): void;
  unconsume(): void;
  /** The buffer being parsed (consume mode: the last read). */
  getCurrentBuffer(): Buffer;
  [k: number]: unknown;
}

/** What this project needs of the internal. */
export function checkHttpParserInternal(P: unknown, methods?: unknown): string[] {
  const bad: string[] = [];
  if (typeof P !== 'function') return ['_http_common.HTTPParser is not a constructor'];
  const C = P as unknown as Record<string, unknown>;
  for (const k of ['REQUEST', 'RESPONSE', 'kOnMessageBegin', 'kOnHeaders', 'kOnHeadersComplete', 'kOnBody', 'kOnMessageComplete', 'kOnExecute']) {
    if (typeof C[k] !== 'number') bad.push(`HTTPParser.${k} is ${typeof C[k]}, expected a number`);
  }
  const proto = (P as { prototype?: Record<string, unknown> }).prototype ?? {};
  for (const m of ['initialize', 'execute', 'finish', 'close', 'consume', 'unconsume', 'getCurrentBuffer']) if (typeof proto[m] !== 'function') bad.push(`HTTPParser.prototype.${m} is missing`);
  if (methods !== undefined && !(Array.isArray(methods) && methods[1] === 'GET')) bad.push('_http_common.methods is not the llhttp method table');
  return bad;
}

const common = require('_http_common') as { HTTPParser: ParserCtor; methods: string[] };
{
  const bad = checkHttpParserInternal(common.HTTPParser, common.methods);
  if (bad.length) throw new Error(`Node ${process.version} changed the internal llhttp binding pairlb relies on (engine native, global.http1_front lean): ${bad.join('; ')}. Use engine: undici and http1_front: node.`);
}
export const HTTPParser: ParserCtor = common.HTTPParser;
/** llhttp's method numbers → names (the request parser reports a number). */
export const METHODS: readonly string[] = common.methods;
