// The container entry of the fixture that fails on purpose (faultsApp.ts): shared/ErrorCapture.test.ts runs it as a
// child process and makes it meet an unhandled rejection.
import * as Main from "../Main.ts"
import { app } from "./faultsApp.ts"

Main.run(app)
