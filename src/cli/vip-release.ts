import { parseArgs } from 'node:util';
import { loadConfigFile } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { createLogger } from '../log.js';
import { Vip } from '../ha/vip.js';
import { register } from './registry.js';

/**
 * `pairlb vip-release -c FILE`: remove this node's VIP from its interface if it is there. The
 * systemd unit runs it as ExecStopPost, after every stop, crash or kill: a pairlb that is not
 * running must not hold the VIP (its kernel would answer ARP for it and keep clients away from the
 * peer). The running daemon's own watchdog does the same at once; this is the last resort when
 * both were killed together.
 */
register('vip-release', {
  summary: 'remove the ha.vip address from its interface (systemd ExecStopPost)',
  usage: 'pairlb vip-release -c FILE\n\nExit 0 when the VIP is not on the interface afterwards (also when there is no ha section), 1 otherwise.',
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c', default: '/etc/pairlb/pairlb.yaml' } } });
    let cfg;
    try { cfg = loadConfigFile(values.config!); } catch (e) {
      process.stderr.write((e instanceof ConfigError ? e.message : String(e)) + '\n');
      return 1;
    }
    if (!cfg.ha?.enabled) return 0;
    const log = createLogger(cfg.global.log.level);
    try {
      await new Vip(cfg.ha.vip, cfg.ha.garp, log).remove();
      log.info({ mod: 'ha', vip: cfg.ha.vip.address, dev: cfg.ha.vip.interface }, 'vip-release: VIP not on the interface');
      return 0;
    } catch (e) {
      log.error({ mod: 'ha', err: e }, 'vip-release: could not remove the VIP');
      return 1;
    }
  },
});
