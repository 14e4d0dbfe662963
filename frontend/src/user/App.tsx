import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, type FileInfo } from '../api';
import { meterLevel, quotaSummary, signedOut } from '../account';
import { useMe, UserMenu } from '../auth';
import { DangerButton, DataTable, LoadError } from '../components';
import { fileIcon, humanBytes, plural, relativeTime, sortFiles, speed, type SortKey } from '../format';
import { TokensPanel } from './Tokens';
import { useUploads, type UploadItem } from './uploads';

/** What the delete buttons ask first. */
const deleteQuestion = (what: string) => `Delete ${what}? This cannot be undone.`;

function UsageMeter() {
  const usage = useQuery({ queryKey: ['usage'], queryFn: api.usage, refetchInterval: 5000 });
  if (!usage.data) return <div className="meter muted">Usage…</div>;
  const u = usage.data;
  const used = u.capacity_bytes - u.free_bytes;
  const clusterPct = u.capacity_bytes > 0 ? Math.min(100, (used / u.capacity_bytes) * 100) : 0;
  const quota = quotaSummary(u.bytes, u.quota_bytes ?? 0);
  // With a quota the bar shows the quota used, else the cluster's capacity.
  const pct = quota.limited ? quota.pct : clusterPct;
  return (
    <div className="meter" aria-label="Storage usage" data-testid="usage">
      <div>
        <strong data-testid="usage-files">{humanBytes(u.bytes)}</strong> in {plural(u.files, 'file')} ·{' '}
        {humanBytes(u.stored_bytes)} with replicas
      </div>
      <div
        className={`bar ${meterLevel(pct)}`}
        role="meter"
        aria-label={quota.limited ? 'Quota used' : 'Cluster capacity used'}
        aria-valuenow={Math.round(pct)}
        aria-valuemin={0}
        aria-valuemax={100}
      >
        <span style={{ width: `${pct}%` }} />
      </div>
      <div className="muted">
        <span data-testid="usage-quota">{quota.text}</span> · {humanBytes(u.free_bytes)} free of {humanBytes(u.capacity_bytes)} in the cluster
      </div>
    </div>
  );
}

function UploadRow({ item, onCancel }: { item: UploadItem; onCancel: () => void }) {
  const pct = item.size > 0 ? Math.floor((item.loaded / item.size) * 100) : item.state === 'done' ? 100 : 0;
  const shown = item.state === 'done' ? 100 : pct;
  return (
    <li data-testid="upload" data-state={item.state} data-name={item.name}>
      <div>
        <strong>{item.name}</strong> <span className="muted">{humanBytes(item.size)}</span>
        <div className="bar" role="progressbar" aria-label={`Upload of ${item.name}`} aria-valuenow={shown} aria-valuemin={0} aria-valuemax={100}>
          <span style={{ width: `${shown}%` }} />
        </div>
        <span className="muted" data-testid="upload-percent">
          {shown}% · {speed(item.loaded, item.elapsedMs)} · {item.state}
        </span>
        {item.error && <div className="error" role="alert">{item.error}</div>}
      </div>
      {item.state === 'uploading' && (
        <button onClick={onCancel} aria-label={`Cancel upload of ${item.name}`}>
          Cancel
        </button>
      )}
    </li>
  );
}

export function App() {
  const queryClient = useQueryClient();
  const me = useMe();
  const files = useQuery({ queryKey: ['files'], queryFn: api.files, refetchInterval: 10000 });
  const refresh = useCallback(() => {
    void queryClient.invalidateQueries({ queryKey: ['files'] });
    void queryClient.invalidateQueries({ queryKey: ['usage'] });
  }, [queryClient]);
  const onUnauthorized = useCallback(() => signedOut(queryClient), [queryClient]);
  const uploads = useUploads(refresh, onUnauthorized);
  const [filter, setFilter] = useState('');
  const [sort, setSort] = useState<{ key: SortKey; asc: boolean }>({ key: 'created_at', asc: false });
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [dragging, setDragging] = useState(false);
  const [actionError, setActionError] = useState<string | null>(null);
  const input = useRef<HTMLInputElement>(null);

  const remove = useMutation({
    mutationFn: async (ids: string[]) => {
      for (const id of ids) await api.deleteFile(id);
    },
    onSuccess: () => {
      setSelected(new Set());
      setActionError(null);
      refresh();
    },
    onError: (e: Error) => setActionError(e.message),
  });

  // Drag and drop anywhere on the page.
  useEffect(() => {
    let depth = 0;
    const enter = (e: DragEvent) => {
      if (e.dataTransfer?.types.includes('Files')) {
        depth += 1;
        setDragging(true);
      }
    };
    const leave = () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) setDragging(false);
    };
    const over = (e: DragEvent) => e.preventDefault();
    const drop = (e: DragEvent) => {
      e.preventDefault();
      depth = 0;
      setDragging(false);
      if (e.dataTransfer?.files.length) uploads.start(e.dataTransfer.files);
    };
    window.addEventListener('dragenter', enter);
    window.addEventListener('dragleave', leave);
    window.addEventListener('dragover', over);
    window.addEventListener('drop', drop);
    return () => {
      window.removeEventListener('dragenter', enter);
      window.removeEventListener('dragleave', leave);
      window.removeEventListener('dragover', over);
      window.removeEventListener('drop', drop);
    };
  }, [uploads]);

  const shown: FileInfo[] = useMemo(() => {
    const all = files.data?.files ?? [];
    const needle = filter.trim().toLowerCase();
    return sortFiles(needle ? all.filter((f) => f.name.toLowerCase().includes(needle)) : all, sort.key, sort.asc);
  }, [files.data, filter, sort]);

  const header = (key: SortKey, label: string, className?: string) => (
    <th className={className} aria-sort={sort.key === key ? (sort.asc ? 'ascending' : 'descending') : 'none'}>
      <button onClick={() => setSort((s) => ({ key, asc: s.key === key ? !s.asc : true }))}>
        {label} {sort.key === key ? (sort.asc ? '▲' : '▼') : ''}
      </button>
    </th>
  );

  return (
    <>
      <header>
        <h1>Tessera · My files</h1>
        <UsageMeter />
        <UserMenu>{me.role === 'admin' && <a className="button" href="/admin/">Admin dashboard</a>}</UserMenu>
      </header>
      <main>
        <div className="toolbar">
          <button className="primary" onClick={() => input.current?.click()}>
            Upload files
          </button>
          <input
            ref={input}
            type="file"
            multiple
            hidden
            data-testid="file-input"
            onChange={(e) => {
              if (e.target.files?.length) uploads.start(e.target.files);
              e.target.value = '';
            }}
          />
          <input type="search" placeholder="Filter by name" aria-label="Filter by name" value={filter} onChange={(e) => setFilter(e.target.value)} />
          <DangerButton disabled={selected.size === 0 || remove.isPending} question={deleteQuestion(`${selected.size} selected file(s)`)} onConfirm={() => remove.mutate([...selected])}>
            Delete selected ({selected.size})
          </DangerButton>
          {uploads.items.some((i) => i.state !== 'uploading') && <button onClick={uploads.clearFinished}>Clear finished</button>}
        </div>
        {actionError && <p className="error" role="alert">{actionError}</p>}
        {uploads.items.length > 0 && (
          <ul className="uploads" aria-label="Uploads">
            {uploads.items.map((item) => (
              <UploadRow key={item.key} item={item} onCancel={() => uploads.cancel(item.key)} />
            ))}
          </ul>
        )}
        <LoadError query={files}>Could not load files</LoadError>
        <DataTable
          label="Files"
          empty={
            files.data?.files.length === 0 && (
              <div className="empty" data-testid="empty">
                <p><strong>No files yet.</strong></p>
                <p>Drag files anywhere onto this page, or press “Upload files”.</p>
              </div>
            )
          }
          head={
            <>
              <th>
                <input
                  type="checkbox"
                  aria-label="Select all"
                  checked={shown.length > 0 && shown.every((f) => selected.has(f.id))}
                  onChange={(e) => setSelected(e.target.checked ? new Set(shown.map((f) => f.id)) : new Set())}
                />
              </th>
              {header('name', 'Name')}
              {header('size', 'Size')}
              {header('created_at', 'Uploaded', 'hide-narrow')}
              {header('replication', 'Replicas', 'hide-narrow')}
              <th>Actions</th>
            </>
          }
        >
          {shown.map((f) => (
            <tr key={f.id} data-testid="file-row" data-name={f.name}>
              <td>
                <input
                  type="checkbox"
                  aria-label={`Select ${f.name}`}
                  checked={selected.has(f.id)}
                  onChange={(e) =>
                    setSelected((s) => {
                      const next = new Set(s);
                      if (e.target.checked) next.add(f.id);
                      else next.delete(f.id);
                      return next;
                    })
                  }
                />
              </td>
              <td>
                <span className="type" aria-hidden="true">{fileIcon(f.name)}</span>{' '}
                <a href={`/api/files/${f.id}/content`} download={f.name}>
                  {f.name}
                </a>
              </td>
              <td>{humanBytes(f.size)}</td>
              <td className="hide-narrow" title={f.created_at}>{relativeTime(f.created_at)}</td>
              <td className="hide-narrow">×{f.replication}</td>
              <td>
                <a className="button" href={`/api/files/${f.id}/content`} download={f.name} aria-label={`Download ${f.name}`}>
                  Download
                </a>{' '}
                <DangerButton aria-label={`Delete ${f.name}`} question={deleteQuestion(`“${f.name}”`)} onConfirm={() => remove.mutate([f.id])}>
                  Delete
                </DangerButton>
              </td>
            </tr>
          ))}
        </DataTable>
        <TokensPanel />
      </main>
      {dragging && <div className="drop">Drop files to upload</div>}
    </>
  );
}
