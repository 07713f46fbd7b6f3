import { Effect, Layer, Option, Schema } from "effect"
import { topicOf } from "../../shared/CloudEvent.ts"
import { EventBus } from "../../shared/EventBus.ts"
import { UserId } from "./Role.ts"
import { Roles } from "./Roles.ts"

const AccountEvent = Schema.Struct({
  userId: Schema.String,
  email: Schema.optional(Schema.String),
  emailVerified: Schema.optional(Schema.Boolean),
})
const decodeAccountEvent = Schema.decodeUnknownEffect(AccountEvent)
const decodeUserId = Schema.decodeUnknownOption(UserId)

/**
 * The first administrator: the account whose email equals `BOOTSTRAP_ADMIN_EMAIL` (case-insensitively) gets the
 * built-in admin role once the address is proven: when identity reports it verified (`identity.email.verified`), or
 * created already verified (`identity.user.created` with `emailVerified`, e.g. through an OpenID Provider). Granting
 * it to an unverified registration would hand the platform to whoever registers the address first. Consumed from `identity.events` (group `authz_bootstrap_admin`, idempotent through
 * the inbox); nothing is subscribed when no email is configured.
 */
export const BootstrapAdminLive = (options: { readonly email: Option.Option<string> }) =>
  Option.match(options.email, {
    onNone: () => Layer.empty,
    onSome: (configured) =>
      Layer.effectDiscard(
        Effect.gen(function* () {
          const bus = yield* EventBus
          const roles = yield* Roles
          const wanted = configured.trim().toLowerCase()
          yield* bus.subscribe({
            topic: topicOf("identity"),
            types: ["identity.user.created", "identity.email.verified"],
            group: "authz_bootstrap_admin",
            handler: (event) =>
              Effect.gen(function* () {
                const data = yield* decodeAccountEvent(event.data)
                if (data.email?.trim().toLowerCase() !== wanted) return
                if (event.type === "identity.user.created" && data.emailVerified !== true) return
                const userId = decodeUserId(data.userId)
                if (Option.isNone(userId)) {
                  return yield* Effect.logWarning("bootstrap administrator has no valid user id", { event: event.id })
                }
                if (!(yield* roles.grantAdmin(userId.value))) return
                yield* Effect.logInfo("bootstrap administrator granted the admin role", { userId: userId.value })
                // The caches go when the inbox transaction commits (Roles.grantAdmin registers it).
              }),
          })
        }),
      ),
  })
