/**
 * CLI subcommands register here; src/cli/main.ts dispatches. Each command parses its own argv
 * (util.parseArgs) and returns an exit code.
 */
export interface Command {
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number>;
}

export const commands = new Map<string, Command>();

export function register(name: string, cmd: Command): void {
  commands.set(name, cmd);
}
