import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type AppUnderTest, startApp } from "../../shared/testing/appHarness.ts"
import { freshSchema, sql } from "../../shared/testing/harness.ts"
import { app } from "./App.ts"

// Billing as main.ts runs it, on the real Postgres (infra/up.sh), in a schema of its own.
describe("billing", () => {
  const schema = freshSchema("billing").schema
  let running: AppUnderTest

  beforeAll(async () => {
    running = await startApp(app, { env: { DB_SCHEMA: schema } })
  })
  afterAll(() => running?.close())

  it("lists its items, newest first, from its own table", async () => {
    await sql(
      `INSERT INTO ${schema}.billing_items (title, created_at) VALUES ('first', now() - interval '1 minute'), ('second', now())`,
    )
    const response = await fetch(`${running.url}/api/v1/billing/items`)
    expect(response.status).toBe(200)
    const body = (await response.json()) as { items: Array<{ title: string }> }
    expect(body.items.map((i) => i.title)).toEqual(["second", "first"])
  })

  it("publishes its route in its contract, declared open", async () => {
    const document = (await (await fetch(`${running.url}/openapi.json`)).json()) as {
      paths: Record<string, { get?: { security?: unknown } }>
    }
    expect(Object.keys(document.paths)).toContain("/api/v1/billing/items")
    expect(document.paths["/api/v1/billing/items"]?.get?.security ?? []).toEqual([])
  })

  it("refuses what its contract does not serve with a problem, not a stack trace", async () => {
    const response = await fetch(`${running.url}/api/v1/billing/items`, { method: "DELETE" })
    expect(response.status).toBe(405)
    expect(response.headers.get("content-type")).toContain("application/problem+json")
  })
})
