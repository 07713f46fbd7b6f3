import { Context, Effect, Layer, Option } from "effect"
import type { User as ProtoUser } from "../../proto/gen/identity/v1/identity.ts"
import type { GrpcFailure } from "../../shared/Grpc.ts"
import * as GrpcDeferred from "../../shared/GrpcDeferred.ts"
import type { EmailTaken, ServiceUnavailable, ValidationFailed } from "../../shared/Problem.ts"
import * as Problem from "../../shared/Problem.ts"

/** A user as auth sees it (identity owns the record). */
export interface IdentityUser {
  readonly id: string
  readonly email: string
  readonly name: string
  readonly emailVerified: boolean
  readonly status: string
  readonly createdAt: string
  readonly updatedAt: string
}

/** The port auth needs from identity: accounts and credential checks (gRPC to identity.v1.IdentityService). */
export class IdentityClient extends Context.Service<
  IdentityClient,
  {
    /** The user when the password is right (identity does the same work for an unknown email). */
    verifyCredentials(email: string, password: string): Effect.Effect<Option.Option<IdentityUser>, ServiceUnavailable>
    /** Creates an account (a verification mail goes out unless `emailVerified`). */
    createUser(input: {
      readonly email: string
      readonly name: string
      readonly password?: string
      readonly emailVerified?: boolean
    }): Effect.Effect<IdentityUser, EmailTaken | ValidationFailed | ServiceUnavailable>
    /** The account with this email (case-insensitive), if any. */
    findByEmail(email: string): Effect.Effect<Option.Option<IdentityUser>, ServiceUnavailable>
    /** The account with this id, if any. */
    findById(id: string): Effect.Effect<Option.Option<IdentityUser>, ServiceUnavailable>
  }
>()("auth/IdentityClient") {
  /**
   * The client over a gRPC channel to identity (`IDENTITY_GRPC_URL`), closed with the layer. grpc-js is loaded and
   * the channel opened on the first call, not at start (auth answers /healthz sooner; 270 KB less to load first).
   */
  static readonly layer = (options: { readonly address: string }) =>
    Layer.effect(
      IdentityClient,
      Effect.gen(function* () {
        const client = {
          call: yield* GrpcDeferred.lazyClient(
            () => import("../../proto/gen/identity/v1/identity.ts").then((proto) => proto.IdentityServiceClient),
            { address: options.address },
          ),
        }

        const verifyCredentials = Effect.fn("IdentityClient.verifyCredentials")(function* (
          email: string,
          password: string,
        ) {
          const response = yield* client
            .call("verifyCredentials", { email, password }, { idempotent: true })
            .pipe(Effect.catch(unavailable))
          return response.valid && response.user ? Option.some(toUser(response.user)) : Option.none<IdentityUser>()
        })

        const createUser = Effect.fn("IdentityClient.createUser")(function* (input: {
          readonly email: string
          readonly name: string
          readonly password?: string
          readonly emailVerified?: boolean
        }) {
          const response = yield* client
            .call("createUser", input)
            .pipe(
              Effect.catch(
                (error): Effect.Effect<never, EmailTaken | ValidationFailed | ServiceUnavailable> =>
                  error._tag === "EmailTaken" || error._tag === "ValidationFailed"
                    ? Effect.fail(error)
                    : unavailable(error),
              ),
            )
          if (!response.user) return yield* unavailable(new Error("CreateUser answered without a user"))
          return toUser(response.user)
        })

        const lookup = (call: Effect.Effect<{ readonly user?: ProtoUser | undefined }, GrpcFailure>) =>
          call.pipe(
            Effect.map((response) => Option.map(Option.fromUndefinedOr(response.user), toUser)),
            // Not found, or not even a well-formed email: there is no such account.
            Effect.catch((error) =>
              error._tag === "NotFound" || error._tag === "ValidationFailed"
                ? Effect.succeed(Option.none<IdentityUser>())
                : unavailable(error),
            ),
          )

        const findByEmail = Effect.fn("IdentityClient.findByEmail")(function* (email: string) {
          return yield* lookup(client.call("getUserByEmail", { email }, { idempotent: true }))
        })

        const findById = Effect.fn("IdentityClient.findById")(function* (id: string) {
          return yield* lookup(client.call("getUser", { id }, { idempotent: true }))
        })

        return IdentityClient.of({ verifyCredentials, createUser, findByEmail, findById })
      }),
    )
}

const toUser = (user: ProtoUser): IdentityUser => ({
  id: user.id,
  email: user.email,
  name: user.name,
  emailVerified: user.emailVerified,
  status: user.status,
  createdAt: user.createdAt,
  updatedAt: user.updatedAt,
})

// Anything but the expected answers means identity cannot serve now: the caller gets a 503, the log the reason.
const unavailable = Problem.unavailable("identity unavailable", "accounts are unavailable, retry later")
