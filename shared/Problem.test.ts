import { describe, expect, it } from "vitest"
import * as Problem from "./Problem.ts"

// The problem classes (what the OpenAPI documents) and `forStatus` (what the kernel answers for a bare status: the
// gateway's own refusals, Node's 408/431, a defect's 500) say the same code, title and type for the same status.
const bareStatusProblems = [
  Problem.BadRequest,
  Problem.Unauthorized,
  Problem.Forbidden,
  Problem.NotFound,
  Problem.RequestTimeout,
  Problem.PayloadTooLarge,
  Problem.TooManyRequests,
  Problem.RequestHeaderFieldsTooLarge,
  Problem.InternalError,
  Problem.ServiceUnavailable,
  Problem.GatewayTimeout,
]

describe("problem classes and forStatus", () => {
  it.each(bareStatusProblems.map((P) => [P.name, P] as const))("%s answers as forStatus says", (_, P) => {
    const required = P === Problem.TooManyRequests ? { retryAfter: 1 } : {}
    const documented = { ...new (P as unknown as new (fields: object) => object)(required) } as {
      code: string
      status: number
      title: string
      type: string
    }
    const { code, title } = Problem.forStatus(documented.status)
    expect({ code: documented.code, title: documented.title }).toEqual({ code, title })
    expect(documented.type).toBe(`urn:problem:${code}`)
  })
})
