// OTEL_RESOURCE_ATTRIBUTES is checked at start-up: a value the OpenTelemetry SDK would drop
// whole (it says so at debug level only) stops the node with a C2_CONFIG problem naming the entry.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { envDetector } from '@opentelemetry/resources';
import { loadConfig, type ConfigError } from '../../config/index.ts';

/** Values the SDK takes, with what it reads from them. */
const GOOD: ReadonlyArray<[string, Record<string, string>]> = [
  ['e4c2.site=a', { 'e4c2.site': 'a' }],
  ['e4c2.site=a,service.name=c2-eu', { 'e4c2.site': 'a', 'service.name': 'c2-eu' }],
  [' e4c2.site = a , ,deployment=eu%2Cwest%3D1 ', { 'e4c2.site': 'a', deployment: 'eu,west=1' }],
  ['empty=', { empty: '' }],
  ['k=100%25', { k: '100%' }],
];

/** Values the SDK drops whole. */
const BAD: readonly string[] = [
  'e4c2.site=a=b',
  'e4c2.site=a,region',
  'e4c2.site',
  '=a',
  ' =a',
  'k=100%',
  'k=%E0%A4%A',
  `k=${'x'.repeat(256)}`,
  `${'k'.repeat(256)}=v`,
];

function problemsOf(value: string): readonly string[] {
  try {
    loadConfig({ OTEL_RESOURCE_ATTRIBUTES: value });
    return [];
  } catch (err) {
    return (err as ConfigError).problems;
  }
}

void describe('OTEL_RESOURCE_ATTRIBUTES', () => {
  void it('takes well-formed values, unset and empty', () => {
    for (const [value] of GOOD) assert.deepEqual(problemsOf(value), [], value);
    assert.doesNotThrow(() => loadConfig({}));
    assert.doesNotThrow(() => loadConfig({ OTEL_RESOURCE_ATTRIBUTES: '' }));
  });

  void it('refuses a value the SDK would drop, naming the entry and the rule', () => {
    for (const value of BAD) {
      const problems = problemsOf(value);
      assert.equal(problems.length, 1, `${value}: ${problems.join('; ')}`);
      assert.match(
        problems[0] ?? '',
        /^OTEL_RESOURCE_ATTRIBUTES: entry \d+ \(".*"\).*; the OpenTelemetry SDK would drop every attribute it sets$/,
      );
    }
    assert.match(
      problemsOf('e4c2.site=a,site=b=c')[0] ?? '',
      /entry 2 \("site=b=c"\) is not key=value: .*percent-encoded \(%2C, %3D\)/,
    );
    assert.match(problemsOf('k=100%')[0] ?? '', /a literal "%" is %25/);
  });

  void describe('agrees with the SDK', () => {
    const saved = {
      attributes: process.env.OTEL_RESOURCE_ATTRIBUTES,
      serviceName: process.env.OTEL_SERVICE_NAME,
    };
    const restore = (name: string, value: string | undefined): void => {
      if (value === undefined) Reflect.deleteProperty(process.env, name);
      else process.env[name] = value;
    };
    after(() => {
      restore('OTEL_RESOURCE_ATTRIBUTES', saved.attributes);
      restore('OTEL_SERVICE_NAME', saved.serviceName);
    });
    const detected = (value: string): Record<string, unknown> => {
      process.env.OTEL_RESOURCE_ATTRIBUTES = value;
      delete process.env.OTEL_SERVICE_NAME;
      return envDetector.detect().attributes ?? {};
    };

    void it('on what it reads from the values the node takes', () => {
      for (const [value, attributes] of GOOD) assert.deepEqual(detected(value), attributes, value);
    });

    void it('on the values it drops, which the node refuses', () => {
      for (const value of BAD) assert.deepEqual(detected(value), {}, value);
    });
  });
});
