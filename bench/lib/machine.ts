/** Where a run happened: the figures mean little without the machine and the runtime. */
import { availableParallelism, cpus, loadavg, platform, arch, release, totalmem } from 'node:os';

/** Machine and runtime description recorded in every report. */
export type MachineInfo = {
  readonly node: string;
  readonly v8: string;
  readonly openssl: string;
  readonly platform: string;
  readonly arch: string;
  readonly osRelease: string;
  readonly cpuModel: string;
  readonly cores: number;
  readonly availableParallelism: number;
  readonly totalMemoryMiB: number;
};

/** Describes this machine and runtime. */
export function machineInfo(): MachineInfo {
  const cpuList = cpus();
  return {
    node: process.version,
    v8: process.versions.v8,
    openssl: process.versions.openssl,
    platform: platform(),
    arch: arch(),
    osRelease: release(),
    cpuModel: cpuList[0]?.model.trim() ?? 'unknown',
    cores: cpuList.length,
    availableParallelism: availableParallelism(),
    totalMemoryMiB: Math.round(totalmem() / 2 ** 20),
  };
}

/** The 1, 5 and 15 minute load averages, rounded: a hint of how busy the box was. */
export function loadAverage(): number[] {
  return loadavg().map((l) => Math.round(l * 100) / 100);
}
