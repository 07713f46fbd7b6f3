// The platform's web console: a sign-in form, then the screens the signed-in user's grants allow (screens.ts), routed
// by the URL's fragment (`/console#/users`). Everything it shows comes from the public API through the typed client.
import "./style.css"
import { render } from "preact"
import { useEffect, useRef, useState } from "preact/hooks"
import { ok } from "../../../../client/index.ts"
import { type Access, AccessContext, accessOf } from "./access.ts"
import { type Screen, screens } from "./screens.ts"
import {
  api,
  endReason,
  finishOidcSignIn,
  oidcProviders,
  oidcSignInUrl,
  onSessionChange,
  signedIn,
  signIn,
  signOut,
} from "./session.ts"
import { Busy, Field, Loading, onSubmit, ProblemBox, useAction, useLoad, value } from "./ui.tsx"

const SignIn = () => {
  const { run, busy, error } = useAction((email: string, password: string) => signIn(email, password))
  // Back from an OpenID provider's sign-in: its one-time code in the fragment, redeemed once.
  const oidc = useAction(finishOidcSignIn)
  useEffect(() => void oidc.run(), [])
  // Sign-in with a provider is offered only when the platform has some (a failure to list them just hides it).
  const providers = useLoad(() => oidcProviders().catch(() => []), [])
  const ended = endReason()
  return (
    <main class="sign-in" id="main">
      <h1>Platform console</h1>
      {ended === undefined ? null : <p class="notice">{ended}</p>}
      <form
        aria-label="Sign in"
        onSubmit={onSubmit(
          (form) => void run(value(form, "email"), (form.elements.namedItem("password") as HTMLInputElement).value),
        )}
      >
        <Field label="Email">
          <input name="email" type="email" autocomplete="username" required />
        </Field>
        <Field label="Password">
          <input name="password" type="password" autocomplete="current-password" required />
        </Field>
        <ProblemBox error={error} />
        <Busy busy={busy} type="submit">
          Sign in
        </Busy>
      </form>
      {providers.data?.length ? (
        <section aria-labelledby="providers-heading" class="providers">
          <h2 id="providers-heading">Or sign in with</h2>
          <ul>
            {providers.data.map((provider) => (
              <li key={provider}>
                <a class="button" href={oidcSignInUrl(provider)}>
                  Sign in with {provider}
                </a>
              </li>
            ))}
          </ul>
        </section>
      ) : null}
      <ProblemBox error={oidc.error} />
    </main>
  )
}

/** The fragment's screen path (`#/users` → `users`). */
const useRoute = () => {
  const read = () => location.hash.replace(/^#\/?/, "").split("/")[0] ?? ""
  const [route, setRoute] = useState(read)
  useEffect(() => {
    const changed = () => setRoute(read())
    addEventListener("hashchange", changed)
    return () => removeEventListener("hashchange", changed)
  }, [])
  return route
}

const Shell = ({ access, name, visible }: { access: Access; name: string; visible: ReadonlyArray<Screen> }) => {
  const route = useRoute()
  const screen = visible.find((s) => s.path === route) ?? visible[0]!
  const heading = useRef<HTMLHeadingElement>(null)
  // A new screen: its heading takes the focus (keyboard and screen-reader users start there).
  useEffect(() => heading.current?.focus(), [screen.path])
  const out = useAction(signOut)
  return (
    <AccessContext.Provider value={access}>
      <button type="button" class="skip" onClick={() => heading.current?.focus()}>
        Skip to content
      </button>
      <header class="top">
        <strong>Platform</strong>
        <nav aria-label="Screens">
          <ul>
            {visible.map((s) => (
              <li key={s.path}>
                <a href={`#/${s.path}`} aria-current={s === screen ? "page" : undefined}>
                  {s.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who" title={name}>
          {name}
        </span>
        <Busy busy={out.busy} type="button" onClick={() => void out.run()}>
          Sign out
        </Busy>
      </header>
      <main id="main">
        <h1 tabIndex={-1} ref={heading}>
          {screen.title}
        </h1>
        <screen.Component key={screen.path} />
      </main>
    </AccessContext.Provider>
  )
}

/** Who is signed in and what they may do, loaded once per session. */
const SignedIn = () => {
  const loaded = useLoad(async () => {
    const [me, grants] = await Promise.all([
      ok(api.GET("/api/v1/users/me")),
      ok(api.GET("/api/v1/users/me/permissions")),
    ])
    return { me, access: accessOf(me.id, grants.items) }
  }, [])
  if (loaded.data === undefined)
    return (
      <main id="main">
        {loaded.error === undefined ? <Loading what="your account" /> : <ProblemBox error={loaded.error} />}
      </main>
    )
  const { me, access } = loaded.data
  return <Shell access={access} name={me.name || me.email} visible={screens.filter((s) => s.visible(access))} />
}

const App = () => {
  const [, changed] = useState(0)
  useEffect(() => {
    const unsubscribe = onSessionChange(() => changed((n) => n + 1))
    return () => void unsubscribe()
  }, [])
  return signedIn() ? <SignedIn /> : <SignIn />
}

const root = document.getElementById("app")!
// The page's "Loading…" line goes: the console renders into an empty element.
root.replaceChildren()
render(<App />, root)
