/**
 * nbfl-federation: a left-sidebar panel showing the nbfl controllers and participants
 * that notebooks on this Jupyter server are running, with their runs, clients and
 * metrics, and buttons to stop a run, remove a workshop client or leave a federation.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';

import { FederationPanel } from './panel';

const COMMAND = 'nbfl:show-federation';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbfl-federation:plugin',
  description: 'Shows the nbfl federations running on this server in the left sidebar.',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ): void => {
    const panel = new FederationPanel();
    app.shell.add(panel, 'left', { rank: 1000 });
    // Reopens the panel after a reload if it was the open sidebar tab.
    restorer?.add(panel, panel.id);

    app.commands.addCommand(COMMAND, {
      label: 'Show Federation Panel',
      caption: 'Show the nbfl federations running on this server',
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: COMMAND, category: 'Federation' });
  }
};

export default plugin;
