/**
 * One base error with stable codes. The proxy maps codes to HTTP statuses in one place
 * (src/proxy/errors-page.ts); control-plane code logs `code` so alerts can match on it.
 */
export class PairlbError extends Error {
  constructor(public readonly code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PairlbError';
  }
}

export interface ConfigProblemLike { path: string; message: string; line?: number }

export class ConfigError extends PairlbError {
  constructor(public readonly file: string, public readonly problems: ConfigProblemLike[]) {
    super('PAIRLB_CONFIG_INVALID', `${file}: ${problems.length} error(s)\n` + problems.map((p) => '  ' + formatProblem(p)).join('\n'));
    this.name = 'ConfigError';
  }
}

export function formatProblem(p: ConfigProblemLike): string {
  return `${p.path}: ${p.message}${p.line !== undefined ? ` (line ${p.line})` : ''}`;
}
