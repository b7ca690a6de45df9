"use strict";(self.rspackChunknbfl_federation=self.rspackChunknbfl_federation||[]).push([[232],{475(e,o,r){var t=r(601),n=r.n(t),l=r(314),a=(r.n(l))()(n());a.push([e.id,`/*
 * nbfl-federation panel. Every color, font and border comes from JupyterLab's --jp-*
 * variables so the panel follows the light and dark themes.
 */

.nbfl-fed-panel {
  display: flex;
  flex-direction: column;
  gap: 8px;
  min-width: 220px;
  padding: 8px 10px 12px;
  overflow-y: auto;
  box-sizing: border-box;
  background: var(--jp-layout-color1);
  color: var(--jp-ui-font-color1);
  font-family: var(--jp-ui-font-family);
  font-size: var(--jp-ui-font-size1);
}

/* jp-Button sets display itself; the hidden attribute must still win. */
.nbfl-fed-panel [hidden] {
  display: none !important;
}

.nbfl-fed-title {
  margin: 0;
  font-size: var(--jp-ui-font-size2);
  font-weight: 600;
  text-transform: uppercase;
  letter-spacing: 0.04em;
  color: var(--jp-ui-font-color1);
}

.nbfl-fed-error,
.nbfl-fed-message {
  padding: 4px 8px;
  border-left: 3px solid var(--jp-border-color1);
  background: var(--jp-layout-color2);
  overflow-wrap: anywhere;
}

.nbfl-fed-error,
.nbfl-fed-message.nbfl-fed-message-error {
  border-left-color: var(--jp-error-color1);
  color: var(--jp-error-color1);
}

.nbfl-fed-message.nbfl-fed-message-ok {
  border-left-color: var(--jp-success-color1);
}

.nbfl-fed-loading,
.nbfl-fed-empty {
  color: var(--jp-ui-font-color2);
  line-height: 1.5;
}

.nbfl-fed-panel code {
  font-family: var(--jp-code-font-family);
  font-size: var(--jp-code-font-size);
  color: var(--jp-ui-font-color1);
  background: var(--jp-layout-color2);
  padding: 0 3px;
  border-radius: 2px;
}

/* ---- entries ---------------------------------------------------------------- */

.nbfl-fed-list {
  list-style: none;
  margin: 0;
  padding: 0;
  border: var(--jp-border-width) solid var(--jp-border-color2);
  border-radius: 2px;
}

.nbfl-fed-entry {
  display: flex;
  align-items: flex-start;
  gap: 6px;
  padding: 5px 8px;
  cursor: pointer;
  border-bottom: var(--jp-border-width) solid var(--jp-border-color2);
}

.nbfl-fed-entry:last-child {
  border-bottom: none;
}

.nbfl-fed-entry:hover {
  background: var(--jp-layout-color2);
}

.nbfl-fed-entry.jp-mod-selected {
  background: var(--jp-layout-color2);
  box-shadow: inset 3px 0 0 var(--jp-brand-color1);
}

.nbfl-fed-entry:focus-visible {
  outline: 1px solid var(--jp-brand-color1);
  outline-offset: -1px;
}

.nbfl-fed-entry-icon {
  display: flex;
  flex: 0 0 auto;
  padding-top: 1px;
}

.nbfl-fed-entry-icon svg {
  width: 16px;
  height: 16px;
}

.nbfl-fed-entry-text {
  min-width: 0;
  flex: 1 1 auto;
}

.nbfl-fed-entry-title {
  display: flex;
  align-items: baseline;
  gap: 6px;
}

.nbfl-fed-entry-name {
  font-weight: 600;
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
}

/* Read out by screen readers; sighted users have the icon and the detail line. */
.nbfl-fed-sr-only {
  position: absolute;
  width: 1px;
  height: 1px;
  overflow: hidden;
  clip: rect(0 0 0 0);
  white-space: nowrap;
}

.nbfl-fed-entry-state {
  color: var(--jp-ui-font-color2);
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
}

.nbfl-fed-entry.nbfl-fed-entry-error {
  opacity: 0.6;
}

.nbfl-fed-entry.nbfl-fed-entry-error .nbfl-fed-entry-state,
.nbfl-fed-entry-error-text {
  color: var(--jp-ui-font-color2);
  font-style: italic;
}

/* ---- details --------------------------------------------------------------- */

.nbfl-fed-detail,
.nbfl-fed-detail-head,
.nbfl-fed-controller {
  display: flex;
  flex-direction: column;
  gap: 8px;
}

.nbfl-fed-detail-head:empty,
.nbfl-fed-detail-body:empty {
  display: none;
}

.nbfl-fed-detail-meta {
  color: var(--jp-ui-font-color2);
  font-size: var(--jp-ui-font-size0);
  overflow-wrap: anywhere;
}

.nbfl-fed-endpoint,
.nbfl-fed-defense {
  color: var(--jp-warn-color0);
  font-size: var(--jp-ui-font-size0);
  overflow-wrap: anywhere;
}

.nbfl-fed-security {
  color: var(--jp-ui-font-color2);
  font-size: var(--jp-ui-font-size0);
  overflow-wrap: anywhere;
}

.nbfl-fed-endpoint {
  font-family: var(--jp-code-font-family);
}

div.nbfl-fed-facts {
  gap: 2px;
  display: flex;
  flex-direction: column;
}

dl.nbfl-fed-facts {
  display: grid;
  grid-template-columns: max-content 1fr;
  gap: 3px 10px;
  margin: 0;
}

dl.nbfl-fed-facts dt {
  color: var(--jp-ui-font-color2);
}

dl.nbfl-fed-facts dd {
  margin: 0;
  min-width: 0;
  overflow-wrap: anywhere;
}

.nbfl-fed-lost,
.nbfl-fed-last-error {
  color: var(--jp-error-color1);
}

/* ---- buttons and join line ------------------------------------------------- */

.nbfl-fed-actions {
  display: flex;
  flex-wrap: wrap;
  gap: 6px;
}

.nbfl-fed-panel .jp-Button.jp-mod-styled {
  margin: 0;
}

.nbfl-fed-actions .jp-Button:disabled {
  opacity: 0.5;
  cursor: default;
}

.nbfl-fed-join {
  display: flex;
  gap: 6px;
}

.nbfl-fed-joinline {
  flex: 1 1 auto;
  min-width: 0;
  font-family: var(--jp-code-font-family);
  font-size: var(--jp-code-font-size);
  color: var(--jp-ui-font-color0);
  background: var(--jp-layout-color0);
  border: var(--jp-border-width) solid var(--jp-border-color1);
}

/* ---- run block ------------------------------------------------------------- */

.nbfl-fed-run {
  display: flex;
  flex-direction: column;
  gap: 4px;
  padding: 6px 8px;
  border: var(--jp-border-width) solid var(--jp-border-color2);
  border-radius: 2px;
  background: var(--jp-layout-color0);
}

.nbfl-fed-norun {
  color: var(--jp-ui-font-color2);
}

.nbfl-fed-run-head {
  display: flex;
  align-items: center;
  gap: 8px;
  flex-wrap: wrap;
}

.nbfl-fed-round {
  font-size: var(--jp-ui-font-size2);
  font-weight: 600;
  color: var(--jp-ui-font-color0);
}

.nbfl-fed-runstate {
  padding: 0 6px;
  border: var(--jp-border-width) solid currentcolor;
  border-radius: 8px;
  font-size: var(--jp-ui-font-size0);
  line-height: 16px;
}

.nbfl-fed-runstate-running {
  color: var(--jp-brand-color1);
}

.nbfl-fed-runstate-finished {
  color: var(--jp-success-color1);
}

.nbfl-fed-runstate-stopped {
  color: var(--jp-warn-color1);
}

.nbfl-fed-runstate-failed {
  color: var(--jp-error-color1);
}

.nbfl-fed-workflow {
  margin-left: auto;
  color: var(--jp-ui-font-color2);
  font-size: var(--jp-ui-font-size0);
}

.nbfl-fed-overall {
  color: var(--jp-ui-font-color2);
  font-size: var(--jp-ui-font-size0);
}

.nbfl-fed-progress {
  height: 4px;
  background: var(--jp-layout-color3);
  border-radius: 2px;
  overflow: hidden;
}

.nbfl-fed-progress-bar {
  height: 100%;
  background: var(--jp-brand-color1);
  transition: width 0.3s ease;
}

.nbfl-fed-progress-label,
.nbfl-fed-summary {
  color: var(--jp-ui-font-color2);
  font-size: var(--jp-ui-font-size0);
  overflow-wrap: anywhere;
}

.nbfl-fed-summary {
  color: var(--jp-ui-font-color1);
  font-size: var(--jp-ui-font-size1);
}

/* ---- chart ----------------------------------------------------------------- */

.nbfl-fed-chart-head {
  display: flex;
  align-items: baseline;
  justify-content: space-between;
  gap: 8px;
}

.nbfl-fed-chart-title {
  color: var(--jp-ui-font-color2);
}

.nbfl-fed-chart-last {
  font-weight: 600;
  color: var(--jp-ui-font-color0);
}

.nbfl-fed-chart-last small {
  font-weight: normal;
  color: var(--jp-ui-font-color2);
}

.nbfl-fed-chart-body {
  display: flex;
  gap: 4px;
  height: 100px;
}

.nbfl-fed-chart-yaxis {
  display: flex;
  flex-direction: column;
  justify-content: space-between;
  color: var(--jp-ui-font-color2);
  font-size: var(--jp-ui-font-size0);
  text-align: right;
}

.nbfl-fed-chart-plot {
  flex: 1 1 auto;
  min-width: 0;
  height: 100%;
  background: var(--jp-layout-color0);
  border-left: var(--jp-border-width) solid var(--jp-border-color1);
  border-bottom: var(--jp-border-width) solid var(--jp-border-color1);
}

.nbfl-fed-chart-xaxis {
  display: flex;
  justify-content: space-between;
  color: var(--jp-ui-font-color2);
  font-size: var(--jp-ui-font-size0);
}

.nbfl-fed-chart-grid {
  stroke: var(--jp-border-color2);
  stroke-dasharray: 4 4;
  vector-effect: non-scaling-stroke;
}

.nbfl-fed-chart-area {
  fill: var(--jp-brand-color1);
  opacity: 0.12;
}

/* the dot at the last value is a zero-length line with a round cap */
.nbfl-fed-chart-line,
.nbfl-fed-chart-dot {
  fill: none;
  stroke: var(--jp-brand-color1);
  vector-effect: non-scaling-stroke;
}

.nbfl-fed-chart-line {
  stroke-width: 1.5;
  stroke-linejoin: round;
}

.nbfl-fed-chart-dot {
  stroke-width: 6;
  stroke-linecap: round;
}

.nbfl-fed-chart-empty {
  color: var(--jp-ui-font-color2);
  font-size: var(--jp-ui-font-size0);
  font-style: italic;
}

/* ---- clients table --------------------------------------------------------- */

.nbfl-fed-clients-summary {
  color: var(--jp-ui-font-color1);
  font-weight: 600;
  margin-bottom: 4px;
}

.nbfl-fed-clients-section {
  container-type: inline-size;
}

/* At the sidebar's default width the round column gives way (it is in the tooltip). */
@container (max-width: 299px) {
  .nbfl-fed-clients .nbfl-fed-col-round {
    display: none;
  }
}

.nbfl-fed-table-wrap {
  max-height: 280px;
  overflow: auto;
  border: var(--jp-border-width) solid var(--jp-border-color2);
  border-radius: 2px;
}

.nbfl-fed-clients {
  width: 100%;
  border-collapse: collapse;
}

.nbfl-fed-clients th {
  position: sticky;
  top: 0;
  z-index: 1;
  background: var(--jp-layout-color2);
  color: var(--jp-ui-font-color2);
  font-weight: 600;
  font-size: var(--jp-ui-font-size0);
  text-align: left;
  white-space: nowrap;
  border-bottom: var(--jp-border-width) solid var(--jp-border-color1);
}

.nbfl-fed-clients td {
  border-bottom: var(--jp-border-width) solid var(--jp-border-color2);
  white-space: nowrap;
}

.nbfl-fed-clients tbody tr:last-child td {
  border-bottom: none;
}

.nbfl-fed-clients .nbfl-fed-num {
  text-align: right;
  font-variant-numeric: tabular-nums;
}

.nbfl-fed-clients th,
.nbfl-fed-clients td {
  padding: 3px;
}

.nbfl-fed-clients th:first-child,
.nbfl-fed-clients td:first-child {
  padding-left: 6px;
}

/* The name column takes what the others leave, and ellipsizes long names. */
.nbfl-fed-clients td.nbfl-fed-name {
  width: 100%;
  max-width: 0;
}

.nbfl-fed-client-name,
.nbfl-fed-device {
  overflow: hidden;
  text-overflow: ellipsis;
}

.nbfl-fed-device {
  color: var(--jp-ui-font-color2);
  font-size: var(--jp-ui-font-size0);
}

.nbfl-fed-clients td .nbfl-fed-state {
  font-size: var(--jp-ui-font-size0);
}

.nbfl-fed-panel .jp-Button.nbfl-fed-remove {
  height: auto;
  min-height: 0;
  min-width: 0;
  padding: 0 4px;
  line-height: 16px;
  letter-spacing: 0;
  font-size: var(--jp-ui-font-size0);
  color: var(--jp-error-color1);
  background: transparent;
  border: var(--jp-border-width) solid var(--jp-error-color1);
}

.nbfl-fed-panel .jp-Button.nbfl-fed-remove:hover,
.nbfl-fed-panel .jp-Button.nbfl-fed-remove:focus-visible {
  color: var(--jp-ui-inverse-font-color0);
  background: var(--jp-error-color1);
}

/* ---- states ---------------------------------------------------------------- */

.nbfl-fed-state {
  font-weight: 600;
}

.nbfl-fed-state-training {
  color: var(--jp-brand-color1);
}

.nbfl-fed-state-idle {
  color: var(--jp-success-color1);
}

.nbfl-fed-state-joining,
.nbfl-fed-state-connecting {
  color: var(--jp-warn-color1);
}

.nbfl-fed-state-lost {
  color: var(--jp-error-color1);
}

.nbfl-fed-state-left,
.nbfl-fed-state-removed,
.nbfl-fed-state-stopped {
  color: var(--jp-ui-font-color2);
  font-weight: normal;
}

/* how to get a run's dashboard back after a page reload */
.nbfl-fed-view {
  margin-top: 4px;
  color: var(--jp-ui-font-color2);
  font-size: var(--jp-ui-font-size0);
}
`,""]),r.d(o,{},{A:a})},314(e){e.exports=function(e){var o=[];return o.toString=function(){return this.map(function(o){var r="",t=void 0!==o[5];return o[4]&&(r+="@supports (".concat(o[4],") {")),o[2]&&(r+="@media ".concat(o[2]," {")),t&&(r+="@layer".concat(o[5].length>0?" ".concat(o[5]):""," {")),r+=e(o),t&&(r+="}"),o[2]&&(r+="}"),o[4]&&(r+="}"),r}).join("")},o.i=function(e,r,t,n,l){"string"==typeof e&&(e=[[null,e,void 0]]);var a={};if(t)for(var i=0;i<this.length;i++){var f=this[i][0];null!=f&&(a[f]=!0)}for(var d=0;d<e.length;d++){var s=[].concat(e[d]);t&&a[s[0]]||(void 0!==l&&(void 0===s[5]||(s[1]="@layer".concat(s[5].length>0?" ".concat(s[5]):""," {").concat(s[1],"}")),s[5]=l),r&&(s[2]&&(s[1]="@media ".concat(s[2]," {").concat(s[1],"}")),s[2]=r),n&&(s[4]?(s[1]="@supports (".concat(s[4],") {").concat(s[1],"}"),s[4]=n):s[4]="".concat(n)),o.push(s))}},o}},601(e){e.exports=function(e){return e[1]}},72(e){var o=[];function r(e){for(var r=-1,t=0;t<o.length;t++)if(o[t].identifier===e){r=t;break}return r}function t(e,t){for(var n={},l=[],a=0;a<e.length;a++){var i=e[a],f=t.base?i[0]+t.base:i[0],d=n[f]||0,s="".concat(f," ").concat(d);n[f]=d+1;var c=r(s),p={css:i[1],media:i[2],sourceMap:i[3],supports:i[4],layer:i[5]};if(-1!==c)o[c].references++,o[c].updater(p);else{var b=function(e,o){var r=o.domAPI(o);return r.update(e),function(o){o?(o.css!==e.css||o.media!==e.media||o.sourceMap!==e.sourceMap||o.supports!==e.supports||o.layer!==e.layer)&&r.update(e=o):r.remove()}}(p,t);t.byIndex=a,o.splice(a,0,{identifier:s,updater:b,references:1})}l.push(s)}return l}e.exports=function(e,n){var l=t(e=e||[],n=n||{});return function(e){e=e||[];for(var a=0;a<l.length;a++){var i=r(l[a]);o[i].references--}for(var f=t(e,n),d=0;d<l.length;d++){var s=r(l[d]);0===o[s].references&&(o[s].updater(),o.splice(s,1))}l=f}}},659(e){var o={};e.exports=function(e,r){var t=function(e){if(void 0===o[e]){var r=document.querySelector(e);if(window.HTMLIFrameElement&&r instanceof window.HTMLIFrameElement)try{r=r.contentDocument.head}catch(e){r=null}o[e]=r}return o[e]}(e);if(!t)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");t.appendChild(r)}},540(e){e.exports=function(e){var o=document.createElement("style");return e.setAttributes(o,e.attributes),e.insert(o,e.options),o}},56(e,o,r){e.exports=function(e){var o=r.nc;o&&e.setAttribute("nonce",o)}},825(e){e.exports=function(e){if("u"<typeof document)return{update:function(){},remove:function(){}};var o=e.insertStyleElement(e);return{update:function(r){var t,n,l;t="",r.supports&&(t+="@supports (".concat(r.supports,") {")),r.media&&(t+="@media ".concat(r.media," {")),(n=void 0!==r.layer)&&(t+="@layer".concat(r.layer.length>0?" ".concat(r.layer):""," {")),t+=r.css,n&&(t+="}"),r.media&&(t+="}"),r.supports&&(t+="}"),(l=r.sourceMap)&&"u">typeof btoa&&(t+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(l))))," */")),e.styleTagTransform(t,o,e.options)},remove:function(){var e;null===(e=o).parentNode||e.parentNode.removeChild(e)}}}},113(e){e.exports=function(e,o){if(o.styleSheet)o.styleSheet.cssText=e;else{for(;o.firstChild;)o.removeChild(o.firstChild);o.appendChild(document.createTextNode(e))}}},579(e,o,r){var t=r(72),n=r.n(t),l=r(825),a=r.n(l),i=r(659),f=r.n(i),d=r(56),s=r.n(d),c=r(540),p=r.n(c),b=r(113),u=r.n(b),v=r(475),h={};h.styleTagTransform=u(),h.setAttributes=s(),h.insert=f().bind(null,"head"),h.domAPI=a(),h.insertStyleElement=p(),n()(v.A,h),v.A&&v.A.locals&&v.A.locals}}]);