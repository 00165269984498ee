/**
 * The broken variants of the C2 the suite can switch on, to show that its checker catches real
 * bugs (docs/chaos.md). They reach the nodes as `E4C2_TEST_FAULTS`, which the nodes refuse
 * unless `E4C2_ALLOW_TEST_FAULTS=true`. Never for production.
 */
import { TEST_FAULT_NAMES } from '../cluster/config/config-types.ts';

export const TEST_FAULTS: readonly string[] = TEST_FAULT_NAMES;
