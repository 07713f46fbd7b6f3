import { createHash } from "node:crypto"

// Unique users per bucket: a HyperLogLog sketch (Flajolet et al. 2007) with 2^14 registers (standard error
// 1.04 / sqrt(16384) ≈ 0.81 %), read with Ertl's improved estimator ("New cardinality estimation algorithms for
// HyperLogLog sketches", 2017), which needs no empirical bias tables and is unbiased from 0 to far past 2^32. A small
// bucket stays sparse: its users' 64-bit hashes themselves, counted exactly, until there are more than SPARSE_MAX of
// them (then 8 × SPARSE_MAX bytes, a quarter of the dense form). Sketches merge (union) without loss, so the users of
// a range are the merge of its buckets' sketches. Serialized: one byte of kind, then the hashes (sorted, 8 bytes each,
// big-endian) or the 16,384 registers (one byte each).

/** Registers: 2^P. */
export const P = 14
const M = 1 << P
/** Above this many distinct hashes a sparse sketch becomes dense. */
export const SPARSE_MAX = 512
const SPARSE = 1
const DENSE = 2
const Q = 64 - P

/** A sketch being built or merged: a set of hashes (sparse) or the registers (dense). */
export type Sketch =
  | { readonly kind: "sparse"; readonly hashes: Set<bigint> }
  | { readonly kind: "dense"; readonly registers: Uint8Array }

/** An empty sketch. */
export const empty = (): Sketch => ({ kind: "sparse", hashes: new Set() })

/** The 64-bit hash a user is counted by (the first 8 bytes of its SHA-256: uniform, stable across versions of Node). */
export const hashOf = (user: string): bigint => createHash("sha256").update(user).digest().readBigUInt64BE(0)

const setRegister = (registers: Uint8Array, hash: bigint) => {
  const index = Number(hash >> BigInt(Q))
  const rest = hash & ((1n << BigInt(Q)) - 1n)
  // The rank: the position of the first 1 bit in the remaining Q bits (Q + 1 when they are all 0).
  const rank = rest === 0n ? Q + 1 : Q - rest.toString(2).length + 1
  if (rank > registers[index]!) registers[index] = rank
}

const densify = (hashes: Iterable<bigint>): Uint8Array => {
  const registers = new Uint8Array(M)
  for (const hash of hashes) setRegister(registers, hash)
  return registers
}

/** Adds a user's hash; returns the sketch (the same object, or its dense form once the sparse one is full). */
export const add = (sketch: Sketch, hash: bigint): Sketch => {
  if (sketch.kind === "dense") {
    setRegister(sketch.registers, hash)
    return sketch
  }
  sketch.hashes.add(hash)
  return sketch.hashes.size > SPARSE_MAX ? { kind: "dense", registers: densify(sketch.hashes) } : sketch
}

/** The union of two sketches (neither is changed when the result is dense; `a` may be reused when sparse). */
export const merge = (a: Sketch, b: Sketch): Sketch => {
  if (a.kind === "sparse" && b.kind === "sparse") {
    const hashes = new Set(a.hashes)
    for (const h of b.hashes) hashes.add(h)
    return hashes.size > SPARSE_MAX ? { kind: "dense", registers: densify(hashes) } : { kind: "sparse", hashes }
  }
  const registers = a.kind === "dense" ? Uint8Array.from(a.registers) : densify(a.hashes)
  if (b.kind === "dense") {
    for (let i = 0; i < M; i++) if (b.registers[i]! > registers[i]!) registers[i] = b.registers[i]!
  } else for (const h of b.hashes) setRegister(registers, h)
  return { kind: "dense", registers }
}

// Ertl's sigma and tau (Algorithm 6 of the paper).
const sigma = (x: number): number => {
  if (x === 1) return Number.POSITIVE_INFINITY
  let y = 1
  let z = x
  for (;;) {
    x *= x
    const previous = z
    z += x * y
    y += y
    if (z === previous) return z
  }
}

const tau = (x: number): number => {
  if (x === 0 || x === 1) return 0
  let y = 1
  let z = 1 - x
  for (;;) {
    x = Math.sqrt(x)
    const previous = z
    y *= 0.5
    z -= (1 - x) ** 2 * y
    if (z === previous) return z / 3
  }
}

/** The estimated number of distinct users: exact while sparse, else Ertl's improved estimator (≈ 0.81 % error). */
export const estimate = (sketch: Sketch): number => {
  if (sketch.kind === "sparse") return sketch.hashes.size
  const histogram = new Array<number>(Q + 2).fill(0)
  for (let i = 0; i < M; i++) histogram[sketch.registers[i]!]!++
  let z = M * tau(1 - histogram[Q + 1]! / M)
  for (let k = Q; k >= 1; k--) z = 0.5 * (z + histogram[k]!)
  z += M * sigma(histogram[0]! / M)
  return Math.round((M / (2 * Math.log(2)) / z) * M)
}

/** The sketch as stored (bytea). */
export const serialize = (sketch: Sketch): Buffer => {
  if (sketch.kind === "dense") {
    const out = Buffer.alloc(1 + M)
    out[0] = DENSE
    out.set(sketch.registers, 1)
    return out
  }
  const sorted = [...sketch.hashes].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  const out = Buffer.alloc(1 + 8 * sorted.length)
  out[0] = SPARSE
  for (const [i, h] of sorted.entries()) out.writeBigUInt64BE(h, 1 + 8 * i)
  return out
}

/** A stored sketch read back; anything else is a defect (the column is only written by `serialize`). */
export const deserialize = (bytes: Uint8Array): Sketch => {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (buffer[0] === DENSE && buffer.length === 1 + M)
    return { kind: "dense", registers: Uint8Array.from(buffer.subarray(1)) }
  if (buffer[0] === SPARSE && (buffer.length - 1) % 8 === 0) {
    const hashes = new Set<bigint>()
    for (let i = 1; i < buffer.length; i += 8) hashes.add(buffer.readBigUInt64BE(i))
    return { kind: "sparse", hashes }
  }
  throw new Error(`not a sketch (kind ${buffer[0]}, ${buffer.length} bytes)`)
}
