import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** The version of the installed package (package.json next to dist/): `pairlb --version`, the stats page. */
export function packageVersion(): string {
  return (cached ??= (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version);
}
