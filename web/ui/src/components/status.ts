/** The status badge of a host: up / stale / down / pending, coloured, with `data-status`. */
import { h, setAttr, setText } from "../dom";
import type { HostStatus } from "../types";

/** Order used when sorting by status: problems first. */
export const STATUS_ORDER: Record<HostStatus, number> = { down: 0, stale: 1, pending: 2, up: 3 };

export function statusBadge(id?: string): HTMLElement {
  return h("span", { class: "badge", id: id ?? null, "data-status": "pending" }, "pending");
}

export function setStatus(el: HTMLElement, s: HostStatus): void {
  setAttr(el, "data-status", s);
  setText(el, s);
}
