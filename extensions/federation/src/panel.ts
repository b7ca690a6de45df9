/**
 * The "Federation" sidebar panel.
 *
 * It polls the server with @lumino/polling, as JupyterLab's own panels do: every second
 * while the panel is visible, not at all while it or the browser tab is hidden (showing
 * it fetches at once), and backing off (2 s, 4 s, ... up to 30 s) while the server does
 * not answer. It rebuilds the list and the selected entry's details only when the JSON
 * text changes. The action
 * buttons and the join-line box are built once and only updated, so a re-render never
 * takes focus or the text selection away from them; UI state (the selected entry, the
 * entries whose join line is shown) lives here, keyed by entry id.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import {
  Action,
  Entry,
  FederationApi,
  IFederation,
  errorText,
  parseFederation
} from './api';
import { renderControllerBody, renderControllerHead } from './controller';
import { h } from './dom';
import { entryName, renderEntries } from './entries';
import { federationIcon } from './icon';
import { renderParticipant } from './participant';

const POLL_MS = 1000;
const MAX_BACKOFF_MS = 30000;
const MESSAGE_MS = 10000; // an action's message goes once its effect shows in the panel

/** Built afresh each time: a DOM node can only sit in one place. */
const emptyText = (): Array<string | Node> => [
  'No federation on this server yet. In a notebook: ',
  h('code', {}, '%load_ext nbfl'),
  ', then ',
  h('code', {}, '%fl_controller start'),
  ' (or ',
  h('code', {}, '%fl_join LINE'),
  ' to take part).'
];

function button(label: string, mods: string, onclick: () => void): HTMLButtonElement {
  return h('button', { class: `jp-Button jp-mod-styled ${mods}`, type: 'button', onclick }, label);
}

export class FederationPanel extends Widget {
  constructor(api: FederationApi = new FederationApi()) {
    super();
    this.api = api;
    this.id = 'nbfl-federation';
    this.title.icon = federationIcon;
    this.title.caption = 'Federation';
    this.addClass('nbfl-fed-panel');

    this.stopButton = button('Stop run', 'jp-mod-warn nbfl-fed-stop', () => void this.stop());
    // after a page reload a blocking %fl_round holds the kernel: this lets its cell end
    this.detachButton = button('Detach', 'jp-mod-accept nbfl-fed-detach', () => void this.detach());
    this.detachButton.title = "end the cell that waits on the run (the run goes on), so the notebook runs cells again";
    this.joinButton = button('Show join line', 'jp-mod-accept nbfl-fed-show-join', () =>
      this.toggleJoin()
    );
    this.leaveButton = button('Leave', 'jp-mod-warn nbfl-fed-leave', () => void this.leave());
    this.joinInput = h('input', {
      class: 'nbfl-fed-joinline jp-mod-styled',
      type: 'text',
      readonly: true,
      spellcheck: 'false',
      'aria-label': 'join line for participants'
    });
    this.copyButton = button('Copy', 'jp-mod-accept nbfl-fed-copy', () => void this.copyJoinLine());
    this.joinBox = h('div', { class: 'nbfl-fed-join', hidden: true }, this.joinInput, this.copyButton);
    this.actions = h(
      'div',
      { class: 'nbfl-fed-actions', hidden: true },
      this.stopButton,
      this.detachButton,
      this.joinButton,
      this.leaveButton
    );
    this.node.append(
      h('h2', { class: 'nbfl-fed-title' }, 'Federation'),
      this.errorLine,
      this.messageLine,
      this.listHost,
      h('div', { class: 'nbfl-fed-detail' }, this.detailHead, this.actions, this.joinBox, this.detailBody)
    );
    this.poller = new Poll({
      factory: () => this.fetch(),
      frequency: { interval: POLL_MS, backoff: true, max: MAX_BACKOFF_MS },
      standby: () => !this.isVisible || 'when-hidden',
      name: 'nbfl:federation'
    });
  }

  dispose(): void {
    this.poller.dispose();
    super.dispose();
  }

  /** Becoming visible: fetch at once instead of waiting out the standby. */
  protected onAfterShow(): void {
    this.refresh();
  }

  // ---- polling -------------------------------------------------------------------

  /** Fetch now (after an action, or on showing), then go on at the usual pace. */
  private refresh(): void {
    if (!this.isDisposed) {
      void this.poller.refresh();
    }
  }

  /** One tick of the poll: a rejection makes the poll back off until the server answers. */
  private async fetch(): Promise<void> {
    if (this.inFlight) {
      // One request at a time; ask for another as soon as this one ends.
      this.pollAgain = true;
      return;
    }
    this.inFlight = true;
    try {
      const text = await this.api.fetchText();
      if (text !== this.lastText) {
        this.data = parseFederation(text);
        this.lastText = text;
        this.render();
      }
      this.setError(null);
    } catch (err) {
      // Keep the last data on screen; the poll tries again, less often each time.
      this.setError(`Cannot read the federation: ${errorText(err)}`);
      if (this.data === null) {
        this.listHost.replaceChildren();
      }
      throw err;
    } finally {
      this.inFlight = false;
      if (this.pollAgain) {
        this.pollAgain = false;
        this.refresh();
      }
    }
  }

  // ---- rendering -----------------------------------------------------------------

  private selected(): Entry | null {
    return this.data?.entries.find(e => e.id === this.selectedId) ?? null;
  }

  private select(id: string): void {
    if (id !== this.selectedId) {
      this.selectedId = id;
      this.render();
    }
    this.node.querySelector<HTMLElement>(`.nbfl-fed-entry[data-id="${CSS.escape(id)}"]`)?.focus();
  }

  private render(): void {
    const entries = this.data?.entries ?? [];
    // A federation started since the last look is what the user just made: show it.
    const fresh = entries.filter(e => !this.seen.has(e.id));
    entries.forEach(e => this.seen.add(e.id));
    if (fresh.length > 0 && this.seen.size > fresh.length) {
      this.selectedId = fresh[fresh.length - 1].id;
    } else if (!entries.some(e => e.id === this.selectedId)) {
      this.selectedId = entries.length > 0 ? entries[0].id : null;
    }
    // A rebuilt node replaces the focused one: remember which it was, and the
    // clients table's scroll position, to restore them afterwards.
    const active = document.activeElement;
    const focusKey =
      active instanceof HTMLElement && this.node.contains(active) ? active.dataset.nbflFocus : undefined;
    const tableScroll = this.node.querySelector('.nbfl-fed-table-wrap')?.scrollTop ?? 0;

    this.listHost.replaceChildren(
      entries.length > 0
        ? renderEntries(entries, this.selectedId, id => this.select(id))
        : h('div', { class: 'nbfl-fed-empty' }, ...emptyText())
    );
    this.renderDetail(this.selected());

    const table = this.node.querySelector('.nbfl-fed-table-wrap');
    if (table) {
      table.scrollTop = tableScroll;
    }
    if (focusKey && !this.node.contains(document.activeElement)) {
      this.node.querySelector<HTMLElement>(`[data-nbfl-focus="${CSS.escape(focusKey)}"]`)?.focus();
    }
  }

  private renderDetail(entry: Entry | null): void {
    const controller = entry?.kind === 'controller' ? entry.status : null;
    const participant = entry?.kind === 'participant' ? entry.status : null;
    const head: Node[] = [];
    let body: Node | null = null;
    if (entry) {
      const started = new Date(entry.started * 1000);
      head.push(
        h(
          'div',
          { class: 'nbfl-fed-detail-meta' },
          `${entry.kind} · ${entryName(entry)}${entry.notebook ? ` · pid ${entry.pid}` : ''} · started ${started.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}`
        )
      );
      if (entry.error) {
        head.push(h('div', { class: 'nbfl-fed-entry-error-text' }, `Not answering: ${entry.error}`));
      } else if (controller) {
        head.push(renderControllerHead(controller));
        body = renderControllerBody(controller, name => void this.remove(name));
      } else if (participant) {
        head.push(renderParticipant(participant));
      }
    }
    this.detailHead.replaceChildren(...head);
    this.detailBody.replaceChildren(...(body ? [body] : []));

    // The persistent controls: only shown, hidden, enabled and relabelled.
    this.actions.hidden = !controller && !participant;
    this.stopButton.hidden = !controller;
    this.stopButton.disabled = this.busy || controller?.run?.state !== 'running';
    this.detachButton.hidden = !(controller?.run?.state === 'running' && controller.run.held);
    this.detachButton.disabled = this.busy;
    const joinLine = controller?.workshop ? controller.join_line : null;
    this.joinButton.hidden = !joinLine;
    const joinShown = !!joinLine && !!entry && this.joinShown.has(entry.id);
    this.joinButton.textContent = joinShown ? 'Hide join line' : 'Show join line';
    this.joinButton.setAttribute('aria-expanded', String(joinShown));
    this.joinBox.hidden = !joinShown;
    if (joinLine && this.joinInput.value !== joinLine) {
      // Only a new line (after a removal) replaces the text and its selection.
      this.joinInput.value = joinLine;
      this.joinInput.title = joinLine;
    }
    this.leaveButton.hidden = !participant;
    this.leaveButton.disabled = this.busy || participant?.state === 'stopped';
  }

  private setError(text: string | null): void {
    this.errorLine.textContent = text ?? '';
    this.errorLine.hidden = text === null;
  }

  private setMessage(text: string, ok: boolean): void {
    this.messageLine.textContent = text;
    this.messageLine.hidden = false;
    this.messageLine.classList.toggle('nbfl-fed-message-ok', ok);
    this.messageLine.classList.toggle('nbfl-fed-message-error', !ok);
    window.clearTimeout(this.messageTimer);
    this.messageTimer = window.setTimeout(() => {
      this.messageLine.hidden = true;
    }, MESSAGE_MS);
  }

  // ---- actions -------------------------------------------------------------------

  private toggleJoin(): void {
    const id = this.selectedId;
    if (id === null) {
      return;
    }
    if (!this.joinShown.delete(id)) {
      this.joinShown.add(id);
    }
    this.renderDetail(this.selected());
  }

  private async copyJoinLine(): Promise<void> {
    const text = this.joinInput.value;
    try {
      // Absent outside secure contexts (plain http to a remote host).
      if (!navigator.clipboard) {
        throw new Error('no clipboard');
      }
      await navigator.clipboard.writeText(text);
      this.setMessage('Join line copied to the clipboard.', true);
    } catch {
      this.joinInput.focus();
      this.joinInput.select();
      this.setMessage('The clipboard is not available here: the line is selected, copy it with Ctrl+C.', false);
    }
  }

  private async stop(): Promise<void> {
    const entry = this.selected();
    if (entry) {
      await this.act(entry.id, 'stop');
    }
  }

  private async detach(): Promise<void> {
    const entry = this.selected();
    if (entry) {
      await this.act(entry.id, 'detach');
    }
  }

  private async remove(name: string): Promise<void> {
    const entry = this.selected();
    if (!entry) {
      return;
    }
    const result = await showDialog({
      title: 'Remove client',
      body: `Remove ${name}? They are disconnected and cannot rejoin with this line; a new join line is made.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Remove' })]
    });
    if (result.button.accept) {
      await this.act(entry.id, 'remove', { name });
    }
  }

  private async leave(): Promise<void> {
    const entry = this.selected();
    if (entry?.kind !== 'participant' || !entry.status) {
      return;
    }
    const result = await showDialog({
      title: 'Leave federation',
      body: `Leave the federation at ${entry.status.controller} as ${entry.status.name}? This notebook stops taking part.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Leave' })]
    });
    if (result.button.accept) {
      await this.act(entry.id, 'leave');
    }
  }

  /** POST one action, show its message, and poll at once to show its effect. */
  private async act(id: string, action: Action, body?: object): Promise<void> {
    this.busy = true;
    this.renderDetail(this.selected());
    try {
      this.setMessage(await this.api.post(id, action, body), true);
    } catch (err) {
      this.setMessage(errorText(err), false);
    } finally {
      this.busy = false;
      this.renderDetail(this.selected());
      this.refresh();
    }
  }

  private readonly api: FederationApi;
  private readonly poller: Poll;
  private inFlight = false;
  private pollAgain = false;
  private busy = false;
  private lastText: string | null = null;
  private data: IFederation | null = null;
  private selectedId: string | null = null;
  private readonly seen = new Set<string>(); // entry ids shown before: a new one is selected once
  private messageTimer: number | undefined = undefined;
  private readonly joinShown = new Set<string>();

  private readonly errorLine = h('div', { class: 'nbfl-fed-error', role: 'alert', hidden: true });
  private readonly messageLine = h('div', { class: 'nbfl-fed-message', role: 'status', hidden: true });
  private readonly listHost = h(
    'div',
    { class: 'nbfl-fed-list-host' },
    h('div', { class: 'nbfl-fed-loading' }, 'Looking for federations…')
  );
  private readonly detailHead = h('div', { class: 'nbfl-fed-detail-head' });
  private readonly detailBody = h('div', { class: 'nbfl-fed-detail-body' });
  private readonly actions: HTMLElement;
  private readonly stopButton: HTMLButtonElement;
  private readonly detachButton: HTMLButtonElement;
  private readonly joinButton: HTMLButtonElement;
  private readonly leaveButton: HTMLButtonElement;
  private readonly joinBox: HTMLElement;
  private readonly joinInput: HTMLInputElement;
  private readonly copyButton: HTMLButtonElement;
}
