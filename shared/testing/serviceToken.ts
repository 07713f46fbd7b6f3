import { Effect, Option } from "effect"
import * as ServiceIdentity from "../ServiceIdentity.ts"

/** A service token of `caller` for `callee` signed with the caller's development key, as GrpcClient sends it. */
export const serviceToken = (caller: string, callee: string): Promise<string> =>
  Effect.runPromise(
    ServiceIdentity.make({
      name: caller,
      callers: [],
      functions: [],
      config: { serviceKey: Option.none(), servicePublicKeys: Option.none() },
    }).token(callee),
  )
