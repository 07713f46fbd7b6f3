import { readFileSync } from "node:fs"
import { relative } from "node:path"
import { describe, expect, it } from "vitest"
import { GENERATED, generate } from "./generate.ts"

// Like the proto check: the committed client must be what `npm run client` gives from the contracts now.
describe("the typed client (client/)", () => {
  it("is current: openapi.json and openapi.ts are what `npm run client` generates", async () => {
    const fresh = await generate()
    const stale = (["json", "types"] as const)
      .filter((kind) => readFileSync(GENERATED[kind], "utf8") !== fresh[kind])
      .map((kind) => relative(process.cwd(), GENERATED[kind]))
    expect(stale, `${stale.join(", ")} stale: run \`npm run client\` and commit the result`).toEqual([])
  }, 60_000)
})
