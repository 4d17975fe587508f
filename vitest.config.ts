import { defineConfig } from 'vitest/config';

// Forks, not threads: CUDA contexts inside worker threads are fragile. DSK_POISON makes every fresh
// allocation NaN-filled, so a kernel that leaves part of its output unwritten cannot pass a test.
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    env: { DSK_POISON: '1' },
    execArgv: ['--expose-gc'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
