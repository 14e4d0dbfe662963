// Accounts (admin only): the users table, a create-user form, delete.
import { useId, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, type NewUser, type Role, type UserAccount } from '../api';
import { formatQuota, meterLevel, newUserProblem, parseQuotaGiB, quotaSummary } from '../account';
import { useMe } from '../auth';
import { DangerButton, DataTable, LoadError } from '../components';
import { humanBytes, relativeTime } from '../format';

function CreateUserForm({ onCreated }: { onCreated: (u: UserAccount) => void }) {
  const id = useId();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<Role>('user');
  const [quota, setQuota] = useState('0');
  const [problem, setProblem] = useState<string | null>(null);
  const create = useMutation({
    mutationFn: (u: NewUser) => api.createUser(u),
    onSuccess: (u) => {
      setUsername('');
      setPassword('');
      setRole('user');
      setQuota('0');
      setProblem(null);
      onCreated(u);
    },
    onError: (e: Error) => setProblem(`Could not create the user: ${e.message}`),
  });
  return (
    <form
      className="form-grid"
      aria-label="Create user"
      data-testid="create-user"
      onSubmit={(e) => {
        e.preventDefault();
        const p = newUserProblem(username, password, quota);
        setProblem(p);
        if (!p) create.mutate({ username: username.trim(), password, role, quota_bytes: parseQuotaGiB(quota)! });
      }}
    >
      <div className="field">
        <label htmlFor={`${id}-username`}>Username</label>
        <input id={`${id}-username`} type="text" autoComplete="off" autoCapitalize="none" spellCheck={false} value={username} onChange={(e) => setUsername(e.target.value)} required />
      </div>
      <div className="field">
        <label htmlFor={`${id}-password`}>Password</label>
        <input id={`${id}-password`} type="password" autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} required />
      </div>
      <div className="field">
        <label htmlFor={`${id}-role`}>Role</label>
        <select id={`${id}-role`} value={role} onChange={(e) => setRole(e.target.value as Role)}>
          <option value="user">user</option>
          <option value="admin">admin</option>
        </select>
      </div>
      <div className="field">
        <label htmlFor={`${id}-quota`}>Quota (GiB)</label>
        <input
          id={`${id}-quota`}
          type="number"
          inputMode="decimal"
          min={0}
          step="any"
          value={quota}
          onChange={(e) => setQuota(e.target.value)}
          aria-describedby={`${id}-quota-hint`}
        />
        <span className="muted" id={`${id}-quota-hint`}>0 = unlimited</span>
      </div>
      <div className="field actions">
        <button type="submit" className="primary" disabled={create.isPending}>
          {create.isPending ? 'Creating…' : 'Create user'}
        </button>
      </div>
      {problem && (
        <p className="error wide" role="alert" data-testid="create-user-error">
          {problem}
        </p>
      )}
    </form>
  );
}

export function UsersPanel() {
  const queryClient = useQueryClient();
  const me = useMe();
  const id = useId();
  const users = useQuery({ queryKey: ['users'], queryFn: api.users, refetchInterval: 10000 });
  const [message, setMessage] = useState<{ text: string; error: boolean } | null>(null);
  const refresh = () => void queryClient.invalidateQueries({ queryKey: ['users'] });
  const remove = useMutation({
    mutationFn: (username: string) => api.deleteUser(username),
    onSuccess: (_, username) => {
      setMessage({ text: `Deleted ${username}`, error: false });
      refresh();
    },
    onError: (e: Error, username) => setMessage({ text: `Could not delete ${username}: ${e.message}`, error: true }),
  });

  return (
    <section aria-labelledby={`${id}-title`} data-testid="users">
      <h2 id={`${id}-title`}>Users</h2>
      <CreateUserForm
        onCreated={(u) => {
          setMessage({ text: `Created ${u.username}`, error: false });
          refresh();
        }}
      />
      {message && (
        <p className={message.error ? 'error' : 'muted'} role={message.error ? 'alert' : 'status'}>
          {message.text}
        </p>
      )}
      <LoadError query={users}>Could not load users</LoadError>
      <DataTable
        label="Users"
        head={
          <>
            <th>Username</th>
            <th>Role</th>
            <th>Quota</th>
            <th>Used</th>
            <th className="hide-narrow">Files</th>
            <th className="hide-narrow">Created</th>
            <th>Actions</th>
          </>
        }
      >
        {(users.data?.users ?? []).map((u) => {
          const q = quotaSummary(u.used_bytes, u.quota_bytes);
          const self = u.username === me.username;
          return (
            <tr key={u.username} data-testid="user-row" data-user={u.username}>
              <td>
                {u.username}
                {self ? <span className="muted"> (you)</span> : null}
              </td>
              <td><span className={`badge role-${u.role}`}>{u.role}</span></td>
              <td data-testid="user-quota">{formatQuota(u.quota_bytes)}</td>
              <td>
                {humanBytes(u.used_bytes)}
                {q.limited && (
                  <div className={`bar ${meterLevel(q.pct)}`} role="meter" aria-label={`Quota used by ${u.username}`} aria-valuenow={Math.round(q.pct)} aria-valuemin={0} aria-valuemax={100}>
                    <span style={{ width: `${q.pct}%` }} />
                  </div>
                )}
              </td>
              <td className="hide-narrow">{u.files}</td>
              <td className="hide-narrow" title={u.created_at}>{relativeTime(u.created_at)}</td>
              <td>
                <DangerButton
                  question={`Delete the user “${u.username}”? They can no longer sign in, and their tokens stop working.`}
                  onConfirm={() => {
                    setMessage(null);
                    remove.mutate(u.username);
                  }}
                  disabled={self || (remove.isPending && remove.variables === u.username)}
                  title={self ? 'You cannot delete yourself' : undefined}
                  aria-label={`Delete user ${u.username}`}
                >
                  Delete
                </DangerButton>
              </td>
            </tr>
          );
        })}
      </DataTable>
    </section>
  );
}
