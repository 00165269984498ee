/** Delivery workers of the cluster. */
export { DeliveryWorker, type DeliveryWorkerOptions } from './delivery-worker.ts';
