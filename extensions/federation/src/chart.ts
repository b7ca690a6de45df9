/**
 * The global-metric chart: one line over the rounds of `history`.
 *
 * The plot is an SVG stretched to the panel's width (preserveAspectRatio="none"), with
 * non-scaling strokes so the line stays crisp at any width; the labels are HTML around
 * it so they use JupyterLab's fonts and are never distorted.
 */
import { IHistoryRow } from './api';
import { fmt, h, s } from './dom';

/** Plot coordinates; the SVG is stretched, so only the ratios matter. */
const W = 1000;
const H = 100;
const PAD = 6;

interface IPoint {
  round: number;
  value: number;
}

/** The metric to chart: accuracy if any round has it, else loss, else none. */
function pickMetric(history: IHistoryRow[]): 'accuracy' | 'loss' | null {
  for (const metric of ['accuracy', 'loss'] as const) {
    if (history.some(row => typeof row.metrics?.[metric] === 'number')) {
      return metric;
    }
  }
  return null;
}

export function renderChart(history: IHistoryRow[]): HTMLElement {
  const metric = pickMetric(history);
  if (metric === null) {
    return h('div', { class: 'nbfl-fed-chart' }, h('div', { class: 'nbfl-fed-chart-empty' }, 'no metrics yet'));
  }
  // Rounds without the metric (failed, or not evaluated) are skipped.
  const points: IPoint[] = [];
  for (const row of history) {
    const value = row.metrics?.[metric];
    if (typeof value === 'number' && Number.isFinite(value)) {
      points.push({ round: row.round, value });
    }
  }
  const first = points[0];
  const last = points[points.length - 1];
  let lo = Math.min(...points.map(p => p.value));
  let hi = Math.max(...points.map(p => p.value));
  const labelLo = lo;
  const labelHi = hi;
  if (hi - lo < 1e-9) {
    // A flat line (or a single point) sits in the middle.
    lo -= 0.5;
    hi += 0.5;
  }
  const span = Math.max(last.round - first.round, 1);
  const x = (round: number): number => PAD + ((round - first.round) / span) * (W - 2 * PAD);
  const y = (value: number): number => H - PAD - ((value - lo) / (hi - lo)) * (H - 2 * PAD);
  const coords = points.map(p => `${x(p.round).toFixed(1)},${y(p.value).toFixed(1)}`);
  const line = `M${coords.join(' L')}`;
  const area = `${line} L${x(last.round).toFixed(1)},${H} L${x(first.round).toFixed(1)},${H} Z`;

  const title = metric === 'accuracy' ? 'Global accuracy' : 'Global loss (no accuracy reported)';
  const svg = s(
    'svg',
    {
      class: 'nbfl-fed-chart-plot',
      viewBox: `0 0 ${W} ${H}`,
      preserveAspectRatio: 'none',
      role: 'img',
      'aria-label': `${title}: ${fmt(first.value)} at round ${first.round} to ${fmt(last.value)} at round ${last.round}`
    },
    s('line', { class: 'nbfl-fed-chart-grid', x1: 0, x2: W, y1: PAD, y2: PAD }),
    s('line', { class: 'nbfl-fed-chart-grid', x1: 0, x2: W, y1: H - PAD, y2: H - PAD }),
    points.length > 1 ? s('path', { class: 'nbfl-fed-chart-area', d: area }) : null,
    s('path', { class: 'nbfl-fed-chart-line', d: line }),
    // A zero-length segment with a round cap: a dot that stays round when stretched.
    s('path', {
      class: 'nbfl-fed-chart-dot',
      d: `M${x(last.round).toFixed(1)},${y(last.value).toFixed(1)} l0,0`
    })
  );
  return h(
    'div',
    { class: 'nbfl-fed-chart', 'data-metric': metric },
    h(
      'div',
      { class: 'nbfl-fed-chart-head' },
      h('span', { class: 'nbfl-fed-chart-title' }, title),
      h('span', { class: 'nbfl-fed-chart-last' }, fmt(last.value), h('small', {}, ` round ${last.round}`))
    ),
    h(
      'div',
      { class: 'nbfl-fed-chart-body' },
      h(
        'div',
        { class: 'nbfl-fed-chart-yaxis' },
        h('span', {}, fmt(labelHi)),
        h('span', {}, fmt(labelLo))
      ),
      svg
    ),
    h(
      'div',
      { class: 'nbfl-fed-chart-xaxis' },
      h('span', {}, `round ${first.round}`),
      h('span', {}, `round ${last.round}`)
    )
  );
}
