import { Effect } from "effect"
import type { HttpServerResponse } from "effect/http"
import { challenge } from "../../shared/access/Authentication.ts"
import { Permissions } from "../../shared/access/Permissions.ts"
import * as Problem from "../../shared/Problem.ts"
import { EdgeAuth } from "./EdgeAuth.ts"
import { tooMany, unavailable } from "./EdgeProblems.ts"
import { type Quota, type RateLimited, RateLimits } from "./RateLimits.ts"
import { countingOf, type RouteSettings } from "./RouteSettings.ts"
import type { Route } from "./RouteTable.ts"

/** The admission decision: the gateway's own refusal, or who sent the request and the quotas it counted against. */
export type Admission =
  | { readonly _tag: "Refused"; readonly answer: HttpServerResponse.HttpServerResponse }
  | { readonly _tag: "Admitted"; readonly actor: string | undefined; readonly quotas: ReadonlyArray<Quota> }

const refused = (answer: HttpServerResponse.HttpServerResponse): Admission => ({ _tag: "Refused", answer })

/**
 * Whether a matched route's request goes on: rate limited per address, authenticated at the edge when the route is
 * not public (then rate limited per user), authorised when the route names a permission.
 */
export const admission = Effect.gen(function* () {
  const auth = yield* EdgeAuth
  const permissions = yield* Permissions
  const limits = yield* RateLimits
  return (route: Route, own: RouteSettings, authorization: string | undefined, clientIp: string) =>
    Effect.gen(function* () {
      const quotas: Array<Quota> = []

      // The address's count goes out first; the token check is local (remembered tokens and sessions), so the
      // user's count usually leaves in the same write to Redis.
      const ipCount =
        own.ip.perMinute > 0
          ? yield* limits.start("ip", own.ip.bucket, clientIp, own.ip.perMinute, countingOf(own.ip))
          : undefined
      const counted = (count: Effect.Effect<Quota, RateLimited>) =>
        Effect.map(Effect.result(count), (quota) => {
          if (quota._tag === "Failure") return tooMany(quota.failure.limit, quota.failure.retryAfter)
          quotas.push(quota.success)
          return undefined
        })

      let actor: string | undefined
      let userCount: Effect.Effect<Quota, RateLimited> | undefined
      if (route.auth !== "public") {
        const verified = yield* Effect.result(auth.authenticate(authorization))
        if (verified._tag === "Failure") {
          // An address over its limit hears that before anything about its token.
          const refusal = ipCount === undefined ? undefined : yield* counted(ipCount)
          if (refusal !== undefined) return refused(refusal)
          const error = verified.failure
          if (error._tag === "Refused") {
            yield* Effect.logInfo("access token refused at the edge", { reason: error.reason })
            return refused(challenge(error.reason))
          }
          return refused(unavailable(error.detail ?? "sign-in state cannot be checked, retry later", 1))
        }
        actor = verified.success.sub
        if (own.user.perMinute > 0) {
          userCount = yield* limits.start("user", own.user.bucket, actor, own.user.perMinute, countingOf(own.user))
        }
      }
      for (const count of [ipCount, userCount]) {
        const refusal = count === undefined ? undefined : yield* counted(count)
        if (refusal !== undefined) return refused(refusal)
      }
      if (actor !== undefined && typeof route.auth === "object") {
        const allowed = yield* Effect.result(permissions.check(actor, route.auth.permission))
        if (allowed._tag === "Failure") return refused(unavailable("permissions cannot be checked, retry later", 1))
        if (!allowed.success)
          return refused(Problem.response(403, `this needs the permission ${route.auth.permission}`))
      }
      return { _tag: "Admitted", actor, quotas } satisfies Admission
    })
})
