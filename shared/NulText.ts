/**
 * The platform's one rule for NUL characters: no text that reaches a function may hold U+0000. Postgres cannot store
 * it in `text` (the query fails, which looked like an outage: 503 and retries), and nothing legitimate sends it. The
 * HTTP middleware and the gRPC server refuse it at the edge, before any handler, as bad input.
 */

// A JSON `\u0000` escape that is not itself escaped (an odd run of backslashes before `u0000`).
const JSON_NUL = /(?<!\\)(?:\\\\)*\\u0000/i

/** Where a request carries a NUL character: `path`, `query` or `body`, or undefined when it carries none. */
export const nulIn = (url: string, jsonBody?: string): "path" | "query" | "body" | undefined => {
  const q = url.indexOf("?")
  const path = q === -1 ? url : url.slice(0, q)
  if (/%00/i.test(path) || path.includes("\u0000")) return "path"
  if (q !== -1 && (/%00/i.test(url.slice(q)) || url.slice(q).includes("\u0000"))) return "query"
  if (jsonBody !== undefined && (JSON_NUL.test(jsonBody) || jsonBody.includes("\u0000"))) return "body"
  return undefined
}

/** The dotted path of the first string holding a NUL character in a decoded message (gRPC), if any. */
export const nulField = (value: unknown, path = ""): string | undefined => {
  if (typeof value === "string") return value.includes("\u0000") ? path || "(message)" : undefined
  if (value === null || typeof value !== "object" || value instanceof Uint8Array) return undefined
  for (const [key, inner] of Object.entries(value)) {
    const found = nulField(inner, path ? `${path}.${key}` : key)
    if (found !== undefined) return found
  }
  return undefined
}

/** What a refused request is told. */
export const NUL_MESSAGE = "must not contain NUL characters (U+0000)"
