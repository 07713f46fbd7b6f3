import * as Main from "../../shared/Main.ts"
import { app } from "./App.ts"

// Container entry: the gateway's edge server (App.ts `app`) until SIGTERM.
Main.run(app)
