import { describe, expect, it } from "vitest"
import { routesOf } from "../../shared/access/Route.ts"
import { topicOf } from "../../shared/CloudEvent.ts"
import { JWKS_URL_KEY } from "../../shared/Config.ts"
import { AuthApi } from "./Api.ts"
import { manifest } from "./module.ts"
import { JWKS_PATH, jwksAddress, sessionRevoked } from "./TokenVerification.ts"

// What auth tells every verifier is said once, in TokenVerification.ts; these fail when auth's contract, manifest or
// events drift from it.
describe("auth's token verification facts", () => {
  it("serves its keys at JWKS_PATH, publicly, on its HTTP contract", () => {
    expect(routesOf(AuthApi)).toContainEqual(
      expect.objectContaining({ method: "GET", path: JWKS_PATH, auth: "public" }),
    )
    expect(jwksAddress).toEqual({ key: JWKS_URL_KEY, dependency: manifest.name, path: JWKS_PATH })
  })

  it("announces ended sessions on its own topic with an event type its manifest publishes", () => {
    expect(sessionRevoked.topic).toBe(topicOf(manifest.name))
    expect(manifest.events.publishes).toContain(sessionRevoked.type)
  })
})
