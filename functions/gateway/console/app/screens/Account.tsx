// The signed-in user's own account: profile, name change, and ending every session.
import { ok } from "../../../../../client/index.ts"
import { api, signOut } from "../session.ts"
import { Busy, Field, Loading, onSubmit, ProblemBox, useAction, useLoad, value, When } from "../ui.tsx"

export const Account = () => {
  const me = useLoad(() => ok(api.GET("/api/v1/users/me")), [])
  const grants = useLoad(() => ok(api.GET("/api/v1/users/me/permissions")), [])
  const rename = useAction(async (name: string) => {
    await ok(api.PATCH("/api/v1/users/me", { body: { name } }))
    me.reload()
  })
  const everywhere = useAction(async () => {
    await ok(api.POST("/api/v1/auth/logout-all"))
    await signOut()
  })
  if (me.data === undefined)
    return me.error === undefined ? <Loading what="your account" /> : <ProblemBox error={me.error} />
  return (
    <>
      <section aria-label="Profile">
        <dl class="stats">
          <div>
            <dt>Email</dt>
            <dd>{me.data.email}</dd>
          </div>
          <div>
            <dt>Status</dt>
            <dd>{me.data.emailVerified ? "verified" : "unverified"}</dd>
          </div>
          <div>
            <dt>Member since</dt>
            <dd>
              <When at={me.data.createdAt} />
            </dd>
          </div>
        </dl>
        <form aria-label="Change your name" onSubmit={onSubmit((form) => void rename.run(value(form, "name")))}>
          <Field label="Name">
            <input name="name" value={me.data.name} required maxLength={200} />
          </Field>
          <Busy busy={rename.busy} type="submit">
            Save
          </Busy>
        </form>
        <ProblemBox error={rename.error} />
      </section>
      <section aria-label="Your grants">
        <h2>Your grants</h2>
        <ProblemBox error={grants.error} />
        <p>
          {(grants.data?.items ?? []).map((g) => (
            <code key={g} class="badge">
              {g}
            </code>
          ))}
        </p>
      </section>
      <section aria-label="Sessions">
        <h2>Sessions</h2>
        <Busy busy={everywhere.busy} type="button" class="danger" onClick={() => void everywhere.run()}>
          Sign out everywhere
        </Busy>
        <ProblemBox error={everywhere.error} />
      </section>
    </>
  )
}
