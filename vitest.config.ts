import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    globalSetup: ['test/fault-ledger.setup.ts', 'test/cache-dir.setup.ts'],
    testTimeout: 120_000,
    // The tests' own processes load ONNX Runtime directly too; they stay as quiet as the tool (test/privacy.test.ts
    // checks the tool without this).
    env: { ORT_DISABLE_TELEMETRY: '1' },
    hookTimeout: 120_000,
  },
});
