import { randomUUID } from "node:crypto"
import { type Context, Effect, Layer } from "effect"
import { expect } from "vitest"
import { Db, type DbOptions } from "../../../shared/Db.ts"
import { migrate } from "../../../shared/Migrator.ts"
import * as Outbox from "../../../shared/Outbox.ts"
import * as PgEventBus from "../../../shared/PgEventBus.ts"
import type { AnalyticsUnderTest } from "./analyticsApp.ts"

/** A producer as every function is one: its database with the outbox (and the embedded bus's tables). */
export const producerLayer = (db: DbOptions) =>
  Layer.effectDiscard(migrate([...Outbox.migrations, ...PgEventBus.migrations])).pipe(
    Layer.provideMerge(Outbox.Outbox.layer(db.schema)),
    Layer.provideMerge(Db.layer(db)),
  )

/** Publishes events through a producer's outbox, in one transaction. */
export const publisher =
  (context: () => Context.Context<Db | Outbox.Outbox>) =>
  (events: ReadonlyArray<Outbox.NewEvent>): Promise<unknown> =>
    Effect.runPromise(
      Effect.gen(function* () {
        const db = yield* Db
        const outbox = yield* Outbox.Outbox
        return yield* db.transaction(Effect.forEach(events, (e) => outbox.publish(e)))
      }).pipe(Effect.provideContext(context())),
    )

/** Analytics' overview of the last hour, read as `reader`. */
export interface Overview {
  readonly signups: number
  readonly activeUsers: { readonly day: number; readonly week: number; readonly month: number }
  readonly logins: number
  readonly posts: number
  readonly subscriptions: { readonly active: number }
  readonly mrr: { readonly amount: number; readonly currency: string | null }
}
export const overviewOf = async (analytics: AnalyticsUnderTest, reader: string): Promise<Overview> => {
  const from = new Date(Date.now() - 3_600_000).toISOString()
  const to = new Date(Date.now() + 60_000).toISOString()
  const response = await fetch(`${analytics.url}/api/v1/analytics/overview?from=${from}&to=${to}`, {
    headers: await analytics.as(reader),
  })
  expect(response.status).toBe(200)
  return (await response.json()) as Overview
}

/**
 * What the platform-event tests publish as the producers would: a signup per user, a login for the first `logins`
 * users, and one post published by the first user (the overview's signups, logins and posts).
 */
export const signupsLoginsAndAPost = (users: ReadonlyArray<string>, logins: number): ReadonlyArray<Outbox.NewEvent> => [
  ...users.map((userId) => ({
    type: "identity.user.created",
    subject: userId,
    data: { userId, email: `${userId}@example.com`, emailVerified: false },
  })),
  ...users
    .slice(0, logins)
    .map((userId) => ({ type: "auth.login.succeeded", subject: userId, data: { actor: userId, userId } })),
  postPublished(users[0]!),
]

/** A `blog.post.published` event by `actor`. */
export const postPublished = (actor: string): Outbox.NewEvent => ({
  type: "blog.post.published",
  subject: randomUUID(),
  data: { actor, postId: randomUUID() },
})
