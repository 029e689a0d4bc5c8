/**
 * Registers every control-plane module with the App, in start order. Each module file pushes its
 * factory onto `moduleFactories` when imported; this file only fixes the order.
 */
import './health/checker.js';
import './scale/scaler.js';
import './stats/module.js';
import './admin/module.js';
import './acme/module.js';
import './ha/module.js';
export {};
