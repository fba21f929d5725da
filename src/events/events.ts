/**
 * The registry's events, in distribution's notification format (docs/content/about/notifications.md
 * of distribution): one JSON object per event with its id, time, action, target, request, actor and
 * source, sent to receivers inside an envelope `{ "events": [...] }` of the media type below. The
 * registry's use cases make them (src/registry/) and write them to the index's outbox in the
 * transaction of the change itself; src/events/notifier.ts delivers them.
 */
import { randomUUID } from 'node:crypto';

export const ENVELOPE_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v1+json';

/** What distribution calls blobs' media type in their events: the registry does not know a layer's. */
export const BLOB_MEDIA_TYPE = 'application/octet-stream';

export type EventAction = 'push' | 'pull' | 'mount' | 'delete';

export interface EventTarget {
  mediaType?: string;
  digest?: string;
  size?: number;
  /** The same as size (distribution keeps both). */
  length?: number;
  repository: string;
  fromRepository?: string;
  url?: string;
  tag?: string;
}

/** The request that caused an event, as distribution's RequestRecord has it. */
export interface RequestRecord {
  id: string;
  /** The client's address and port. */
  addr: string;
  /** The Host the client asked for. */
  host: string;
  method: string;
  useragent: string;
}

/** Who did it: the signed-in user's name, or nothing for an anonymous caller. */
export interface ActorRecord {
  name?: string;
}

/** Where an event comes from: what the HTTP layer knows of the request. */
export interface EventOrigin {
  request: RequestRecord;
  actor: ActorRecord;
  /** The registry's URL as the client sees it (`https://registry.example.com`), for targets' urls. */
  baseUrl: string;
}

export interface RegistryEvent {
  id: string;
  timestamp: string;
  action: EventAction;
  target: EventTarget;
  request: RequestRecord;
  actor: ActorRecord;
  source: { addr: string; instanceID: string };
}

/** What a use case says of the content an event is about. */
export interface EventSubject {
  kind: 'manifest' | 'blob';
  repository: string;
  digest?: string;
  mediaType?: string;
  size?: number;
  tag?: string;
  fromRepository?: string;
}

/**
 * Makes the events of one registry node. A use case asks for them only when notifications are on
 * (Registry.events is set), so a registry without endpoints writes no outbox rows.
 */
export class EventFactory {
  /** This process: distribution's source.instanceID. */
  readonly instanceID = randomUUID();

  constructor(
    /** This node's `host:port`. */
    private readonly sourceAddr: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** One event, as the JSON text the outbox keeps. */
  make(action: EventAction, subject: EventSubject, origin: EventOrigin): string {
    return JSON.stringify(this.event(action, subject, origin));
  }

  event(action: EventAction, subject: EventSubject, origin: EventOrigin): RegistryEvent {
    return {
      id: randomUUID(),
      timestamp: this.now().toISOString(),
      action,
      target: target(action, subject, origin.baseUrl),
      request: origin.request,
      actor: origin.actor,
      source: { addr: this.sourceAddr, instanceID: this.instanceID },
    };
  }
}

/**
 * A delete names only the repository and the digest (or the tag), as distribution's does; the other
 * actions describe the content with a link to it.
 */
function target(action: EventAction, s: EventSubject, baseUrl: string): EventTarget {
  if (action === 'delete') {
    return { ...(s.digest !== undefined ? { digest: s.digest } : {}), repository: s.repository, ...(s.tag !== undefined ? { tag: s.tag } : {}) };
  }
  const path = s.kind === 'manifest' ? 'manifests' : 'blobs';
  return {
    mediaType: s.mediaType ?? BLOB_MEDIA_TYPE,
    ...(s.digest !== undefined ? { digest: s.digest } : {}),
    ...(s.size !== undefined ? { size: s.size, length: s.size } : {}),
    repository: s.repository,
    ...(s.fromRepository !== undefined ? { fromRepository: s.fromRepository } : {}),
    ...(s.digest !== undefined ? { url: `${baseUrl}/v2/${s.repository}/${path}/${s.digest}` } : {}),
    ...(s.tag !== undefined ? { tag: s.tag } : {}),
  };
}

/** Where the registry's use cases hand their events: the notifier, when notifications are on. */
export interface EventSink {
  readonly factory: EventFactory;
  /** Events were committed with a write: deliver them soon. */
  written(): void;
  /** A pull's event: batched into the outbox later, never waited for. */
  pulled(event: string): void;
}

/** The events of a change, or undefined when no one listens or the caller gave no origin (a CLI, a job). */
export function eventsOf(
  sink: EventSink | undefined,
  origin: EventOrigin | undefined,
  action: EventAction,
  subjects: readonly EventSubject[],
): string[] | undefined {
  if (!sink || !origin || subjects.length === 0) return undefined;
  return subjects.map((s) => sink.factory.make(action, s, origin));
}
