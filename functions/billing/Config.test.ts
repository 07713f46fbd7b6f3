import { ConfigProvider, Effect } from "effect"
import { describe, expect, it } from "vitest"
import { loadConfig, parseRetrySchedule, testClocks } from "./Config.ts"

// Billing's own keys, read as at start: the dunning schedule checked, test clocks on by default outside production only.

const load = (env: Record<string, string>) =>
  Effect.runPromise(
    Effect.result(
      loadConfig.pipe(
        Effect.provide(
          ConfigProvider.layer(ConfigProvider.fromEnv({ env: { DATABASE_URL: "postgres://x/y", ...env } })),
        ),
      ),
    ),
  )

describe("billing's configuration", () => {
  it("reads the retry schedule: 1,3,5 by default, increasing days (fractions allowed)", async () => {
    const defaults = await load({})
    expect(defaults).toMatchObject({ _tag: "Success", success: { retryScheduleDays: [1, 3, 5] } })
    expect(await load({ BILLING_RETRY_SCHEDULE_DAYS: " 0.5, 2 ,7" })).toMatchObject({
      success: { retryScheduleDays: [0.5, 2, 7] },
    })
    // Set but empty is unset, as for every key.
    expect(await load({ BILLING_RETRY_SCHEDULE_DAYS: "" })).toMatchObject({ success: { retryScheduleDays: [1, 3, 5] } })
    expect(parseRetrySchedule("1")).toEqual([1])
    expect(parseRetrySchedule("1,2,3,4,5,6,7,8,9,10")).toHaveLength(10)
  })

  it.each([
    ["1,,3", "not a number"],
    ["3,1", "increase"],
    ["1,1", "increase"],
    ["0", "after 0"],
    ["-1", "not a number"],
    ["366", "by day 365"],
    ["1e2", "not a number"],
    ["1,2,3,4,5,6,7,8,9,10,11", "at most 10"],
    ["one", "not a number"],
  ])("refuses BILLING_RETRY_SCHEDULE_DAYS=%j at start, naming the key", async (value, why) => {
    expect(parseRetrySchedule(value)).toEqual(expect.stringContaining(why))
    const result = await load({ BILLING_RETRY_SCHEDULE_DAYS: value })
    expect(result._tag).toBe("Failure")
    expect(String((result as { failure: { message: string } }).failure.message)).toContain(
      "BILLING_RETRY_SCHEDULE_DAYS",
    )
  })

  it("serves test clocks by default outside production, not in it, and as BILLING_TEST_CLOCKS says when set", async () => {
    expect(await load({})).toMatchObject({ success: { testClocks: true } })
    expect(await load({ NODE_ENV: "test" })).toMatchObject({ success: { testClocks: true } })
    expect(await load({ BILLING_TEST_CLOCKS: "false" })).toMatchObject({ success: { testClocks: false } })
    const clocks = (env: Record<string, string>) => Effect.runPromise(testClocks.parse(ConfigProvider.fromEnv({ env })))
    expect(await clocks({ NODE_ENV: "production" })).toBe(false)
    expect(await clocks({ NODE_ENV: "production", BILLING_TEST_CLOCKS: "true" })).toBe(true)
    expect(await clocks({ NODE_ENV: "development" })).toBe(true)
    const invalid = await load({ BILLING_TEST_CLOCKS: "maybe" })
    expect(String((invalid as { failure: { message: string } }).failure.message)).toContain("BILLING_TEST_CLOCKS")
  })
})
