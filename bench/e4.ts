/**
 * `npm run bench -- e4`: message protection throughput of the E4 library against raw AES-256-CTR.
 *
 * Every row times one library operation against a baseline in the same run, in alternating
 * slices (the box is shared and noisy, so absolute figures drift; ratios are what to compare).
 * The baselines are what one message costs with raw AES-CTR in Node:
 * - encrypt: `createCipheriv('aes-256-ctr', key, freshIv).update(payload)` + `final()`, the fresh
 *   IV drawn with `randomFillSync` into a reused buffer (the cheapest random IV). A second encrypt
 *   baseline takes the IV from a counter instead: no RNG cost, the strictest comparison;
 * - decrypt: `createDecipheriv('aes-256-ctr', key, iv).update(ciphertext)` + `final()`, the IV
 *   coming with the message.
 * Baselines do no framing; the library's figures include its whole message format.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomFillSync } from 'node:crypto';
import {
  AesSivKey,
  bytesEqual,
  cmdSetPubKey,
  cmdSetTopicKey,
  commandKeyForClient,
  E4Client,
  protectCommand,
  protectSymKey,
  protectSymKeyAt,
  randomCurve25519KeyPair,
  randomEd25519Key,
  toHex,
  topicHash,
  unprotectSymKey,
  type Clock,
} from '../e4/index.ts';
import { compareAlternating, type ContenderStats, type MeasureSettings } from './lib/measure.ts';
import type { Benchmark, BenchOptions, BenchOutcome, JsonObject } from './lib/types.ts';

const TOPIC = 'bench/e4/topic';
const PAYLOAD_SIZES = [64, 1024] as const;
/** Required ratio (ours / raw AES-CTR) for SK protect and unprotect through {@link E4Client}. */
const TARGET_RATIO = 0.5;
/** The scenario the target applies to: how devices use the library. */
const TARGET_SCENARIO = 'sk-client';
const PK_CLIENT_NAME = 'bench-pk-client';

const DEFAULT_SETTINGS: MeasureSettings = { warmupMs: 80, rounds: 11, sliceMs: 40 };
const QUICK_SETTINGS: MeasureSettings = { warmupMs: 20, rounds: 3, sliceMs: 15 };

type Operation = 'protect' | 'unprotect';

/** Makes the timed operation for one payload; preparing it also checks that it round-trips. */
type OpFactory = (payload: Uint8Array) => () => unknown;

/** One way of calling the library. */
interface Scenario {
  readonly name: string;
  readonly api: string;
  readonly protect: OpFactory;
  readonly unprotect: OpFactory;
}

/** One library operation on one payload size, beside its baselines. */
type Row = {
  readonly scenario: string;
  readonly api: string;
  readonly operation: Operation;
  readonly payloadBytes: number;
  readonly oursOpsPerSec: number;
  /** Random-IV CTR encryption for protect, CTR decryption for unprotect. */
  readonly baselineOpsPerSec: number;
  /** Median of ours / median of the baseline, on the wall clock. */
  readonly ratio: number;
  /** The same on process CPU time (insensitive to being descheduled by neighbours). */
  readonly ratioCpu: number;
  /** Counter-IV CTR encryption (protect rows only). */
  readonly baselineCounterIvOpsPerSec: number | null;
  readonly ratioCounterIv: number | null;
  readonly ratioCounterIvCpu: number | null;
  readonly contenders: readonly ContenderStats[];
};

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`bench e4: sanity check failed: ${what}`);
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

// ---------------------------------------------------------------------------------------------
// Baselines

/** Raw AES-256-CTR encryption of one message with a fresh IV, random or from a counter. */
function ctrEncrypt(key: Uint8Array, payload: Uint8Array, iv: 'random' | 'counter'): () => unknown {
  const ivBytes = new Uint8Array(16);
  const ivView = new DataView(ivBytes.buffer);
  let counter = 0;
  const freshIv =
    iv === 'random'
      ? () => randomFillSync(ivBytes)
      : () => {
          counter = (counter + 1) >>> 0;
          ivView.setUint32(12, counter);
        };
  return () => {
    freshIv();
    const cipher = createCipheriv('aes-256-ctr', key, ivBytes);
    const out = cipher.update(payload);
    cipher.final();
    return out;
  };
}

/** Raw AES-256-CTR decryption of one message whose IV is known. */
function ctrDecrypt(key: Uint8Array, payload: Uint8Array): () => unknown {
  const iv = new Uint8Array(randomBytes(16));
  const encryptor = createCipheriv('aes-256-ctr', key, iv);
  const ciphertext = new Uint8Array(Buffer.concat([encryptor.update(payload), encryptor.final()]));
  const op = (): Uint8Array => {
    const decipher = createDecipheriv('aes-256-ctr', key, iv);
    const out = decipher.update(ciphertext);
    decipher.final();
    return out;
  };
  check(bytesEqual(op(), payload), 'AES-CTR baseline round trip');
  return op;
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/** A device: an E4Client holding the topic key, installed by a C2 command as in production. */
async function clientScenario(
  name: string,
  client: E4Client,
  installCommands: readonly Uint8Array[],
): Promise<Scenario> {
  for (const command of installCommands) {
    const result = await client.unprotect(command, client.receivingTopic);
    check(result.kind === 'command', `${name}: command applied`);
  }
  return {
    name,
    api: 'E4Client.protectMessage / unprotectMessage',
    protect: (payload) => {
      check(
        bytesEqual(client.unprotectMessage(client.protectMessage(payload, TOPIC), TOPIC), payload),
        `${name}: protect round trip`,
      );
      return () => client.protectMessage(payload, TOPIC);
    },
    unprotect: (payload) => {
      const message = client.protectMessage(payload, TOPIC);
      check(bytesEqual(client.unprotectMessage(message, TOPIC), payload), `${name}: round trip`);
      return () => client.unprotectMessage(message, TOPIC);
    },
  };
}

/** Stateless functions with a key given as is (raw bytes, or an {@link AesSivKey} reused). */
function statelessScenario(
  name: string,
  api: string,
  key: Uint8Array | AesSivKey,
  clock: Clock,
): Scenario {
  return {
    name,
    api,
    protect: (payload) => {
      const message = protectSymKey(payload, key, clock);
      check(bytesEqual(unprotectSymKey(message, key, clock), payload), `${name}: round trip`);
      return () => protectSymKey(payload, key, clock);
    },
    unprotect: (payload) => {
      const message = protectSymKey(payload, key, clock);
      check(bytesEqual(unprotectSymKey(message, key, clock), payload), `${name}: round trip`);
      return () => unprotectSymKey(message, key, clock);
    },
  };
}

/**
 * A reused {@link AesSivKey} where every message carries a new timestamp: AesSivKey caches the
 * CMAC of the last timestamp, which a fixed clock always hits; this is the price of a miss (a key
 * that sends or receives about one message per second).
 */
function newTimestampScenario(key: AesSivKey, nowMs: number): Scenario {
  const name = 'sk-prepared-new-ts';
  const nowSeconds = Math.floor(nowMs / 1000);
  const fixedClock: Clock = () => nowMs;
  return {
    name,
    api: 'protectSymKey / unprotectSymKey (AesSivKey, new timestamp per message)',
    protect: (payload) => {
      const message = protectSymKey(payload, key, fixedClock);
      check(bytesEqual(unprotectSymKey(message, key, fixedClock), payload), `${name}: round trip`);
      let t = nowMs;
      const advancing: Clock = () => (t += 1000);
      return () => protectSymKey(payload, key, advancing);
    },
    unprotect: (payload) => {
      // The whole 10-minute window, so consecutive messages differ and all stay valid.
      const messages = Array.from({ length: 600 }, (_, i) =>
        protectSymKeyAt(payload, key, BigInt(nowSeconds - 599 + i)),
      );
      for (const m of messages) {
        check(bytesEqual(unprotectSymKey(m, key, fixedClock), payload), `${name}: round trip`);
      }
      let i = 0;
      return () => {
        i = i === messages.length - 1 ? 0 : i + 1;
        return unprotectSymKey(messages[i] ?? new Uint8Array(0), key, fixedClock);
      };
    },
  };
}

async function buildScenarios(topicKey: Uint8Array, clock: Clock): Promise<Scenario[]> {
  const skIdKey = new Uint8Array(randomBytes(32));
  const skClient = await E4Client.createSymmetric(
    { name: 'bench-sk-client' },
    { key: skIdKey },
    { clock },
  );
  const c2 = randomCurve25519KeyPair();
  const pkClient = await E4Client.createPublicKey(
    { name: PK_CLIENT_NAME },
    { privateKey: randomEd25519Key() },
    c2.publicKey,
    { clock },
  );
  const pkPublic = pkClient.publicKey;
  if (pkPublic === undefined) throw new Error('bench e4: a PK client has a public key');
  const pkCommandKey = commandKeyForClient(c2.privateKey, pkPublic);
  const prepared = new AesSivKey(topicKey);
  return [
    await clientScenario('sk-client', skClient, [
      protectCommand(cmdSetTopicKey(topicKey, TOPIC), skIdKey, clock),
    ]),
    // The client also verifies its own signature: the cost is that of any sender's.
    await clientScenario('pk-client', pkClient, [
      protectCommand(cmdSetTopicKey(topicKey, TOPIC), pkCommandKey, clock),
      protectCommand(cmdSetPubKey(pkPublic, PK_CLIENT_NAME), pkCommandKey, clock),
    ]),
    statelessScenario(
      'sk-prepared',
      'protectSymKey / unprotectSymKey (AesSivKey)',
      prepared,
      clock,
    ),
    newTimestampScenario(prepared, clock()),
    statelessScenario('sk-raw-key', 'protectSymKey / unprotectSymKey (raw key)', topicKey, clock),
  ];
}

// ---------------------------------------------------------------------------------------------
// Run

function measureRow(
  scenario: Scenario,
  operation: Operation,
  payload: Uint8Array,
  topicKey: Uint8Array,
  settings: MeasureSettings,
): Row {
  const ours = { name: 'ours', op: scenario[operation](payload) };
  const contenders =
    operation === 'protect'
      ? [
          { name: 'aes-ctr-random-iv', op: ctrEncrypt(topicKey, payload, 'random') },
          ours,
          { name: 'aes-ctr-counter-iv', op: ctrEncrypt(topicKey, payload, 'counter') },
        ]
      : [{ name: 'aes-ctr-decrypt', op: ctrDecrypt(topicKey, payload) }, ours];
  const stats = compareAlternating(contenders, settings);
  const [baseline, candidate, counterIv] = stats;
  if (baseline === undefined || candidate === undefined) throw new Error('bench e4: no stats');
  return {
    scenario: scenario.name,
    api: scenario.api,
    operation,
    payloadBytes: payload.length,
    oursOpsPerSec: candidate.medianOpsPerSec,
    baselineOpsPerSec: baseline.medianOpsPerSec,
    ratio: round3(candidate.medianOpsPerSec / baseline.medianOpsPerSec),
    ratioCpu: round3(candidate.medianOpsPerCpuSec / baseline.medianOpsPerCpuSec),
    baselineCounterIvOpsPerSec: counterIv?.medianOpsPerSec ?? null,
    ratioCounterIv:
      counterIv === undefined
        ? null
        : round3(candidate.medianOpsPerSec / counterIv.medianOpsPerSec),
    ratioCounterIvCpu:
      counterIv === undefined
        ? null
        : round3(candidate.medianOpsPerCpuSec / counterIv.medianOpsPerCpuSec),
    contenders: stats,
  };
}

function summaryTable(rows: readonly Row[]): string[] {
  const n = (x: number | null): string => (x === null ? '—' : x.toLocaleString('en-US'));
  const r2 = (x: number | null): string => (x === null ? '—' : x.toFixed(2));
  return [
    '| scenario | operation | payload | ours (ops/s) | raw AES-CTR (ops/s) | ratio | ratio, CPU time | CTR counter IV (ops/s) | ratio | ratio, CPU time |',
    '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...rows.map(
      (r) =>
        `| ${r.scenario} | ${r.operation} | ${r.payloadBytes} B | ${n(r.oursOpsPerSec)} | ` +
        `${n(r.baselineOpsPerSec)} | ${r2(r.ratio)} | ${r2(r.ratioCpu)} | ` +
        `${n(r.baselineCounterIvOpsPerSec)} | ${r2(r.ratioCounterIv)} | ${r2(r.ratioCounterIvCpu)} |`,
    ),
  ];
}

async function run(options: BenchOptions): Promise<BenchOutcome> {
  const base = options.quick ? QUICK_SETTINGS : DEFAULT_SETTINGS;
  const settings: MeasureSettings = {
    warmupMs: base.warmupMs,
    rounds: options.rounds ?? base.rounds,
    sliceMs: options.sliceMs ?? base.sliceMs,
  };
  // A fixed clock keeps every timestamp inside the 10-minute window for the whole run.
  const nowMs = Date.now();
  const clock: Clock = () => nowMs;
  const topicKey = new Uint8Array(randomBytes(32));
  const scenarios = await buildScenarios(topicKey, clock);
  const rows: Row[] = [];
  for (const scenario of scenarios) {
    for (const size of PAYLOAD_SIZES) {
      const payload = new Uint8Array(randomBytes(size));
      for (const operation of ['protect', 'unprotect'] as const) {
        const row = measureRow(scenario, operation, payload, topicKey, settings);
        options.log(
          `  ${scenario.name} ${operation} ${size} B: ${row.oursOpsPerSec} ops/s, ` +
            `ratio ${row.ratio} (CPU ${row.ratioCpu})` +
            (row.ratioCounterIv === null
              ? ''
              : `, counter IV ${row.ratioCounterIv} (CPU ${row.ratioCounterIvCpu})`),
        );
        rows.push(row);
      }
    }
  }
  // E4Client hashes the topic name on every message; timed alone, it explains most of the gap
  // between the sk-client and sk-prepared rows.
  const [topicHashStats] = compareAlternating(
    [{ name: 'toHex(topicHash(topic))', op: () => toHex(topicHash(TOPIC)) }],
    settings,
  );
  const targets = rows
    .filter((r) => r.scenario === TARGET_SCENARIO)
    .map((r) => ({
      operation: r.operation,
      payloadBytes: r.payloadBytes,
      required: TARGET_RATIO,
      ratio: r.ratio,
      met: r.ratio >= TARGET_RATIO,
      ratioCpu: r.ratioCpu,
      metCpu: r.ratioCpu >= TARGET_RATIO,
      ratioCounterIv: r.ratioCounterIv,
      metCounterIv: r.ratioCounterIv === null ? null : r.ratioCounterIv >= TARGET_RATIO,
    }));
  const settingsJson: JsonObject = {
    ...settings,
    payloadSizes: [...PAYLOAD_SIZES],
    clock: 'fixed (Date.now() at start)',
    alternation:
      'per row: warm-up, then rounds of [baseline, ours(, counter-IV baseline)] with fixed op counts sized to sliceMs',
  };
  return {
    settings: settingsJson,
    results: {
      baselines: {
        'aes-ctr-random-iv':
          "randomFillSync(iv); createCipheriv('aes-256-ctr', key, iv).update(payload); final()",
        'aes-ctr-counter-iv':
          "iv = counter++; createCipheriv('aes-256-ctr', key, iv).update(payload); final()",
        'aes-ctr-decrypt': "createDecipheriv('aes-256-ctr', key, iv).update(ciphertext); final()",
      },
      target: {
        scenario: TARGET_SCENARIO,
        rule: `ratio >= ${TARGET_RATIO} for SK protect and unprotect`,
        met: targets.every((t) => t.met),
        metCpu: targets.every((t) => t.metCpu),
        metCounterIv: targets.every((t) => t.metCounterIv !== false),
        rows: targets,
      },
      rows,
      diagnostics: {
        clientTopicHashPerMessage: topicHashStats ?? null,
      },
    },
    summary: [
      ...summaryTable(rows),
      '',
      `E4Client per-message topic hash alone: ${(topicHashStats?.medianOpsPerSec ?? 0).toLocaleString('en-US')} ops/s`,
    ],
  };
}

/** The e4 benchmark (see the module comment). */
export const benchmark: Benchmark = {
  name: 'e4',
  description:
    'E4 protect/unprotect ops/s (SK and PK, 64 B and 1 KiB) against raw AES-256-CTR in the same run',
  run,
};
