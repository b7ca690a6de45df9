/**
 * A tiny element builder: the panel builds plain DOM (no React) so that it can keep
 * chosen nodes (the join-line input) alive across re-renders.
 */

export type Child = Node | string | number | null | undefined | false;

type Listener = (event: Event) => void;
export type Attrs = Record<string, string | number | boolean | null | undefined | Listener>;

/** Create an HTML element; `class` sets className, `onX` functions become listeners. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Create an SVG element (attributes only). */
export function s<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el: Element, attrs: Attrs): void {
  for (const [key, value] of Object.entries(attrs)) {
    if (typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else if (value !== false && value !== null && value !== undefined) {
      el.setAttribute(key, String(value));
    }
  }
}

function append(el: Element, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    el.append(typeof child === 'object' ? child : String(child));
  }
}

/** A metric value in few characters: 0.91234 -> "0.9123", 0.9 -> "0.9", 12 -> "12". */
export function fmt(value: number | null | undefined): string {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return '–';
  }
  return String(Number(value.toFixed(4)));
}

/** A state name reduced to what may appear in a class name. */
export function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9-]+/g, '-');
}

/** A table value with three decimals, so a column of them lines up. */
export function fixed(value: number | null | undefined): string {
  if (typeof value !== 'number' || !Number.isFinite(value) || Math.abs(value) >= 1000) {
    return fmt(value);
  }
  return value.toFixed(3);
}
