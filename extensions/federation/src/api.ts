/**
 * The REST contract of nbfl's Jupyter server extension, and the two calls the panel makes.
 *
 * The status shapes mirror nbfl/protocol/panel.py (Python's TypedDicts) and the states
 * nbfl/protocol/names.py; tests/unit/test_panel_types.py holds the two declarations together.
 *
 * Requests go through ServerConnection so they carry Jupyter's token and XSRF cookie
 * and honour the server's base URL (JupyterHub, proxies).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** Metrics as reported by a trainer: name -> value. */
export type Metrics = Record<string, number>;

/** A client's accuracy on its own data: the built-in trainer reports local_accuracy, a task may say accuracy. */
export function localAccuracy(metrics: Metrics): number | undefined {
  const value = metrics.local_accuracy ?? metrics.accuracy;
  return typeof value === 'number' ? value : undefined;
}

/** The closed sets of states; nbfl.protocol.names declares the same values (a test compares them). */
export type RunState = 'running' | 'finished' | 'stopped' | 'failed';
export type ClientState = 'joining' | 'idle' | 'training' | 'lost' | 'left' | 'removed';
export type ParticipantState = 'connecting' | 'idle' | 'training' | 'stopped';

export interface IRun {
  state: RunState;
  summary: string;
  /** The run's round in progress (or its last one), counted within this run. */
  round: number | null;
  /** The same round numbered across all of the controller's runs, as the history and chart number it. */
  overall?: number | null;
  rounds: number | null;
  /** Results in / tasks out in the round in progress. */
  answered: number;
  asked: number;
  workflow: string;
  /** While it runs: how to get its dashboard back after a page reload (set by the notebook's magics). */
  view?: string | null;
  /** Whether a notebook cell waits on it (a blocking %fl_round): Detach lets that cell end. */
  held?: boolean;
}

export interface IClient {
  name: string;
  device: string;
  host: string;
  state: ClientState;
  share: string | null;
  round: number | null;
  seconds: number | null;
  /** The client's last local metrics; may be empty. */
  metrics: Metrics;
}

export interface IHistoryRow {
  /** Controller-wide round number. */
  round: number;
  status: string;
  outcome: string;
  metrics: Metrics;
}

export interface IControllerStatus {
  endpoint: string;
  security: string;
  workshop: boolean;
  join_line: string | null;
  run: IRun | null;
  clients: IClient[];
  /** At most the last 500 rounds. */
  history: IHistoryRow[];
  /** What the controller refused from peers (nbfl.transport.guard); summary is "" when nothing. */
  defense?: IDefense;
}

export interface IDefense {
  refused_messages: number;
  refused_joins: number;
  dropped_peers: number;
  /** Connections closed before they joined (over the cap, or too slow). */
  closed_connections: number;
  /** Connections that ended before joining. */
  ended_unjoined: number;
  /** [address, refusals], most first. */
  top: [string, number][];
  summary: string;
}

export interface IParticipantStatus {
  name: string;
  controller: string;
  state: ParticipantState;
  /** Seconds since the controller stopped answering, or null. */
  controller_lost: number | null;
  share: string | null;
  device: string;
  rounds_done: number;
  local: Metrics;
  global: Metrics;
  /** The round whose global metrics these are (the controller sends them with the next task). */
  global_round?: number | null;
  last_error: string | null;
}

interface IEntryBase {
  id: string;
  pid: number;
  /** Notebook path, or null for a process started outside JupyterLab. */
  notebook: string | null;
  /** Epoch seconds. */
  started: number;
  /** Set when the process's control socket did not answer; status is then null. */
  error: string | null;
}

export interface IControllerEntry extends IEntryBase {
  kind: 'controller';
  status: IControllerStatus | null;
}

export interface IParticipantEntry extends IEntryBase {
  kind: 'participant';
  status: IParticipantStatus | null;
}

export type Entry = IControllerEntry | IParticipantEntry;

export interface IFederation {
  entries: Entry[];
}

export type Action = 'stop' | 'remove' | 'leave' | 'detach';

/** A failed request, with the server's message when it sent one. */
export class FederationError extends Error {}

/** How long a request may take before the panel calls the server unreachable. */
const TIMEOUT_MS = 10000;

export class FederationApi {
  constructor(
    private readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  /**
   * Fetch the federation as raw JSON text: the panel compares the text with the last
   * one to decide whether to re-render, then parses it with parseFederation.
   */
  async fetchText(): Promise<string> {
    const url = URLExt.join(this.settings.baseUrl, 'nbfl', 'federation');
    const response = await this.request(url, { method: 'GET' });
    return response.text();
  }

  /** POST an action on one entry; resolves to the server's message. */
  async post(id: string, action: Action, body?: object): Promise<string> {
    const url = URLExt.join(
      this.settings.baseUrl,
      'nbfl',
      'federation',
      encodeURIComponent(id),
      action
    );
    const response = await this.request(url, {
      method: 'POST',
      body: JSON.stringify(body ?? {}),
      headers: { 'Content-Type': 'application/json' }
    });
    const data = (await readJson(response)) as { message?: unknown } | null;
    return typeof data?.message === 'string' ? data.message : `${action}: done`;
  }

  /** One request with a timeout; a non-2xx answer becomes a FederationError. */
  private async request(url: string, init: RequestInit): Promise<Response> {
    const abort = new AbortController();
    const timer = window.setTimeout(() => abort.abort(), TIMEOUT_MS);
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(
        url,
        { ...init, signal: abort.signal },
        this.settings
      );
    } catch (err) {
      throw new FederationError(
        abort.signal.aborted
          ? `no answer within ${TIMEOUT_MS / 1000} s`
          : `server not reachable (${errorText(err)})`
      );
    } finally {
      window.clearTimeout(timer);
    }
    if (!response.ok) {
      const data = (await readJson(response)) as { message?: unknown } | null;
      if (typeof data?.message === 'string') {
        throw new FederationError(data.message);
      }
      // A 404 page rather than JSON: the server side of nbfl is not loaded.
      throw new FederationError(
        response.status === 404
          ? 'the nbfl server extension is not loaded on this Jupyter server (404)'
          : `HTTP ${response.status} ${response.statusText}`
      );
    }
    return response;
  }
}

/** Parse the GET answer, refusing anything without an entries list. */
export function parseFederation(text: string): IFederation {
  const data = JSON.parse(text) as Partial<IFederation> | null;
  if (!data || !Array.isArray(data.entries)) {
    throw new FederationError('unexpected answer from the server (no entries)');
  }
  return { entries: data.entries };
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function readJson(response: Response): Promise<unknown> {
  try {
    return await response.json();
  } catch {
    return null;
  }
}
