import * as Lambda from "../../shared/Lambda.ts"
import { app } from "./App.ts"

/** AWS Lambda entry (API Gateway HTTP API, payload v2): auth's guarded HTTP app (App.ts `app`), without background work. */
export const handler = Lambda.handler(app)
