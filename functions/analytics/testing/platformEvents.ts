import { randomUUID } from "node:crypto"
import type * as Outbox from "../../../shared/Outbox.ts"

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
