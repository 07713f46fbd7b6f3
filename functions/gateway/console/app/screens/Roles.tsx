// Roles and assignments: create a role from the permissions every function declares (or wildcard grants), delete
// one; find a user by email, see their roles, grant one, revoke one.
import { useState } from "preact/hooks"
import { ok } from "../../../../../client/index.ts"
import { useAccess } from "../access.ts"
import { api } from "../session.ts"
import type { Item } from "../types.ts"
import {
  Busy,
  Confirm,
  Field,
  Loading,
  onSubmit,
  PagedTable,
  ProblemBox,
  useAction,
  useLoad,
  usePages,
  value,
  When,
} from "../ui.tsx"

type Role = Item<"/api/v1/roles", "get">
type User = Item<"/api/v1/users", "get">

/** Every page of a cursor list (roles, permissions: short lists a form chooses from). */
const all = async <A,>(page: (cursor?: string) => Promise<{ items: ReadonlyArray<A>; nextCursor?: string | null }>) => {
  const items: Array<A> = []
  let cursor: string | undefined
  do {
    const answer = await page(cursor)
    items.push(...answer.items)
    cursor = answer.nextCursor ?? undefined
  } while (cursor !== undefined)
  return items
}

/** A full page (100) from `cursor` on. */
const pageQuery = (cursor?: string) => ({ limit: "100", ...(cursor ? { cursor } : {}) })

const CreateRole = ({ created }: { readonly created: () => void }) => {
  const { can } = useAccess()
  const permissions = useLoad(
    () =>
      can("authz.permission.read")
        ? all((cursor) => ok(api.GET("/api/v1/permissions", { params: { query: pageQuery(cursor) } })))
        : Promise.resolve([]),
    [],
  )
  const create = useAction(async (form: HTMLFormElement) => {
    const checked = [...form.querySelectorAll<HTMLInputElement>("input[name=permission]:checked")].map((i) => i.value)
    const extra = value(form, "grants")
      .split(/[\s,]+/)
      .filter((g) => g !== "")
    await ok(
      api.POST("/api/v1/roles", {
        body: {
          name: value(form, "name"),
          description: value(form, "description") || null,
          permissions: [...checked, ...extra],
        },
      }),
    )
    form.reset()
    created()
  })
  return (
    <form class="card" aria-label="Create a role" onSubmit={onSubmit((form) => void create.run(form))}>
      <h2>Create a role</h2>
      <Field label="Name">
        <input name="name" required maxLength={100} />
      </Field>
      <Field label="Description">
        <input name="description" maxLength={500} />
      </Field>
      <fieldset class="permissions">
        <legend>Permissions</legend>
        {permissions.loading ? <Loading what="permissions" /> : null}
        <ProblemBox error={permissions.error} />
        {(permissions.data ?? []).map((p) => (
          <label key={p.name} class="check">
            <input type="checkbox" name="permission" value={p.name} /> <code>{p.name}</code>{" "}
            <small>{p.description}</small>
          </label>
        ))}
      </fieldset>
      <Field label="Other grants" hint="Wildcards such as blog.* or *, separated by commas">
        <input name="grants" autocomplete="off" />
      </Field>
      <ProblemBox error={create.error} />
      <Busy busy={create.busy} type="submit">
        Create role
      </Busy>
    </form>
  )
}

const RoleRow = ({ role, changed }: { readonly role: Role; readonly changed: () => void }) => {
  const { can } = useAccess()
  return (
    <tr>
      <td>{role.name}</td>
      <td>{role.description}</td>
      <td>
        {role.permissions.map((p) => (
          <code key={p} class="badge">
            {p}
          </code>
        ))}
      </td>
      <td>
        <When at={role.createdAt} />
      </td>
      <td>
        {can("authz.role.delete") ? (
          <Confirm
            label="Delete"
            question={`Delete ${role.name}?`}
            action={() => ok(api.DELETE("/api/v1/roles/{id}", { params: { path: { id: role.id } } }))}
            done={changed}
          />
        ) : null}
      </td>
    </tr>
  )
}

const RoleList = ({ version, changed }: { readonly version: number; readonly changed: () => void }) => {
  const pages = usePages([])
  const list = useLoad(
    () =>
      ok(
        api.GET("/api/v1/roles", {
          params: { query: pages.query(20) },
        }),
      ),
    [pages.cursor, version],
  )
  return (
    <PagedTable
      list={list}
      pages={pages}
      what="roles"
      caption="Roles"
      head={["Name", "Description", "Grants", "Created", ""]}
      empty="No roles yet."
      row={(r) => <RoleRow key={r.id} role={r} changed={changed} />}
    />
  )
}

/** One user's roles, with a grant of another role and a revoke of each. */
const UserRoles = ({ user, version }: { readonly user: User; readonly version: number }) => {
  const { can } = useAccess()
  const held = useLoad(
    () =>
      ok(api.GET("/api/v1/users/{userId}/roles", { params: { path: { userId: user.id }, query: { limit: "100" } } })),
    [user.id, version],
  )
  const roles = useLoad(
    () =>
      can("authz.role.read")
        ? all((cursor) => ok(api.GET("/api/v1/roles", { params: { query: pageQuery(cursor) } })))
        : Promise.resolve([]),
    [version],
  )
  const grant = useAction(async (roleId: string) => {
    await ok(api.PUT("/api/v1/users/{userId}/roles/{roleId}", { params: { path: { userId: user.id, roleId } } }))
    held.reload()
  })
  const revoke = useAction(async (roleId: string) => {
    await ok(api.DELETE("/api/v1/users/{userId}/roles/{roleId}", { params: { path: { userId: user.id, roleId } } }))
    held.reload()
  })
  const holding = new Set((held.data?.items ?? []).map((r) => r.id))
  return (
    <section aria-label={`Roles of ${user.email}`}>
      <h2>
        Roles of {user.name} ({user.email})
      </h2>
      <ProblemBox error={held.error ?? roles.error} />
      {held.data === undefined ? (
        held.loading ? (
          <Loading what="their roles" />
        ) : null
      ) : held.data.items.length === 0 ? (
        <p>No roles.</p>
      ) : (
        <ul class="held">
          {held.data.items.map((r) => (
            <li key={r.id}>
              {r.name}{" "}
              {can("authz.assignment.delete") ? (
                <Busy busy={revoke.busy} type="button" class="danger" onClick={() => void revoke.run(r.id)}>
                  Revoke {r.name}
                </Busy>
              ) : null}
            </li>
          ))}
        </ul>
      )}
      {can("authz.assignment.create") ? (
        <form aria-label="Grant a role" onSubmit={onSubmit((form) => void grant.run(value(form, "role")))}>
          <Field label="Role to grant">
            <select name="role" required>
              <option value="">Choose a role</option>
              {(roles.data ?? [])
                .filter((r) => !holding.has(r.id))
                .map((r) => (
                  <option key={r.id} value={r.id}>
                    {r.name}
                  </option>
                ))}
            </select>
          </Field>
          <Busy busy={grant.busy} type="submit">
            Grant
          </Busy>
        </form>
      ) : null}
      <ProblemBox error={grant.error ?? revoke.error} />
    </section>
  )
}

const Assignments = ({ version }: { readonly version: number }) => {
  const [user, setUser] = useState<User | undefined>()
  const find = useAction(async (email: string) => {
    setUser(undefined)
    const found = await ok(api.GET("/api/v1/users", { params: { query: { email, limit: "1" } } }))
    if (found.items[0] === undefined) throw new Error(`No user has the email ${email}.`)
    setUser(found.items[0])
  })
  return (
    <>
      <h2>Assignments</h2>
      <form aria-label="Find a user's roles" onSubmit={onSubmit((form) => void find.run(value(form, "email")))}>
        <Field label="User's email">
          <input name="email" type="email" required autocomplete="off" />
        </Field>
        <Busy busy={find.busy} type="submit">
          Show roles
        </Busy>
      </form>
      <ProblemBox error={find.error} />
      {user === undefined ? null : <UserRoles user={user} version={version} />}
    </>
  )
}

export const Roles = () => {
  const { can } = useAccess()
  // Bumped by a role's creation or deletion: the list and the assignment form's choices load again.
  const [version, setVersion] = useState(0)
  const changed = () => setVersion((v) => v + 1)
  return (
    <>
      {can("authz.role.create") ? <CreateRole created={changed} /> : null}
      {can("authz.role.read") ? <RoleList version={version} changed={changed} /> : null}
      {can("authz.assignment.read") && can("identity.user.read") ? <Assignments version={version} /> : null}
    </>
  )
}
