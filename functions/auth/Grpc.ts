import { Effect, Schema } from "effect"
import { AuthServiceService, type ValidateTokenResponse } from "../../proto/gen/auth/v1/auth.ts"
import { SessionRevocations } from "../../shared/access/SessionRevocations.ts"
import * as GrpcServer from "../../shared/GrpcServer.ts"
import { decode } from "../../shared/Problem.ts"
import { Tokens } from "./Tokens.ts"

const ValidateTokenRequest = Schema.Struct({ token: Schema.String.check(Schema.isMaxLength(8192)) })

const refused = (reason: string): ValidateTokenResponse => ({
  valid: false,
  userId: "",
  sessionId: "",
  expiresAt: 0,
  reason,
})

/** Auth's gRPC service (auth.v1.AuthService): token validation for services that want it done for them. */
export const AuthGrpc = GrpcServer.service(AuthServiceService, {
  validateToken: (request) =>
    Effect.gen(function* () {
      const { token } = yield* decode(ValidateTokenRequest)(request)
      const tokens = yield* Tokens
      const revocations = yield* SessionRevocations
      const verified = yield* Effect.result(tokens.verifyAccessToken(token))
      if (verified._tag === "Failure") {
        if (verified.failure._tag === "InvalidToken") return refused(verified.failure.reason)
        return yield* verified.failure
      }
      const claims = verified.success
      if (yield* revocations.isRevoked(claims.sid)) return refused("revoked")
      return { valid: true, userId: claims.sub, sessionId: claims.sid, expiresAt: claims.exp, reason: "" }
    }),
})

/** Everything auth serves over gRPC (loaded by main.ts once HTTP listens). */
export const services = [AuthGrpc]
