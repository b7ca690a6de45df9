/** The list of federation processes on this server (controllers and participants). */
import { Entry } from './api';
import { h } from './dom';
import { federationIcon, participantIcon } from './icon';

/** What the entry is called: its notebook's file name, or its pid when it has none. */
export function entryName(entry: Entry): string {
  if (entry.notebook) {
    const parts = entry.notebook.split('/');
    return parts[parts.length - 1] || entry.notebook;
  }
  return `pid ${entry.pid}`;
}

/** The one-line state shown under the name. */
export function entryState(entry: Entry): string {
  if (entry.error || !entry.status) {
    return entry.error ?? 'no status';
  }
  if (entry.kind === 'controller') {
    const status = entry.status;
    if (status.run?.summary) {
      return status.run.summary;
    }
    const n = status.clients?.length ?? 0;
    return `no run yet; ${n} ${n === 1 ? 'client' : 'clients'}`;
  }
  const status = entry.status;
  const lost =
    typeof status.controller_lost === 'number'
      ? `, controller not answering for ${Math.round(status.controller_lost)} s`
      : '';
  return `${status.name}: ${status.state}${lost}`;
}

export function renderEntries(
  entries: Entry[],
  selectedId: string | null,
  onSelect: (id: string) => void
): HTMLElement {
  const list = h('ul', { class: 'nbfl-fed-list', role: 'listbox', 'aria-label': 'Federation processes' });
  for (const entry of entries) {
    const selected = entry.id === selectedId;
    const item = h(
      'li',
      {
        class: 'nbfl-fed-entry' + (selected ? ' jp-mod-selected' : '') + (entry.error ? ' nbfl-fed-entry-error' : ''),
        'data-id': entry.id,
        'data-kind': entry.kind,
        'data-nbfl-focus': `entry:${entry.id}`,
        role: 'option',
        'aria-selected': selected ? 'true' : 'false',
        tabindex: selected ? 0 : -1,
        title: entry.notebook ?? `process ${entry.pid}, started outside JupyterLab`,
        onclick: () => onSelect(entry.id)
      },
      // The icon tells the kind; the detail line below the list names it in words.
      (entry.kind === 'controller' ? federationIcon : participantIcon).element({
        tag: 'span',
        className: 'nbfl-fed-entry-icon',
        title: entry.kind
      }),
      h(
        'div',
        { class: 'nbfl-fed-entry-text' },
        h(
          'div',
          { class: 'nbfl-fed-entry-title' },
          h('span', { class: 'nbfl-fed-entry-name' }, entryName(entry)),
          h('span', { class: 'nbfl-fed-entry-kind nbfl-fed-sr-only' }, ` (${entry.kind})`)
        ),
        h('div', { class: 'nbfl-fed-entry-state' }, entryState(entry))
      )
    );
    list.append(item);
  }
  // Arrow keys move the selection, as in JupyterLab's other sidebar lists.
  list.addEventListener('keydown', (event: KeyboardEvent) => {
    const index = entries.findIndex(e => e.id === selectedId);
    let next = -1;
    if (event.key === 'ArrowDown') {
      next = Math.min(index + 1, entries.length - 1);
    } else if (event.key === 'ArrowUp') {
      next = Math.max(index - 1, 0);
    }
    if (next >= 0 && next !== index) {
      event.preventDefault();
      onSelect(entries[next].id);
    }
  });
  return list;
}
