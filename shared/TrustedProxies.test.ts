import { ConfigProvider, Effect } from "effect"
import { describe, expect, it } from "vitest"
import * as Cfg from "./Config.ts"
import { entryProblem, trustedProxies } from "./TrustedProxies.ts"

describe("TrustedProxies", () => {
  it("matches exact addresses and CIDR ranges, IPv4 and IPv6, IPv4-mapped peers as IPv4", () => {
    const trusted = trustedProxies(["127.0.0.1", "10.0.0.0/8", "fd00::/8", "::1"])
    for (const address of ["127.0.0.1", "::ffff:127.0.0.1", "10.1.2.3", "::ffff:10.255.0.1", "fd12::5", "::1"]) {
      expect(trusted(address), address).toBe(true)
    }
    for (const address of ["127.0.0.2", "11.0.0.1", "fe80::1", "::2", "", "not-an-ip", "10.0.0.1, 1.2.3.4"]) {
      expect(trusted(address), address).toBe(false)
    }
    expect(trustedProxies([])("127.0.0.1")).toBe(false)
  })

  it("names what is wrong with an entry that is not an address or a range", () => {
    expect(entryProblem("10.0.0.0/8")).toBeUndefined()
    expect(entryProblem("::ffff:127.0.0.1")).toBeUndefined()
    expect(entryProblem("10.0.0.0/33")).toMatch(/prefix length must be 0-32/)
    expect(entryProblem("fd00::/129")).toMatch(/0-128/)
    expect(entryProblem("10.0.0.0/x")).toMatch(/prefix length/)
    expect(entryProblem("gateway.local")).toMatch(/not an IP address or a CIDR range/)
    expect(entryProblem("10.0.0.0/8/8")).toMatch(/not an IP address/)
    // An IPv4-mapped range is an IPv4 range: below /96 it would cover every IPv4 client.
    expect(entryProblem("::ffff:10.0.0.1/24")).toMatch(/prefix length must be 96-128/)
    expect(entryProblem("::ffff:10.0.0.0/104")).toBeUndefined()
    const mapped = trustedProxies(["::ffff:10.0.0.0/104"])
    expect(mapped("10.1.2.3")).toBe(true)
    expect(mapped("1.2.3.4")).toBe(false)
  })

  it("refuses a bad TRUSTED_PROXIES at start, naming the key", async () => {
    const load = (value: string) =>
      Effect.runPromise(
        Effect.flip(Cfg.load({ proxies: Cfg.base({ httpPort: 1 }).trustedProxies })).pipe(
          Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { TRUSTED_PROXIES: value } }))),
        ),
      )
    const error = await load("10.0.0.0/8, 300.1.1.1")
    expect(error.problems.join("\n")).toMatch(/TRUSTED_PROXIES/)
    const ok = await Effect.runPromise(
      Cfg.load({ proxies: Cfg.base({ httpPort: 1 }).trustedProxies }).pipe(
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { TRUSTED_PROXIES: " 10.0.0.0/8 ,::1," } }))),
      ),
    )
    expect(ok.proxies).toEqual(["10.0.0.0/8", "::1"])
  })
})
