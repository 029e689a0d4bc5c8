import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Integration tests start real daemons and namespaces; 2 cores are shared by all of them.
    maxWorkers: 2,
    minWorkers: 1,
    reporters: process.env.CI ? ['verbose'] : ['default'],
  },
});
