// Uploads with XMLHttpRequest: the File object is the request body, so the
// browser streams it from disk (never reads it into memory), and `progress`
// events drive the progress bars.
import { useCallback, useRef, useState } from 'react';

export interface UploadItem {
  key: number;
  name: string;
  size: number;
  loaded: number;
  startedAt: number;
  elapsedMs: number;
  state: 'uploading' | 'done' | 'error' | 'cancelled';
  error?: string;
}

/** `onDone` after each finished upload; `onUnauthorized` when the gateway
 * answers 401 (the session has ended). */
export function useUploads(onDone: () => void, onUnauthorized?: () => void) {
  const [items, setItems] = useState<UploadItem[]>([]);
  const requests = useRef(new Map<number, XMLHttpRequest>());
  const nextKey = useRef(1);

  const update = (key: number, patch: Partial<UploadItem>) =>
    setItems((all) => all.map((item) => (item.key === key ? { ...item, ...patch } : item)));

  const start = useCallback(
    (files: FileList | File[]) => {
      for (const file of Array.from(files)) {
        const key = nextKey.current++;
        const startedAt = performance.now();
        setItems((all) => [
          { key, name: file.name, size: file.size, loaded: 0, startedAt, elapsedMs: 0, state: 'uploading' },
          ...all,
        ]);
        const xhr = new XMLHttpRequest();
        requests.current.set(key, xhr);
        xhr.open('POST', `/api/files?name=${encodeURIComponent(file.name)}`);
        xhr.setRequestHeader('Content-Type', 'application/octet-stream');
        xhr.upload.onprogress = (e) => update(key, { loaded: e.loaded, elapsedMs: performance.now() - startedAt });
        xhr.onload = () => {
          requests.current.delete(key);
          if (xhr.status === 201) {
            update(key, { state: 'done', loaded: file.size, elapsedMs: performance.now() - startedAt });
            onDone();
          } else {
            let message = `${xhr.status} ${xhr.statusText}`;
            try {
              message = JSON.parse(xhr.responseText)?.error?.message ?? message;
            } catch {
              /* not JSON */
            }
            update(key, { state: 'error', error: message });
            if (xhr.status === 401) onUnauthorized?.();
          }
        };
        xhr.onerror = () => {
          requests.current.delete(key);
          update(key, { state: 'error', error: 'network error: the gateway could not be reached' });
        };
        xhr.onabort = () => {
          requests.current.delete(key);
          update(key, { state: 'cancelled' });
        };
        xhr.send(file);
      }
    },
    [onDone, onUnauthorized],
  );

  const cancel = useCallback((key: number) => requests.current.get(key)?.abort(), []);
  const clearFinished = useCallback(() => setItems((all) => all.filter((i) => i.state === 'uploading')), []);
  return { items, start, cancel, clearFinished };
}
