import { describe, expect, it } from "vitest"
import * as Sketch from "./Sketch.ts"

const sketchOf = (users: Iterable<string>) => {
  let sketch = Sketch.empty()
  for (const user of users) sketch = Sketch.add(sketch, Sketch.hashOf(user))
  return sketch
}

const range = (from: number, to: number, prefix = "u") =>
  Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`)

// The contract allows 2 % on unique counts; the sketch's standard error is 0.81 %, so 2 % is about 2.5 sigma.
describe("unique users sketch", () => {
  it("counts small buckets exactly (sparse), repeated users once", () => {
    const users = [...range(0, 300), ...range(0, 300)]
    const sketch = sketchOf(users)
    expect(sketch.kind).toBe("sparse")
    expect(Sketch.estimate(sketch)).toBe(300)
    expect(Sketch.estimate(Sketch.empty())).toBe(0)
  })

  it("stays within 2 % of the exact count from 1,000 to 1,000,000 users, measured", () => {
    for (const n of [1_000, 5_000, 20_000, 50_000, 100_000, 300_000, 1_000_000]) {
      const estimate = Sketch.estimate(sketchOf(range(0, n, `n${n}-`)))
      expect(Math.abs(estimate - n) / n, `${n} users: ${estimate}`).toBeLessThan(0.02)
    }
  }, 60_000)

  it("merges buckets into the union of their users (range uniques), sparse and dense alike", () => {
    const a = sketchOf(range(0, 400)) // sparse
    const b = sketchOf(range(200, 600)) // sparse, overlapping: 600 in all
    expect(Sketch.estimate(Sketch.merge(a, b))).toBeGreaterThan(600 * 0.98)
    expect(Sketch.estimate(Sketch.merge(a, b))).toBeLessThan(600 * 1.02)
    const c = sketchOf(range(0, 40_000)) // dense
    const d = sketchOf(range(30_000, 80_000)) // dense: 80,000 in all
    const merged = Sketch.merge(Sketch.merge(c, d), a)
    expect(Math.abs(Sketch.estimate(merged) - 80_000) / 80_000).toBeLessThan(0.02)
    // Merging is the union: the same as one sketch of every user.
    expect(Sketch.estimate(merged)).toBe(Sketch.estimate(sketchOf(range(0, 80_000))))
  })

  it("reads back what it stored", () => {
    for (const sketch of [Sketch.empty(), sketchOf(range(0, 10)), sketchOf(range(0, 5_000))]) {
      const back = Sketch.deserialize(Sketch.serialize(sketch))
      expect(back.kind).toBe(sketch.kind)
      expect(Sketch.estimate(back)).toBe(Sketch.estimate(sketch))
    }
    expect(Sketch.serialize(sketchOf(range(0, 10))).length).toBe(81)
    expect(() => Sketch.deserialize(Buffer.from([9, 1, 2]))).toThrow()
  })
})
