// What the signed-in user may do, from `GET /api/v1/users/me/permissions` (their effective grants, wildcards
// included): screens and actions appear only where a grant covers them. The functions enforce every call anyway.
import { createContext } from "preact"
import { useContext } from "preact/hooks"
import { matchingGrant } from "../../../authz/Covers.ts"

export interface Access {
  /** The signed-in user's id. */
  readonly userId: string
  /** Whether one of the user's grants covers `permission`. */
  readonly can: (permission: string) => boolean
}

export const accessOf = (userId: string, grants: ReadonlyArray<string>): Access => ({
  userId,
  can: (permission) => matchingGrant(grants, permission) !== undefined,
})

export const AccessContext = createContext<Access>({ userId: "", can: () => false })

export const useAccess = () => useContext(AccessContext)
