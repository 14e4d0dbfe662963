// Signing in, shared by both dashboards: the gate that asks the gateway who
// is signed in, the login page, and the header's user menu.
import { createContext, useContext, useEffect, useId, useRef, useState, type ReactNode } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, isUnauthorized, type Me } from './api';
import { forgetUserData, loginErrorMessage, ME_KEY, signedIn, signedOut } from './account';

/** `GET /api/auth/me`, with `null` for "nobody is signed in" (401). */
async function fetchMe(): Promise<Me | null> {
  try {
    return await api.me();
  } catch (e) {
    if (isUnauthorized(e)) return null;
    throw e;
  }
}

const MeContext = createContext<Me | null>(null);

/** The signed-in user; only inside `<AuthGate>`. */
export function useMe(): Me {
  const me = useContext(MeContext);
  if (!me) throw new Error('useMe outside <AuthGate>');
  return me;
}

/** Shows the login page until someone is signed in, then `children`. A 401
 * from any request (see mount.tsx) brings the login page back. */
export function AuthGate({ title, children }: { title: string; children: ReactNode }) {
  const queryClient = useQueryClient();
  const me = useQuery({ queryKey: ME_KEY, queryFn: fetchMe, staleTime: 30_000 });
  const signedOutNow = me.data === null;
  useEffect(() => {
    // After the dashboard unmounted: nothing of the last user stays cached.
    if (signedOutNow) forgetUserData(queryClient);
  }, [signedOutNow, queryClient]);
  if (me.data === undefined) {
    if (me.isError) {
      return (
        <main className="login">
          <div className="login-card" role="alert">
            <h1>Tessera</h1>
            <p className="error">Could not reach the gateway: {(me.error as Error).message}</p>
            <button className="primary" onClick={() => void me.refetch()} disabled={me.isFetching}>
              {me.isFetching ? 'Trying…' : 'Try again'}
            </button>
          </div>
        </main>
      );
    }
    return (
      <main className="login">
        <p className="muted" role="status">Loading…</p>
      </main>
    );
  }
  if (me.data === null) return <LoginPage title={title} />;
  return <MeContext.Provider value={me.data}>{children}</MeContext.Provider>;
}

export function LoginPage({ title }: { title: string }) {
  const queryClient = useQueryClient();
  const id = useId();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const passwordInput = useRef<HTMLInputElement>(null);
  const login = useMutation({
    mutationFn: () => api.login(username.trim(), password),
    onSuccess: (r) => signedIn(queryClient, { ...r.user, used_bytes: 0 }),
    onError: () => {
      setPassword('');
      passwordInput.current?.focus();
    },
  });
  const error = login.isError ? loginErrorMessage(login.error) : null;
  // Only wrong credentials make the fields invalid (not 429 or a network error).
  const invalid = isUnauthorized(login.error) || undefined;
  const errorId = `${id}-error`;
  return (
    <main className="login">
      <form
        className="login-card"
        aria-labelledby={`${id}-title`}
        data-testid="login-form"
        onSubmit={(e) => {
          e.preventDefault();
          if (!login.isPending) login.mutate();
        }}
      >
        <h1 id={`${id}-title`}>Tessera</h1>
        <p className="muted">Sign in to {title}</p>
        <label htmlFor={`${id}-username`}>Username</label>
        <input
          id={`${id}-username`}
          name="username"
          autoComplete="username"
          autoCapitalize="none"
          spellCheck={false}
          autoFocus
          required
          value={username}
          onChange={(e) => setUsername(e.target.value)}
          aria-invalid={invalid}
          aria-describedby={error ? errorId : undefined}
        />
        <label htmlFor={`${id}-password`}>Password</label>
        <input
          id={`${id}-password`}
          ref={passwordInput}
          name="password"
          type="password"
          autoComplete="current-password"
          required
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          aria-invalid={invalid}
          aria-describedby={error ? errorId : undefined}
        />
        {error && (
          <p className="error" role="alert" id={errorId} data-testid="login-error">
            {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={login.isPending}>
          {login.isPending ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

/** Signs out at the gateway, then shows the login page with an empty cache. */
export function useSignOut() {
  const queryClient = useQueryClient();
  const logout = useMutation({
    mutationFn: api.logout,
    onSuccess: () => signedOut(queryClient),
    // A 401 means the session had already ended (mount.tsx handles it).
  });
  return {
    signOut: () => logout.mutate(),
    pending: logout.isPending,
    error: logout.isError && !isUnauthorized(logout.error) ? (logout.error as Error).message : null,
  };
}

/** The header's account menu: who is signed in, their role, "Sign out". */
export function UserMenu({ children }: { children?: ReactNode }) {
  const me = useMe();
  const { signOut, pending, error } = useSignOut();
  return (
    <div className="user-menu" role="group" aria-label="Account" data-testid="user-menu">
      <span className="who">
        <span className="avatar" aria-hidden="true">{me.username.slice(0, 1).toUpperCase()}</span>
        <strong data-testid="user-name">{me.username}</strong>{' '}
        <span className={`badge role-${me.role}`} data-testid="user-role">{me.role}</span>
      </span>
      {children}
      <button onClick={signOut} disabled={pending}>
        {pending ? 'Signing out…' : 'Sign out'}
      </button>
      {error && (
        <span className="error" role="alert">
          Sign-out failed: {error}
        </span>
      )}
    </div>
  );
}
