// Users: find by email, page through everyone, disable or enable an account, delete one.
import { useState } from "preact/hooks"
import { ok } from "../../../../../client/index.ts"
import { useAccess } from "../access.ts"
import { api } from "../session.ts"
import type { Item } from "../types.ts"
import {
  Busy,
  Confirm,
  Field,
  onSubmit,
  PagedTable,
  ProblemBox,
  useAction,
  useLoad,
  usePages,
  value,
  When,
} from "../ui.tsx"

type User = Item<"/api/v1/users", "get">

const Row = ({ user, changed }: { readonly user: User; readonly changed: () => void }) => {
  const { can, userId } = useAccess()
  const status = useAction(async (next: "active" | "disabled") =>
    ok(api.PATCH("/api/v1/users/{id}", { params: { path: { id: user.id } }, body: { status: next } })),
  )
  const self = user.id === userId
  return (
    <tr>
      <td>{user.name}</td>
      <td>{user.email}</td>
      <td>
        <span class="badge">{user.status}</span> {user.emailVerified ? "verified" : "unverified"}
      </td>
      <td>
        <When at={user.createdAt} />
      </td>
      <td>
        <div class="actions">
          {can("identity.user.update") && !self ? (
            <Busy
              busy={status.busy}
              type="button"
              class="secondary"
              onClick={async () => (await status.run(user.status === "active" ? "disabled" : "active")) && changed()}
            >
              {user.status === "active" ? "Disable" : "Enable"}
            </Busy>
          ) : null}
          {can("identity.user.delete") && !self ? (
            <Confirm
              label="Delete"
              question={`Delete ${user.email}?`}
              action={() => ok(api.DELETE("/api/v1/users/{id}", { params: { path: { id: user.id } } }))}
              done={changed}
            />
          ) : null}
        </div>
        <ProblemBox error={status.error} />
      </td>
    </tr>
  )
}

export const Users = () => {
  const [email, setEmail] = useState("")
  const pages = usePages([email])
  const list = useLoad(
    () =>
      ok(
        api.GET("/api/v1/users", {
          params: {
            query: { ...pages.query(20), ...(email ? { email } : {}) },
          },
        }),
      ),
    [email, pages.cursor],
  )
  return (
    <>
      <form aria-label="Find users" onSubmit={onSubmit((form) => setEmail(value(form, "email")))}>
        <Field label="Email" hint="The whole address (any case); empty lists everyone">
          <input name="email" type="search" autocomplete="off" />
        </Field>
        <button type="submit">Search</button>
      </form>
      <PagedTable
        list={list}
        pages={pages}
        what="users"
        caption={email ? `Users with email ${email}` : "Users"}
        head={["Name", "Email", "Status", "Created", ""]}
        empty="No users found."
        row={(u) => <Row key={u.id} user={u} changed={list.reload} />}
      />
    </>
  )
}
