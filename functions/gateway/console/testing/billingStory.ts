// The Billing screen's story in a real browser, for any test that has a console open and signed in as an admin: create
// a plan in KWD (three decimals: 12.345 is 12345 fils) through the form, see it in the plans table, and check through
// the API that it was stored in the currency's minor unit. Screenshot 06-billing.
import { randomUUID } from "node:crypto"
import { expect } from "vitest"
import type { ConsoleBrowser } from "./browser.ts"

interface Plan {
  readonly code: string
  readonly amount: number
  readonly currency: string
  readonly interval: string
  readonly intervalCount: number
  readonly trialDays: number
}

/** Every active plan, through the API's pages. */
const allPlans = async (url: string, token: string) => {
  const plans: Array<Plan> = []
  let cursor: string | null | undefined
  do {
    const res = await fetch(`${url}/api/v1/billing/plans?limit=100${cursor ? `&cursor=${cursor}` : ""}`, {
      headers: { authorization: `Bearer ${token}` },
    })
    expect(res.status).toBe(200)
    const page = (await res.json()) as { items: Array<Plan>; nextCursor?: string | null }
    plans.push(...page.items)
    cursor = page.nextCursor
  } while (cursor)
  return plans
}

/** `url` is the gateway's origin; `token` the signed-in admin's access token (for checks beside the page). */
export const billingStory = async (view: ConsoleBrowser, url: string, token: string) => {
  const { page } = view
  const code = `story-${randomUUID().slice(0, 8)}`
  await page.click("a[href='#/billing']")
  await view.waitForText("h2", "Plans")
  const form = "form[aria-label='New plan']"
  await view.fill("Code", code, form)
  await view.fill("Name", "Story plan", form)
  await view.fill("Description", "Made by the console's billing story", form)
  await view.fill("Amount", "12.345", form)
  await view.choose(`${form} select[name=currency]`, "KWD")
  await view.choose(`${form} select[name=interval]`, "month")
  await view.fill("Trial days", "7", form)
  await page.click(`${form} button[type=submit]`)
  const row = await view.waitForText("section[aria-label=Plans] tbody tr", code)
  expect(row).toContain("Story plan")
  expect(row).toContain("7 days")
  // The price as the reader's locale shows KWD: three decimals.
  expect(row).toMatch(/12\.345/)
  // The form is reset for the next plan: its interval back to its default.
  expect(await page.$eval(`${form} select[name=interval]`, (e) => (e as unknown as { value: string }).value)).toBe(
    "month",
  )
  const stored = (await allPlans(url, token)).find((p) => p.code === code)
  expect(stored).toMatchObject({ amount: 12_345, currency: "KWD", interval: "month", intervalCount: 1, trialDays: 7 })
  // The caller's own subscriptions and invoices load (an admin sees the choice of everyone's too).
  await view.waitForText("section[aria-label='My subscriptions'] caption", "My subscriptions")
  await view.waitForText("section[aria-label='My invoices'] caption", "My invoices")
  await view.shot("06-billing")
  return code
}
