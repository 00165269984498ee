/** The PostgreSQL C2 store: repositories bound to one transaction or to the pool. */
import type pg from 'pg';
import { PgClients, type ClientRepository } from './pg-clients.ts';
import { PgJournal, type JournalRepository } from './pg-journal.ts';
import { PgMemberships, type MembershipRepository } from './pg-memberships.ts';
import { PgPeers, type PeerRepository } from './pg-peers.ts';
import { PgTopics, type TopicRepository } from './pg-topics.ts';
import { PgTraffic, type TrafficRepository } from './pg-traffic.ts';
import { translatingFailures, withTransaction, type Queryable } from './pool.ts';

/** Every repository, bound to one query runner. */
export interface C2Repositories {
  readonly clients: ClientRepository;
  readonly topics: TopicRepository;
  readonly memberships: MembershipRepository;
  readonly peers: PeerRepository;
  readonly journal: JournalRepository;
  readonly traffic: TrafficRepository;
}

/** The storage port of the domain: transactions and plain reads. */
export interface C2Store {
  /** Runs `work` in one transaction (retried on serialization failure: keep it side-effect free). */
  transaction<T>(work: (tx: C2Repositories) => Promise<T>): Promise<T>;
  /** Repositories on the pool, for reads outside a transaction. */
  readonly read: C2Repositories;
}

function bind(db: Queryable): C2Repositories {
  return {
    clients: new PgClients(db),
    topics: new PgTopics(db),
    memberships: new PgMemberships(db),
    peers: new PgPeers(db),
    journal: new PgJournal(db),
    traffic: new PgTraffic(db),
  };
}

/** {@link C2Store} on a pg pool. The pool belongs to the caller, who closes it. */
export class PgC2Store implements C2Store {
  readonly read: C2Repositories;

  /** @param pool - a pool whose search_path holds the migrated schema */
  constructor(private readonly pool: pg.Pool) {
    // Reads, like transactions, report a lost or silent database as C2_UNAVAILABLE.
    this.read = bind(translatingFailures(pool));
  }

  transaction<T>(work: (tx: C2Repositories) => Promise<T>): Promise<T> {
    return withTransaction(this.pool, (client) => work(bind(client)));
  }
}
