import { useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, type NodeInfo } from '../api';
import { useMe, UserMenu, useSignOut } from '../auth';
import { DangerButton, DataTable, LoadError } from '../components';
import { humanBytes, relativeTime } from '../format';
import { UsersPanel } from './Users';
import { Cell, Pie, PieChart, Tooltip } from 'recharts';

const POLL_MS = 2000;

function Card({ title, children, testId }: { title: string; children: React.ReactNode; testId?: string }) {
  return (
    <div className="card" data-testid={testId}>
      <h3>{title}</h3>
      {children}
    </div>
  );
}

function CapacityBar({ capacity, free }: { capacity: number; free: number }) {
  const pct = capacity > 0 ? Math.min(100, ((capacity - free) / capacity) * 100) : 0;
  return (
    <div className={`bar ${pct > 90 ? 'bad' : pct > 75 ? 'warn' : ''}`} role="meter" aria-valuenow={Math.round(pct)} aria-valuemin={0} aria-valuemax={100} aria-label="Capacity used">
      <span style={{ width: `${pct}%` }} />
    </div>
  );
}

/** Signed in, but not as an admin: nothing here to see. */
function NeedsAdmin() {
  const me = useMe();
  const { signOut, pending } = useSignOut();
  return (
    <>
      <header>
        <h1>Tessera · Admin</h1>
        <UserMenu />
      </header>
      <main>
        <div className="notice" role="alert" data-testid="needs-admin">
          <h2>This dashboard needs the admin role</h2>
          <p>
            You are signed in as <strong>{me.username}</strong>, who has the <strong>{me.role}</strong> role. Sign out and sign in as an
            administrator, or go to your files.
          </p>
          <div className="toolbar">
            <a className="button primary" href="/">
              Go to my files
            </a>
            <button onClick={signOut} disabled={pending}>
              Sign out
            </button>
          </div>
        </div>
      </main>
    </>
  );
}

export function App() {
  const me = useMe();
  return me.role === 'admin' ? <Dashboard /> : <NeedsAdmin />;
}

function Dashboard() {
  const queryClient = useQueryClient();
  const summary = useQuery({ queryKey: ['summary'], queryFn: api.summary, refetchInterval: POLL_MS });
  const nodes = useQuery({ queryKey: ['nodes'], queryFn: api.nodes, refetchInterval: POLL_MS });
  const tasks = useQuery({ queryKey: ['rebalances'], queryFn: api.rebalances, refetchInterval: POLL_MS });
  const [message, setMessage] = useState<{ text: string; error: boolean } | null>(null);

  const refresh = () => void queryClient.invalidateQueries();
  const act = useMutation({
    mutationFn: async (run: () => Promise<unknown>) => run(),
    onSuccess: (_, __) => {
      refresh();
    },
    onError: (e: Error) => setMessage({ text: e.message, error: true }),
  });

  const nodeAction = (node: NodeInfo, action: 'fail' | 'recover' | 'decommission') => {
    setMessage(null);
    act.mutate(() => api.nodeAction(node.node_id, action));
  };

  const s = summary.data;
  const healthCounts = s ? Object.entries(s.nodes) : [];
  return (
    <>
      <header>
        <h1>Tessera · Admin</h1>
        <span className="muted">refreshes every 2 s{summary.isFetching ? ' · updating…' : ''}</span>
        <UserMenu>
          <a className="button" href="/">My files</a>
        </UserMenu>
      </header>
      <main>
        <LoadError query={summary}>Cluster unreachable</LoadError>
        {message && (
          <p className={message.error ? 'error' : 'muted'} role="status">
            {message.text}
          </p>
        )}
        {s && (
          <div className="cards">
            <Card title="Nodes" testId="card-nodes">
              {healthCounts.map(([health, count]) => (
                <div key={health}>
                  <span className={`badge ${health}`}>{health}</span> <span data-testid={`nodes-${health}`}>{count}</span>
                </div>
              ))}
            </Card>
            <Card title="Capacity">
              <div className="big">{humanBytes(s.used_bytes)}</div>
              <CapacityBar capacity={s.capacity_bytes} free={s.capacity_bytes - s.used_bytes} />
              <div className="muted">{humanBytes(s.capacity_bytes - s.used_bytes)} free of {humanBytes(s.capacity_bytes)}</div>
            </Card>
            <Card title="Chunks">
              <PieChart width={120} height={90} aria-label="Chunk replication chart">
                <Pie
                  data={[
                    { name: 'fully replicated', value: s.chunks.fully_replicated },
                    { name: 'under-replicated', value: s.chunks.under_replicated },
                    { name: 'lost', value: s.chunks.lost },
                  ]}
                  dataKey="value"
                  innerRadius={22}
                  outerRadius={40}
                  isAnimationActive={false}
                >
                  <Cell fill="#3ebd93" />
                  <Cell fill="#f0b429" />
                  <Cell fill="#d64545" />
                </Pie>
                <Tooltip />
              </PieChart>
              <div>fully replicated <strong data-testid="chunks-full">{s.chunks.fully_replicated}</strong></div>
              <div>under-replicated <strong data-testid="chunks-under">{s.chunks.under_replicated}</strong></div>
              <div>lost <strong data-testid="chunks-lost">{s.chunks.lost}</strong></div>
              <div className="muted">{s.chunks.total} in total</div>
            </Card>
            <Card title="Repairs & rebalances">
              <div>pending {s.rebalances.pending} · running {s.rebalances.running}</div>
              <div>completed <strong data-testid="tasks-completed">{s.rebalances.completed}</strong> · failed {s.rebalances.failed}</div>
            </Card>
            <Card title="Files">
              <div className="big">{s.files}</div>
            </Card>
          </div>
        )}

        <section>
          <div className="toolbar">
            <h2 style={{ margin: 0 }}>Data nodes</h2>
            <button
              className="primary"
              onClick={() => {
                setMessage(null);
                act.mutate(async () => {
                  const r = await api.addNode();
                  setMessage({ text: r.started ? `Started ${r.node_id}` : r.message ?? 'requested', error: false });
                });
              }}
            >
              Add node
            </button>
          </div>
          <DataTable
            label="Data nodes"
            head={
              <>
                <th>Node</th>
                <th className="hide-narrow">Address</th>
                <th>Health</th>
                <th className="hide-narrow">Capacity</th>
                <th>Free</th>
                <th>Chunks</th>
                <th className="hide-narrow">Last seen</th>
                <th>Actions</th>
              </>
            }
          >
            {(nodes.data?.nodes ?? []).map((n) => (
              <tr key={n.node_id} data-testid="node-row" data-node={n.node_id} data-health={n.health}>
                <td>{n.node_id}</td>
                <td className="hide-narrow">{n.host}:{n.grpc_port}</td>
                <td><span className={`badge ${n.health}`}>{n.health}</span></td>
                <td className="hide-narrow"><CapacityBar capacity={n.capacity_bytes} free={n.free_bytes} /></td>
                <td>{humanBytes(n.free_bytes)}</td>
                <td>{n.chunks}</td>
                <td className="hide-narrow">{relativeTime(n.last_seen)}</td>
                <td>
                  {n.health === 'failed_simulated' || n.health === 'dead' ? (
                    <button onClick={() => nodeAction(n, 'recover')} aria-label={`Recover ${n.node_id}`}>Recover</button>
                  ) : (
                    <button onClick={() => nodeAction(n, 'fail')} disabled={n.health === 'removed'} aria-label={`Fail ${n.node_id}`}>Fail</button>
                  )}{' '}
                  <DangerButton
                    question={`Decommission ${n.node_id}? Its replicas move to other nodes, then it is removed.`}
                    onConfirm={() => nodeAction(n, 'decommission')}
                    disabled={n.health === 'removed' || n.health === 'decommissioning'}
                    aria-label={`Decommission ${n.node_id}`}
                  >
                    Decommission
                  </DangerButton>
                </td>
              </tr>
            ))}
          </DataTable>
        </section>

        <UsersPanel />

        <section>
          <h2>Controllers</h2>
          <DataTable label="Controllers" head={<><th>Id</th><th>Address</th><th>Role</th><th>Term</th><th>Last log index</th></>}>
            {(s?.controllers ?? []).map((c) => (
              <tr key={c.id} data-testid="controller-row">
                <td>{c.id}{s?.leader === c.id ? ' ★' : ''}</td>
                <td>{c.addr}</td>
                <td><span className={`badge ${c.role}`}>{c.role}</span></td>
                <td>{c.term}</td>
                <td>{c.last_log_index}</td>
              </tr>
            ))}
          </DataTable>
        </section>

        <section>
          <div className="toolbar">
            <h2 style={{ margin: 0 }}>Repair and rebalance tasks</h2>
            <button onClick={() => act.mutate(async () => { await api.rebalanceNow(); setMessage({ text: 'Rebalance pass started', error: false }); })}>
              Rebalance now
            </button>
          </div>
          {tasks.data && (
            <p className="muted">
              pending {tasks.data.counts.pending} · running {tasks.data.counts.running} · completed {tasks.data.counts.completed} · failed {tasks.data.counts.failed}
            </p>
          )}
          <DataTable label="Recent tasks" head={<><th>Kind</th><th className="hide-narrow">Chunk</th><th>From → to</th><th>State</th><th className="hide-narrow">Finished</th></>}>
            {(tasks.data?.tasks ?? []).slice(0, 50).map((t) => (
              <tr key={t.id}>
                <td>{t.kind}</td>
                <td className="hide-narrow">{t.chunk_id.slice(0, 13)}…{t.chunk_id.slice(-4)}</td>
                <td>{t.from} → {t.to}</td>
                <td><span className={`badge ${t.state}`}>{t.state}</span></td>
                <td className="hide-narrow">{relativeTime(t.finished_at)}</td>
              </tr>
            ))}
          </DataTable>
        </section>
      </main>
    </>
  );
}
