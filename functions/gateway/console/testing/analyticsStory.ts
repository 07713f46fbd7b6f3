// The Analytics screen's story in a real browser, for any test that has a console open and signed in as an admin (who
// has signed in, so `auth.login.succeeded` has counted them): open #/analytics, see the overview's numbers, and a
// uPlot chart drawn from a series with non-zero points, uPlot loaded as its own chunk. Screenshot 07-analytics.
import { randomUUID } from "node:crypto"
import { expect } from "vitest"
import type { ConsoleBrowser } from "./browser.ts"

// The page's canvas, as the function evaluated in it sees it (this file is type-checked without the DOM's types).
interface Canvas {
  readonly width: number
  readonly height: number
  getContext(
    kind: "2d",
  ): { getImageData(x: number, y: number, w: number, h: number): { data: ArrayLike<number> } } | null
}

/** Waits (up to 10 s: events show within 2 s) until the admin's logins are counted by analytics. */
const loginsCounted = async (url: string, token: string) => {
  const to = new Date(Date.now() + 86_400_000).toISOString()
  const from = new Date(Date.now() - 86_400_000).toISOString()
  const deadline = Date.now() + 10_000
  for (;;) {
    const res = await fetch(`${url}/api/v1/analytics/overview?from=${from}&to=${to}`, {
      headers: { authorization: `Bearer ${token}` },
    })
    expect(res.status).toBe(200)
    const { logins } = (await res.json()) as { logins: number }
    if (logins > 0 || Date.now() > deadline) return logins
    await new Promise((r) => setTimeout(r, 250))
  }
}

/** Waits (up to 10 s) until the story's own events are counted; answers how many were. */
const storyCounted = async (url: string, token: string, name: string) => {
  const to = new Date(Date.now() + 3_600_000).toISOString()
  const from = new Date(Date.now() - 3_600_000).toISOString()
  const deadline = Date.now() + 10_000
  for (;;) {
    const res = await fetch(`${url}/api/v1/analytics/timeseries?event=${name}&interval=hour&from=${from}&to=${to}`, {
      headers: { authorization: `Bearer ${token}` },
    })
    expect(res.status).toBe(200)
    const { points } = (await res.json()) as { points: Array<{ count: number }> }
    const total = points.reduce((sum, p) => sum + p.count, 0)
    if (total >= 3 || Date.now() > deadline) return total
    await new Promise((r) => setTimeout(r, 250))
  }
}

/** `url` is the gateway's origin; `token` the signed-in admin's access token (for checks beside the page). */
export const analyticsStory = async (view: ConsoleBrowser, url: string, token: string) => {
  const { page } = view
  // A few events of the story's own, through the public ingest (the admin as their user), for the event field.
  const name = `console.story.${randomUUID().slice(0, 8)}`
  const ingest = await fetch(`${url}/api/v1/analytics/events`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ events: [1, 2, 3].map(() => ({ id: randomUUID(), name, properties: { plan: "pro" } })) }),
  })
  expect(ingest.status).toBe(202)
  expect(await loginsCounted(url, token)).toBeGreaterThan(0)
  expect(await storyCounted(url, token, name)).toBe(3)

  await page.click("a[href='#/analytics']")
  const logins = await view.waitForText(".tile", /^Logins\d+/)
  expect(Number(logins.replace("Logins", ""))).toBeGreaterThan(0)
  await view.waitForText(".tile", "MRR")
  // The chart of logins per day: a canvas with drawn pixels, and its text alternative with non-zero points.
  const canvas = await page.waitForSelector(".chart canvas", { timeout: 10_000 })
  expect(canvas).not.toBeNull()
  const label = await page.$eval(".chart", (e) => e.getAttribute("aria-label") ?? "")
  expect(label).toMatch(/^auth\.login\.succeeded per day, .*: [1-9]\d* events/)
  const counts = await page.$$eval(".visually-hidden tbody tr td:nth-child(2)", (cells) =>
    cells.map((c) => Number(c.textContent)),
  )
  expect(counts.some((c) => c > 0)).toBe(true)
  const inked = await page.$eval(".chart canvas", (c) => {
    const canvas = c as unknown as Canvas
    const pixels = canvas.getContext("2d")?.getImageData(0, 0, canvas.width, canvas.height).data ?? []
    let n = 0
    for (let i = 3; i < pixels.length; i += 4) if ((pixels[i] ?? 0) > 0) n++
    return n
  })
  expect(inked).toBeGreaterThan(100)
  // uPlot came as a chunk of its own, loaded for this screen.
  expect(view.answers.some((a) => /^GET \/console\/uPlot[^/]*\.js 200$/.test(a))).toBe(true)

  // The story's own event, per hour: its three events in one point.
  await view.fill("Event", name, "form[aria-label='Time series event']")
  await view.choose("form[aria-label='Time series event'] select[name=interval]", "hour")
  await page.click("form[aria-label='Time series event'] button[type=submit]")
  await view.waitForText(".visually-hidden caption", `${name} per hour`)
  const story = await page.$$eval(".visually-hidden tbody tr td:nth-child(2)", (cells) =>
    cells.map((c) => Number(c.textContent)),
  )
  expect(story.reduce((a, b) => a + b, 0)).toBe(3)
  // Top values of the story's event's property.
  await view.fill("Event", name, "form[aria-label='Top values of']")
  await view.fill("Property", "plan", "form[aria-label='Top values of']")
  await page.click("form[aria-label='Top values of'] button[type=submit]")
  await view.waitForText("section[aria-label='Top values'] caption", `Top plan of ${name}`)
  const top = await view.waitForText("section[aria-label='Top values'] tbody tr", "pro")
  expect(top).toBe("pro3")
  await view.shot("07-analytics")
}
