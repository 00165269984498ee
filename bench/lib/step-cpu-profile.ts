/**
 * A V8 CPU profile of this process over one timed step (`bench/fanout.ts --cpu-profile DIR`):
 * `node --cpu-prof` would profile the whole run, set-up and baseline included, which hides the
 * step's own costs. The file opens in Chrome DevTools or any `.cpuprofile` viewer.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';

/** A profile being recorded; {@link StepCpuProfile.stop} writes it. */
export class StepCpuProfile {
  private constructor(private readonly session: Session) {}

  /** Starts profiling this process (sampling every 250 µs). */
  static async start(): Promise<StepCpuProfile> {
    const session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 250 });
    await session.post('Profiler.start');
    return new StepCpuProfile(session);
  }

  /**
   * Stops and writes `<dir>/<name>.cpuprofile`, creating `dir` if needed (the benchmark's child
   * processes may write before the parent's first profile).
   * @returns the file's path
   */
  async stop(dir: string, name: string): Promise<string> {
    try {
      const { profile } = await this.session.post('Profiler.stop');
      await mkdir(dir, { recursive: true });
      const path = join(dir, `${name.replace(/[^\w.-]+/g, '-')}.cpuprofile`);
      await writeFile(path, JSON.stringify(profile));
      return path;
    } finally {
      this.session.disconnect();
    }
  }
}
