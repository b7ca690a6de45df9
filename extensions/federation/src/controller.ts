/**
 * The selected controller's details: run block, chart and clients table. Rebuilt from
 * scratch whenever the data changes; the buttons live in the panel (they persist).
 */
import { IClient, IControllerStatus, IRun, localAccuracy } from './api';
import { renderChart } from './chart';
import { fixed, fmt, h, slug } from './dom';

/** Client states that still hold a connection: only these can be removed. */
const GONE_STATES = new Set(['left', 'removed']);

/** Order of states in the summary line when counts tie. */
const STATE_ORDER = ['training', 'idle', 'joining', 'lost', 'left', 'removed'];

export function renderControllerHead(status: IControllerStatus): HTMLElement {
  return h(
    'div',
    { class: 'nbfl-fed-facts' },
    h('div', { class: 'nbfl-fed-endpoint', title: 'where clients connect' }, status.endpoint),
    h('div', { class: 'nbfl-fed-security' }, status.security),
    status.defense?.summary
      ? h('div', { class: 'nbfl-fed-defense', title: 'what this controller refused from peers' }, status.defense.summary)
      : null
  );
}

export function renderControllerBody(
  status: IControllerStatus,
  onRemove: (name: string) => void
): HTMLElement {
  return h(
    'div',
    { class: 'nbfl-fed-controller' },
    renderRun(status.run),
    renderChart(status.history ?? []),
    renderClients(status.clients ?? [], status.workshop ? onRemove : null)
  );
}

function renderRun(run: IRun | null): HTMLElement {
  if (!run) {
    return h('div', { class: 'nbfl-fed-run nbfl-fed-norun' }, 'No run yet');
  }
  const round = typeof run.round === 'number' ? run.round : null;
  const roundText = `Round ${round ?? '–'}${run.rounds ? ` of ${run.rounds}` : ''}`;
  const block = h(
    'div',
    { class: 'nbfl-fed-run' },
    h(
      'div',
      { class: 'nbfl-fed-run-head' },
      h('span', { class: 'nbfl-fed-round', 'data-round': round ?? '' }, roundText),
      // the chart and the history number rounds across runs; this run's count starts at 1
      typeof run.overall === 'number' && run.overall !== round
        ? h('span', { class: 'nbfl-fed-overall', title: "the controller's round number, as in the chart" },
            `round ${run.overall} overall`)
        : null,
      h('span', { class: `nbfl-fed-runstate nbfl-fed-runstate-${slug(run.state)}` }, run.state),
      run.workflow ? h('span', { class: 'nbfl-fed-workflow' }, run.workflow) : null
    )
  );
  if (run.state === 'running' && run.asked > 0) {
    const fraction = Math.min(Math.max(run.answered / run.asked, 0), 1);
    const bar = h('div', { class: 'nbfl-fed-progress-bar' });
    bar.style.width = `${(fraction * 100).toFixed(1)}%`;
    block.append(
      h(
        'div',
        {
          class: 'nbfl-fed-progress',
          role: 'progressbar',
          'aria-valuemin': 0,
          'aria-valuemax': run.asked,
          'aria-valuenow': run.answered,
          'aria-label': 'results in for this round'
        },
        bar
      ),
      h('div', { class: 'nbfl-fed-progress-label' }, `${run.answered} of ${run.asked} results in`)
    );
  }
  if (run.summary) {
    block.append(h('div', { class: 'nbfl-fed-summary' }, run.summary));
  }
  if (run.state === 'running' && run.view) {
    block.append(h('div', { class: 'nbfl-fed-view' }, run.view));
  }
  return block;
}

/** "3 clients: 2 training, 1 idle" */
export function clientSummary(clients: IClient[]): string {
  if (clients.length === 0) {
    return 'No clients yet';
  }
  const counts = new Map<string, number>();
  for (const client of clients) {
    counts.set(client.state, (counts.get(client.state) ?? 0) + 1);
  }
  const rank = (state: string): number => {
    const i = STATE_ORDER.indexOf(state);
    return i < 0 ? STATE_ORDER.length : i;
  };
  const parts = [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || rank(a[0]) - rank(b[0]))
    .map(([state, n]) => `${n} ${state}`);
  const noun = clients.length === 1 ? 'client' : 'clients';
  return `${clients.length} ${noun}: ${parts.join(', ')}`;
}

/** The local metric shown in the table: accuracy (the built-in trainer's local_accuracy,
 * or a task's own accuracy), else the first metric; the tooltip lists all of the client's
 * last metrics. */
function localMetric(client: IClient): { text: string; title: string } {
  const metrics = client.metrics ?? {};
  const numbers = Object.entries(metrics).filter(([, v]) => typeof v === 'number');
  if (numbers.length === 0) {
    return { text: '–', title: 'no local metrics yet' };
  }
  const title = 'last metrics: ' + numbers.map(([k, v]) => `${k} ${fmt(v)}`).join(', ');
  return { text: fixed(localAccuracy(metrics) ?? numbers[0][1]), title };
}

function renderClients(
  clients: IClient[],
  onRemove: ((name: string) => void) | null
): HTMLElement {
  const section = h(
    'div',
    { class: 'nbfl-fed-clients-section' },
    h('div', { class: 'nbfl-fed-clients-summary' }, clientSummary(clients))
  );
  if (clients.length === 0) {
    return section;
  }
  // The device sits under the name, and the round column shows only when the panel
  // is wider than the sidebar's default (style/base.css), so the table fits it.
  const head = h(
    'tr',
    {},
    h('th', {}, 'Name'),
    h('th', {}, 'State'),
    h('th', { class: 'nbfl-fed-num nbfl-fed-col-round', title: 'the round the client last worked on, numbered overall, as in the chart' }, 'Round'),
    h('th', { class: 'nbfl-fed-num', title: 'local accuracy (or first metric); hover for all' }, 'Local'),
    onRemove ? h('th', { 'aria-label': 'actions' }) : null
  );
  const body = h('tbody');
  for (const client of clients) {
    const metric = localMetric(client);
    const details = [
      typeof client.round === 'number' && `round ${client.round}`,
      client.host && `host ${client.host}`,
      client.share && `share ${client.share}`,
      typeof client.seconds === 'number' && `last task ${fmt(client.seconds)} s`
    ].filter(Boolean);
    const row = h(
      'tr',
      { 'data-name': client.name },
      h(
        'td',
        { class: 'nbfl-fed-name', title: [client.name, ...details].join(', ') },
        h('div', { class: 'nbfl-fed-client-name' }, client.name),
        h('div', { class: 'nbfl-fed-device' }, client.device ?? '')
      ),
      h('td', {}, h('span', { class: `nbfl-fed-state nbfl-fed-state-${slug(client.state)}` }, client.state)),
      h('td', { class: 'nbfl-fed-num nbfl-fed-col-round' }, client.round ?? '–'),
      h('td', { class: 'nbfl-fed-num', title: metric.title }, metric.text)
    );
    if (onRemove) {
      row.append(
        h(
          'td',
          {},
          GONE_STATES.has(client.state)
            ? null
            : h(
                'button',
                {
                  // Outlined, not filled: a red button on every row would shout.
                  class: 'jp-Button jp-mod-minimal nbfl-fed-remove',
                  type: 'button',
                  title: `Disconnect ${client.name} and make a new join line`,
                  'data-nbfl-focus': `remove:${client.name}`,
                  onclick: () => onRemove(client.name)
                },
                'Remove'
              )
        )
      );
    }
    body.append(row);
  }
  section.append(
    h(
      'div',
      { class: 'nbfl-fed-table-wrap' },
      h('table', { class: 'nbfl-fed-clients' }, h('thead', {}, head), body)
    )
  );
  return section;
}
