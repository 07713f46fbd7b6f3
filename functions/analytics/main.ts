import * as Main from "../../shared/Main.ts"
import { app } from "./App.ts"

// Container entry: analytics's server (App.ts `app`) until SIGTERM.
Main.run(app)
