// Small pieces shared by both dashboards: the tables, the error shown when a
// list cannot be loaded, and the red buttons that ask before they act.
import type { ComponentProps, ReactNode } from 'react';

/** A scrolling table; `label` names it for screen readers (and the browser
 * tests), `head` holds the header cells, `children` the rows. `empty`, when
 * set, is shown instead of the table, e.g. “No tokens.” once the list has
 * loaded empty. */
export function DataTable({ label, head, empty, children }: { label: string; head: ReactNode; empty?: ReactNode; children: ReactNode }) {
  if (empty) return <>{empty}</>;
  return (
    <div className="table-wrap">
      <table aria-label={label}>
        <thead>
          <tr>{head}</tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

/** “Could not load files: <message>” while `query` has failed. */
export function LoadError({ query, children }: { query: { isError: boolean; error: Error | null }; children: ReactNode }) {
  if (!query.isError) return null;
  return (
    <p className="error" role="alert">
      {children}: {query.error?.message}
    </p>
  );
}

/** Runs `action` if the user answers yes to `question` (by default in
 * `window.confirm`); true if it ran. */
export function confirmThen(question: string, action: () => void, ask: (question: string) => boolean = (q) => window.confirm(q)): boolean {
  if (!ask(question)) return false;
  action();
  return true;
}

/** A destructive button (delete, revoke, decommission): asks `question`
 * first, then calls `onConfirm`. */
export function DangerButton({ question, onConfirm, ...button }: { question: string; onConfirm: () => void } & Omit<ComponentProps<'button'>, 'className' | 'onClick'>) {
  return <button className="danger" onClick={() => confirmThen(question, onConfirm)} {...button} />;
}
