/**
 * Icons drawn for this extension. The `jp-icon3` class lets JupyterLab's theme recolor
 * them (light and dark); the fill/stroke values here are only the fallback.
 */
import { LabIcon } from '@jupyterlab/ui-components';

/** A hub with three linked nodes: the federation (sidebar tab, controller entries). */
const FEDERATION_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="none" stroke="#616161" stroke-width="1.6" stroke-linecap="round">
    <path d="M12 12 L5 5.5 M12 12 L19 5.5 M12 12 L12 20"/>
  </g>
  <g class="jp-icon3" fill="#616161">
    <circle cx="12" cy="12" r="3.2"/>
    <circle cx="5" cy="5.5" r="2.3"/>
    <circle cx="19" cy="5.5" r="2.3"/>
    <circle cx="12" cy="20" r="2.3"/>
  </g>
</svg>`;

/** One node with a link leaving it: a participant taking part from this notebook. */
const PARTICIPANT_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="none" stroke="#616161" stroke-width="1.6" stroke-linecap="round">
    <path d="M9.5 14.5 L18 6"/>
    <circle cx="18.5" cy="5.5" r="2.3"/>
  </g>
  <g class="jp-icon3" fill="#616161">
    <circle cx="8" cy="16" r="3.6"/>
  </g>
</svg>`;

export const federationIcon = new LabIcon({
  name: 'nbfl-federation:federation',
  svgstr: FEDERATION_SVG
});

export const participantIcon = new LabIcon({
  name: 'nbfl-federation:participant',
  svgstr: PARTICIPANT_SVG
});
