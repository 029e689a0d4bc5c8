/**
 * Operator subcommands (status, backend, reload, hash-password, …) import themselves here so that
 * main.ts stays a dispatcher. Each file calls register() from ./registry.js.
 */
import './reload.js';
import './ops-status.js';
import './ops-backend.js';
import './ops-hash.js';
import './vip-release.js';
import './import.js';
