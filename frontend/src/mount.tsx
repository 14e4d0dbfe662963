// Mounts a dashboard with the shared query client, styles and sign-in gate.
import { StrictMode, type ComponentType } from 'react';
import { createRoot } from 'react-dom/client';
import { MutationCache, QueryCache, QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { hasStatus, isUnauthorized, shouldRetry } from './api';
import { ME_KEY, signedOut } from './account';
import { AuthGate } from './auth';
import './styles.css';

/** `title`: what the login page offers to sign in to. */
export function mount(App: ComponentType, title: string) {
  // A 401 from any request: the session has ended, show the login page.
  // A 403: the role may have changed, ask who is signed in again.
  const onError = (error: unknown) => {
    if (isUnauthorized(error)) signedOut(queryClient);
    else if (hasStatus(error, 403)) void queryClient.invalidateQueries({ queryKey: ME_KEY });
  };
  const queryClient: QueryClient = new QueryClient({
    queryCache: new QueryCache({ onError }),
    mutationCache: new MutationCache({ onError }),
    defaultOptions: { queries: { retry: shouldRetry, refetchOnWindowFocus: true } },
  });
  createRoot(document.getElementById('root')!).render(
    <StrictMode>
      <QueryClientProvider client={queryClient}>
        <AuthGate title={title}>
          <App />
        </AuthGate>
      </QueryClientProvider>
    </StrictMode>,
  );
}
