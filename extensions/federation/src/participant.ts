/** The selected participant's details: a short list of facts about this notebook's client. */
import { IParticipantStatus, localAccuracy, Metrics } from './api';
import { Child, fmt, h, slug } from './dom';

/** The metric compared between the local and the global model: accuracy, else the first. */
function compared(local: Metrics, global: Metrics, round: number | null): string {
  // the controller sends the global model's metrics with each task: they are the round before's
  const of = round === null ? '' : ` (round ${round})`;
  const mine = localAccuracy(local);
  if (mine !== undefined || typeof global.accuracy === 'number') {
    return `your model ${fmt(mine)} · global ${fmt(global.accuracy)}${of}`;
  }
  const name =
    'accuracy' in local || 'accuracy' in global
      ? 'accuracy'
      : Object.keys(local)[0] ?? Object.keys(global)[0];
  if (name === undefined) {
    return 'no metrics yet';
  }
  const label = name === 'accuracy' ? '' : `${name}: `;
  return `${label}your model ${fmt(local[name])} · global ${fmt(global[name])}${of}`;
}

export function renderParticipant(status: IParticipantStatus): HTMLElement {
  const rows: Array<[string, Child]> = [
    ['Controller', status.controller],
    ['Name', status.name],
    ['Share', status.share ?? '–'],
    ['Device', status.device],
    [
      'State',
      h(
        'span',
        {},
        h('span', { class: `nbfl-fed-state nbfl-fed-state-${slug(status.state)}` }, status.state),
        typeof status.controller_lost === 'number'
          ? h(
              'span',
              { class: 'nbfl-fed-lost' },
              ` controller not answering for ${Math.round(status.controller_lost)} s`
            )
          : null
      )
    ],
    ['Rounds done', status.rounds_done],
    ['Accuracy', compared(status.local ?? {}, status.global ?? {}, status.global_round ?? null)]
  ];
  const list = h('dl', { class: 'nbfl-fed-facts nbfl-fed-participant' });
  for (const [term, value] of rows) {
    list.append(h('dt', {}, term), h('dd', {}, value));
  }
  if (status.last_error) {
    list.append(
      h('dt', {}, 'Last error'),
      h('dd', { class: 'nbfl-fed-last-error' }, status.last_error)
    );
  }
  return list;
}
