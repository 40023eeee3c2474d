// The real pidrop binary for the Node tests: started on 127.0.0.1 with a port it picks, its
// address read from its first line of output. The caller kills the children it is handed.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

// `onLine` (optional) gets every later line of its stdout (the first admin's password, say).
export function startPidrop(bin, dir, args, children, onLine) {
  // The page tests predate accounts: the open setting unless a test chooses its own.
  const open = args.includes('--anonymous') ? [] : ['--anonymous', 'admin'];
  const child = spawn(bin, ['--listen', '127.0.0.1:0', '--dir', dir, '--min-free', '0', ...open, ...args],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout });
    rl.once('line', (line) => {
      const m = line.match(/listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]); else reject(new Error('unexpected first line: ' + line));
      if (onLine) rl.on('line', onLine);
    });
    child.once('exit', (code) => reject(new Error('pidrop exited with ' + code)));
  });
}
