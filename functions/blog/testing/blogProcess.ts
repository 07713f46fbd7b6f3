// A blog process for Scheduling.test.ts: blog's app as main.ts runs it, in a process of its own (so that the test can
// kill it with SIGKILL), with authz's answers stood in for by BLOG_TEST_GRANTS (JSON). It prints its URL when it serves.
import { startApp } from "../../../shared/testing/appHarness.ts"
import { app } from "../App.ts"
import { type Grants, grantsStandIn } from "./blogApp.ts"

const grants = JSON.parse(process.env.BLOG_TEST_GRANTS ?? "{}") as Grants
const running = await startApp(app, { standIns: () => grantsStandIn(grants) })
process.stdout.write(`listening ${running.url}\n`)
