// The embedded broker's port: a default one that is taken falls back to a free port (and says
// so); one the operator set is an error, never a silent move to another port.
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../cluster/config/index.ts';
import { C2Error } from '../../cluster/errors.ts';
import { Lifecycle } from '../../cluster/lifecycle.ts';
import { createLogger } from '../../cluster/telemetry/index.ts';
import { brokerUrl } from '../node-parts.ts';

void describe('the embedded broker on a taken port', () => {
  const holder = createServer();
  let taken = 0;
  const logger = createLogger({ level: 'silent', nodeId: 'test' });
  before(async () => {
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    taken = (holder.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise((resolve) => holder.close(resolve));
  });

  void it('set by the operator: a C2_CONFIG error naming the port (it moved to a random one)', async () => {
    const config = loadConfig({ E4C2_MQTT_LISTEN_ADDR: `127.0.0.1:${taken}` });
    const lifecycle = new Lifecycle(logger);
    await assert.rejects(brokerUrl(config, logger, lifecycle, []), (err: unknown) => {
      assert.ok(C2Error.is(err, 'C2_CONFIG'), String(err));
      assert.match(err.message, new RegExp(String(taken)));
      return true;
    });
    await lifecycle.shutdown(5000, 'test');
  });

  void it('the default: falls back to a free port, and a note says so', async () => {
    const config = loadConfig({});
    assert.equal(config.mqtt.kind, 'embedded');
    const lifecycle = new Lifecycle(logger);
    const notes: string[] = [];
    // The default port, pretended taken: the same path as 1884 held by another broker.
    const url = await brokerUrl(
      {
        ...config,
        mqtt: {
          kind: 'embedded',
          listen: { host: '127.0.0.1', port: taken },
          listenExplicit: false,
          clientIdPrefix: 'e4c2',
        },
      },
      logger,
      lifecycle,
      notes,
    );
    assert.doesNotMatch(url, new RegExp(`:${taken}$`));
    assert.match(notes.join('\n'), new RegExp(`MQTT port ${taken} was taken`));
    await lifecycle.shutdown(5000, 'test');
  });
});
