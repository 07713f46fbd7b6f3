import * as Lambda from "../../shared/Lambda.ts"
import { app } from "./App.ts"

/** AWS Lambda entry (API Gateway HTTP API, payload v2): analytics's guarded HTTP app (App.ts `app`). */
export const handler = Lambda.handler(app)
