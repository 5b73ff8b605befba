import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Tests setns() their own main thread: each file needs its own process.
    pool: 'forks',
    globalSetup: ['test/global-setup.ts'],
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
