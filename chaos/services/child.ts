/**
 * A service process the chaos suite owns (PostgreSQL, Redis, Mosquitto): its own process group,
 * so stopping it also stops its children; SIGKILLed from an exit handler if the suite dies first.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

/** Every service process alive, killed on exit whatever happens. */
const alive = new Set<ChildProcess>();
let hooked = false;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** A running service process. */
export class ServiceProcess {
  readonly exited: Promise<void>;
  #done = false;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => {
      const finish = (): void => {
        this.#done = true;
        alive.delete(child);
        resolve();
      };
      child.once('exit', finish);
      child.once('error', finish);
    });
  }

  /** Starts `command` in a process group of its own. */
  static spawn(
    name: string,
    command: string,
    args: readonly string[],
    options: SpawnOptions = {},
  ): ServiceProcess {
    if (!hooked) {
      hooked = true;
      process.on('exit', () => {
        for (const child of alive) killGroup(child, 'SIGKILL');
      });
    }
    const child = spawn(command, [...args], { stdio: 'ignore', ...options, detached: true });
    alive.add(child);
    return new ServiceProcess(name, child);
  }

  get running(): boolean {
    return !this.#done;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Sends `signal` to the process group. */
  signal(signal: NodeJS.Signals): void {
    killGroup(this.child, signal);
  }

  /** `signal` (default SIGTERM), then SIGKILL after `graceMs`; resolves once it exited. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.signal('SIGCONT'); // a paused process cannot act on SIGTERM
    this.signal(signal);
    const timer = setTimeout(() => {
      this.signal('SIGKILL');
    }, graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Polls `check` every 50 ms until it holds; throws after `timeoutMs` or if `proc` exits. */
export async function waitUntil(
  what: string,
  proc: ServiceProcess,
  check: () => Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!proc.running) throw new Error(`${what} exited during start-up`);
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
