import { Effect } from "effect"
import type { HttpServerRequest } from "effect/http"
import { NUL_MESSAGE, nulIn } from "./NulText.ts"
import * as Problem from "./Problem.ts"

const BODYLESS = new Set(["GET", "HEAD", "OPTIONS", "DELETE"])

// NUL characters in the path, the query or a JSON body: 400 before any handler (see NulText). The body read here is
// the one the handler decodes (the request caches it); one that cannot be read is left to the handler's own error.
export const refuseNul = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function* () {
    const json = !BODYLESS.has(request.method) && /json/i.test(request.headers["content-type"] ?? "")
    const body = json ? yield* Effect.orElseSucceed(request.text, () => undefined) : undefined
    const where = nulIn(request.url, body)
    if (where === undefined) return undefined
    return Problem.response(400, "The request does not match the API contract", {
      code: "validation_failed",
      type: "urn:problem:validation_failed",
      title: "Validation failed",
      errors: [{ path: where, message: NUL_MESSAGE }],
    })
  })
