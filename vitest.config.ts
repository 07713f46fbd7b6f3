import { defineConfig } from "vitest/config"

// Tests run against real servers: the global setup starts them (infra/up.sh) and loads .env.test.
export default defineConfig({
  test: {
    include: [
      "functions/**/*.test.ts",
      "shared/**/*.test.ts",
      "infra/**/*.test.ts",
      "e2e/**/*.test.ts",
      "client/**/*.test.ts",
      "bin/**/*.test.ts",
    ],
    globalSetup: ["./infra/test-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    fileParallelism: true,
    maxWorkers: 2,
  },
})
