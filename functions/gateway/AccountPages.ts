import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { ENDPOINTS, PAGE_PATHS, PASSWORD_LENGTH } from "../identity/AccountLinks.ts"

/**
 * The pages the verification and reset mails link to (`<APP_BASE_URL>/verify-email?token=…`,
 * `<APP_BASE_URL>/reset-password?token=…`; the default base URL is this gateway). Static HTML and one script, all from
 * this origin: the script posts the token to identity's public routes through this gateway and shows the answer.
 */
export const PATHS = {
  ...PAGE_PATHS,
  script: "/account/pages.js",
  style: "/account/pages.css",
} as const

/** Every path these pages take from the proxy (the gateway serves them itself). */
export const OWN_PATHS: ReadonlyArray<string> = Object.values(PATHS)

/** The API routes the script calls (identity's, public) and the password length the form checks before posting. */
export { ENDPOINTS, PASSWORD_LENGTH }

/**
 * Only this origin's script, style and API; no framing, no plugins, no form posts elsewhere. The token is in the URL:
 * it never leaves in a Referer, and the page is never stored.
 */
const pageHeaders = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
}

const assetHeaders = {
  "cache-control": "public, max-age=3600",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
}

const layout = (page: "verify-email" | "reset-password", title: string, body: string) => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title}</title>
<link rel="stylesheet" href="${PATHS.style}">
<script src="${PATHS.script}" defer></script>
</head>
<body data-page="${page}">
<main>
<h1>${title}</h1>
${body}
<p id="status" role="status" aria-live="polite"></p>
</main>
</body>
</html>
`

/** The page of the verification link: confirms the address as soon as it opens. */
export const verifyEmailPage = layout(
  "verify-email",
  "Confirm your email address",
  `<noscript><p>This page needs JavaScript to confirm your address.</p></noscript>`,
)

/** The page of the reset link: a form for the new password. */
export const resetPasswordPage = layout(
  "reset-password",
  "Choose a new password",
  `<form id="reset" hidden>
<label for="password">New password</label>
<input id="password" name="password" type="password" autocomplete="new-password" required minlength="${PASSWORD_LENGTH.min}" maxlength="${PASSWORD_LENGTH.max}">
<label for="confirm">Repeat it</label>
<input id="confirm" name="confirm" type="password" autocomplete="new-password" required minlength="${PASSWORD_LENGTH.min}" maxlength="${PASSWORD_LENGTH.max}">
<p class="hint">${PASSWORD_LENGTH.min} to ${PASSWORD_LENGTH.max} characters.</p>
<button type="submit">Set the new password</button>
</form>
<noscript><p>This page needs JavaScript to set your password.</p></noscript>`,
)

/**
 * The pages' script: takes the token from the query (and out of the address bar), posts it as JSON to identity's route
 * and shows the outcome: success, or the problem's detail (and field messages) from the answer.
 */
export const script = `"use strict";
(() => {
  const page = document.body.dataset.page;
  const status = document.getElementById("status");
  const token = new URLSearchParams(location.search).get("token");
  // The token stays out of the history and of anything this page loads later.
  if (token !== null) history.replaceState(null, "", location.pathname);
  const show = (text, kind) => {
    status.textContent = text;
    status.className = kind;
  };
  const post = async (path, body) => {
    try {
      const res = await fetch(path, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, application/problem+json" },
        body: JSON.stringify(body),
        credentials: "omit",
        referrerPolicy: "no-referrer",
      });
      if (res.ok) return { ok: true };
      const problem = await res.json().catch(() => ({}));
      const fields = Array.isArray(problem.errors) ? problem.errors.map((e) => e.message).filter(Boolean) : [];
      const detail = [problem.detail || problem.title || "The request failed (" + res.status + ").", ...fields];
      return { ok: false, detail: detail.join(" ") };
    } catch {
      return { ok: false, detail: "The platform cannot be reached; try again in a moment." };
    }
  };
  if (!token) {
    show("This link has no token. Open the link from the mail again.", "error");
    return;
  }
  if (page === "verify-email") {
    show("Confirming your email address…", "pending");
    post(${JSON.stringify(ENDPOINTS.verifyEmail)}, { token }).then((result) =>
      result.ok ? show("Your email address is confirmed. You can sign in now.", "ok") : show(result.detail, "error"),
    );
    return;
  }
  if (page === "reset-password") {
    const form = document.getElementById("reset");
    const password = document.getElementById("password");
    const confirm = document.getElementById("confirm");
    form.hidden = false;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const length = [...password.value].length;
      if (length < ${PASSWORD_LENGTH.min} || length > ${PASSWORD_LENGTH.max}) {
        show("The password must be ${PASSWORD_LENGTH.min} to ${PASSWORD_LENGTH.max} characters long.", "error");
        return;
      }
      if (password.value !== confirm.value) {
        show("The two passwords differ.", "error");
        return;
      }
      form.hidden = true;
      show("Setting your new password…", "pending");
      post(${JSON.stringify(ENDPOINTS.resetPassword)}, { token, newPassword: password.value }).then((result) => {
        if (result.ok) {
          show("Your password is set. Every session has been signed out; sign in with the new password.", "ok");
        } else {
          form.hidden = false;
          show(result.detail, "error");
        }
      });
    });
  }
})();
`

/** The pages' stylesheet (no inline styles: the policy allows none). */
export const style = `body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:28rem;margin:4rem auto;padding:2rem;background:#fff;border-radius:8px;box-shadow:0 1px 4px #0002}
h1{font-size:1.4rem;margin-top:0}
label{display:block;margin-top:1rem;font-weight:600}
input{box-sizing:border-box;width:100%;padding:.5rem;margin-top:.25rem;font-size:1rem}
button{margin-top:1.25rem;padding:.6rem 1rem;font-size:1rem;cursor:pointer}
.hint{color:#5b6475;font-size:.9rem}
.ok{color:#1a7f37}.error{color:#c62828}.pending{color:#5b6475}
`

const html = (body: string) =>
  Effect.succeed(HttpServerResponse.html(body).pipe(HttpServerResponse.setHeaders(pageHeaders)))

/** `GET /verify-email`, `GET /reset-password` and their script and stylesheet. */
export const routes = Layer.mergeAll(
  HttpRouter.add("GET", PATHS.verifyEmail, html(verifyEmailPage)),
  HttpRouter.add("GET", PATHS.resetPassword, html(resetPasswordPage)),
  HttpRouter.add(
    "GET",
    PATHS.script,
    Effect.succeed(
      HttpServerResponse.text(script, { contentType: "text/javascript; charset=utf-8", headers: assetHeaders }),
    ),
  ),
  HttpRouter.add(
    "GET",
    PATHS.style,
    Effect.succeed(HttpServerResponse.text(style, { contentType: "text/css; charset=utf-8", headers: assetHeaders })),
  ),
)
