import * as Main from "../../shared/Main.ts"
import { app } from "./App.ts"

// Container entry: auth's servers and background work (App.ts `app`) until SIGTERM.
Main.run(app)
