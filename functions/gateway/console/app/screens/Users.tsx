// Users: find by email, page through everyone, disable or enable an account, delete one.
import { useState } from "preact/hooks"
import { ok } from "../../../../../client/index.ts"
import { useAccess } from "../access.ts"
import { api } from "../session.ts"
import type { Item } from "../types.ts"
import {
  Busy,
  Field,
  Loading,
  onSubmit,
  Pager,
  ProblemBox,
  Table,
  useAction,
  useLoad,
  usePages,
  value,
  When,
} from "../ui.tsx"

type User = Item<"/api/v1/users", "get">

const Row = ({ user, changed }: { readonly user: User; readonly changed: () => void }) => {
  const { can, userId } = useAccess()
  const [confirming, setConfirming] = useState(false)
  const status = useAction(async (next: "active" | "disabled") =>
    ok(api.PATCH("/api/v1/users/{id}", { params: { path: { id: user.id } }, body: { status: next } })),
  )
  const remove = useAction(async () => ok(api.DELETE("/api/v1/users/{id}", { params: { path: { id: user.id } } })))
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
            confirming ? (
              <>
                <Busy
                  busy={remove.busy}
                  type="button"
                  class="danger"
                  onClick={async () => (await remove.run()) && changed()}
                >
                  Delete {user.email}?
                </Busy>
                <button type="button" class="secondary" onClick={() => setConfirming(false)}>
                  Keep
                </button>
              </>
            ) : (
              <button type="button" class="danger" onClick={() => setConfirming(true)}>
                Delete
              </button>
            )
          ) : null}
        </div>
        <ProblemBox error={status.error ?? remove.error} />
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
            query: { limit: "20", ...(email ? { email } : {}), ...(pages.cursor ? { cursor: pages.cursor } : {}) },
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
      <ProblemBox error={list.error} />
      {list.data === undefined ? (
        list.loading ? (
          <Loading what="users" />
        ) : null
      ) : (
        <>
          <Table
            caption={email ? `Users with email ${email}` : "Users"}
            head={["Name", "Email", "Status", "Created", ""]}
          >
            {list.data.items.length === 0 ? (
              <tr>
                <td colSpan={5}>No users found.</td>
              </tr>
            ) : (
              list.data.items.map((u) => <Row key={u.id} user={u} changed={list.reload} />)
            )}
          </Table>
          <Pager pages={pages} nextCursor={list.data.nextCursor} label="Users" />
        </>
      )}
    </>
  )
}
