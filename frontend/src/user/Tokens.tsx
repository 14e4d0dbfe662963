// The signed-in user's API tokens: list, create (the secret is shown once),
// revoke.
import { useId, useRef, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, type ApiToken, type CreatedToken } from '../api';
import { DangerButton, DataTable, LoadError } from '../components';
import { expiresIn, relativeTime } from '../format';

/** What the revoke button asks first. */
function revokeQuestion(t: ApiToken): string {
  return t.kind === 'session'
    ? t.current
      ? `Revoke this browser’s session? You will be signed out.`
      : `Revoke the session “${t.label}”? If it is this browser’s, you will be signed out.`
    : `Revoke the token “${t.label}”? Programs using it stop working at once.`;
}

function NewSecret({ created, onDone }: { created: CreatedToken; onDone: () => void }) {
  const input = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState<'yes' | 'no' | null>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(created.token);
      setCopied('yes');
    } catch {
      // No clipboard API (plain http on another host): select it for Ctrl-C.
      input.current?.select();
      setCopied('no');
    }
  };
  return (
    <div className="secret" role="region" aria-label="New API token" data-testid="new-token">
      <p>
        <strong>Token “{created.label}” created.</strong> Copy it now: it won’t be shown again.
      </p>
      <div className="secret-row">
        <input
          ref={input}
          readOnly
          value={created.token}
          aria-label={`Secret of token ${created.label}`}
          data-testid="token-secret"
          onFocus={(e) => e.target.select()}
          spellCheck={false}
        />
        <button className="primary" onClick={() => void copy()}>
          Copy
        </button>
        <button onClick={onDone}>Done</button>
      </div>
      <p className="muted" role="status">
        {copied === 'yes' ? 'Copied to the clipboard.' : copied === 'no' ? 'Selected: press Ctrl-C (⌘-C) to copy.' : 'Use it as “Authorization: Bearer <token>”.'}
      </p>
    </div>
  );
}

export function TokensPanel() {
  const queryClient = useQueryClient();
  const id = useId();
  const tokens = useQuery({ queryKey: ['tokens'], queryFn: api.tokens, refetchInterval: 30000 });
  const [label, setLabel] = useState('');
  const [created, setCreated] = useState<CreatedToken | null>(null);
  const [error, setError] = useState<string | null>(null);
  const refresh = () => void queryClient.invalidateQueries({ queryKey: ['tokens'] });

  const create = useMutation({
    mutationFn: (l: string) => api.createToken(l),
    onSuccess: (t) => {
      setCreated(t);
      setLabel('');
      setError(null);
      refresh();
    },
    onError: (e: Error) => setError(`Could not create the token: ${e.message}`),
  });
  const revoke = useMutation({
    mutationFn: (t: ApiToken) => api.revokeToken(t.id),
    onSuccess: (_, t) => {
      setError(null);
      if (created?.id === t.id) setCreated(null);
      refresh();
    },
    onError: (e: Error) => setError(`Could not revoke the token: ${e.message}`),
  });

  const list = tokens.data?.tokens ?? [];
  return (
    <section className="panel" aria-labelledby={`${id}-title`} data-testid="tokens">
      <h2 id={`${id}-title`}>API tokens</h2>
      <p className="muted">
        Programs use a token instead of your password: <code>Authorization: Bearer &lt;token&gt;</code>.
      </p>
      <form
        className="toolbar"
        onSubmit={(e) => {
          e.preventDefault();
          const l = label.trim();
          if (!l) {
            setError('Give the token a label, e.g. “backup script”.');
            return;
          }
          create.mutate(l);
        }}
      >
        <label htmlFor={`${id}-label`}>Label</label>
        <input id={`${id}-label`} type="text" value={label} onChange={(e) => setLabel(e.target.value)} placeholder="e.g. backup script" maxLength={100} />
        <button type="submit" className="primary" disabled={create.isPending}>
          {create.isPending ? 'Creating…' : 'Create token'}
        </button>
      </form>
      {error && <p className="error" role="alert">{error}</p>}
      {created && <NewSecret created={created} onDone={() => setCreated(null)} />}
      <LoadError query={tokens}>Could not load tokens</LoadError>
      <DataTable
        label="API tokens"
        empty={tokens.data && list.length === 0 && <p className="muted">No tokens.</p>}
        head={
          <>
            <th>Label</th>
            <th>Kind</th>
            <th className="hide-narrow">Created</th>
            <th>Expires</th>
            <th>Actions</th>
          </>
        }
      >
        {list.map((t) => (
          <tr key={t.id} data-testid="token-row" data-label={t.label} data-kind={t.kind}>
            <td>
              {t.label}
              {t.current && <span className="muted"> (this browser)</span>}
            </td>
            <td><span className={`badge kind-${t.kind}`}>{t.kind}</span></td>
            <td className="hide-narrow" title={t.created_at}>{relativeTime(t.created_at)}</td>
            <td title={t.expires_at ?? undefined}>{expiresIn(t.expires_at)}</td>
            <td>
              <DangerButton
                question={revokeQuestion(t)}
                onConfirm={() => revoke.mutate(t)}
                disabled={revoke.isPending && revoke.variables?.id === t.id}
                aria-label={`Revoke ${t.kind === 'session' ? 'session' : 'token'} ${t.label}`}
              >
                Revoke
              </DangerButton>
            </td>
          </tr>
        ))}
      </DataTable>
    </section>
  );
}
