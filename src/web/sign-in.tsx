/** The sign-in page: a token in, a cookie set by the server (HttpOnly: no script here ever sees it again). */
import { useState } from "preact/hooks";
import { type Caller, signIn } from "./api.js";

export function SignIn(props: { onSignedIn: (caller: Caller) => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  return (
    <main class="sign-in">
      <h1>Slipway</h1>
      <form
        onSubmit={async (event) => {
          event.preventDefault();
          setBusy(true);
          setError(undefined);
          try {
            props.onSignedIn(await signIn(token.trim()));
          } catch (failure) {
            setError((failure as Error).message);
          } finally {
            setBusy(false);
          }
        }}
      >
        <label for="token">Token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="current-password"
          required
          value={token}
          onInput={(event) => setToken(event.currentTarget.value)}
        />
        <p class="hint">The same tokens as the API and the CLI (`--token-file`): read, operate or admin.</p>
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        {error && (
          <p class="error" role="alert">
            Refused: {error}
          </p>
        )}
      </form>
    </main>
  );
}
