// One Vite project, two pages: the user dashboard at / and the admin
// dashboard at /admin/ (the gateway serves dist/ and dist/admin/).
import { resolve } from 'node:path';
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    rollupOptions: {
      input: {
        user: resolve(import.meta.dirname, 'index.html'),
        admin: resolve(import.meta.dirname, 'admin/index.html'),
      },
    },
  },
  server: {
    proxy: {
      '/api': 'http://127.0.0.1:8080',
      '/admin/summary': 'http://127.0.0.1:8080',
      '/admin/nodes': 'http://127.0.0.1:8080',
      '/admin/rebalances': 'http://127.0.0.1:8080',
      '/admin/controllers': 'http://127.0.0.1:8080',
      '/admin/users': 'http://127.0.0.1:8080',
    },
  },
  test: { include: ['src/**/*.test.ts'] },
});
