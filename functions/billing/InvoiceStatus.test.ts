import { describe, expect, it } from "vitest"
import { canTransition, refusal, TRANSITIONS } from "./InvoiceStatus.ts"
import { InvoiceStatus } from "./Model.ts"

const ALL = InvoiceStatus.literals
const ALLOWED = new Set(["draft→open", "open→paid", "open→void", "open→uncollectible", "uncollectible→paid"])

describe("InvoiceStatus transitions", () => {
  it("lists every status", () => {
    expect(Object.keys(TRANSITIONS).sort()).toEqual([...ALL].sort())
  })

  it("allows exactly draft→open, open→paid|void|uncollectible and uncollectible→paid", () => {
    for (const from of ALL) {
      for (const to of ALL) {
        expect([`${from}→${to}`, canTransition(from, to)]).toEqual([`${from}→${to}`, ALLOWED.has(`${from}→${to}`)])
      }
    }
  })

  it("refuses every other pair (20 of 25) with a detail naming both states", () => {
    let refused = 0
    for (const from of ALL) {
      for (const to of ALL) {
        const why = refusal(from, to)
        if (ALLOWED.has(`${from}→${to}`)) {
          expect(why).toBeUndefined()
        } else {
          refused += 1
          expect(why).toContain(from)
          expect(why).toContain(to)
        }
      }
    }
    expect(refused).toBe(20)
    expect(refusal("paid", "void")).toBe("the invoice is paid, which is final: it cannot become void")
    expect(refusal("open", "draft")).toBe("the invoice is open: it can become paid or void or uncollectible, not draft")
  })
})
