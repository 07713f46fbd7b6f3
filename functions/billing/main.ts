import * as Main from "../../shared/Main.ts"
import { app } from "./App.ts"

// Container entry: billing's server (App.ts `app`) until SIGTERM.
Main.run(app)
