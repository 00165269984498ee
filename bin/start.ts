/**
 * `npm start`: starts what exists of the product. Today that is the E4 protocol library only;
 * the C2 node (API, delivery, embedded Postgres and broker) lands with the C2 core.
 */
import { clientIdFromName, controlTopic, toHex } from '../e4/index.ts';

const demoName = 'demo-device';
const id = clientIdFromName(demoName);
console.log('E4 C2 — status of this build');
console.log('  e4/ protocol library: ready (both modes, all 8 commands, device state machine)');
console.log(
  `    example: client "${demoName}" has id ${toHex(id)} and control topic ${controlTopic(id)}`,
);
console.log('    conformance: npm run vectors; benchmark: npm run bench -- e4');
console.log('  C2 server: not in this build yet (see the open issues); nothing is listening.');
