/**
 * The cluster page (`#/cluster/<name>`): the cluster's aggregate history from the server's
 * store (PROTOCOL.md "History"), with the range picker and zoom of the host page. It needs no
 * Socket.IO room: everything comes from REST.
 */
import { h } from "../dom";
import { HistoryView } from "../components/history";

export class ClusterPage {
  readonly el: HTMLElement;
  private readonly view: HistoryView;

  constructor(readonly name: string) {
    this.view = new HistoryView({ kind: "cluster", id: name });
    this.el = h(
      "div",
      { class: "page cluster-page", id: "cluster-page", "data-cluster": name },
      h("div", { class: "host-head" }, h("a", { href: "#/", class: "back" }, "← All hosts"), h("div", { class: "host-title" }, h("h1", { class: "host-name" }, `Cluster ${name}`))),
      this.view.el,
    );
  }

  destroy(): void {
    this.view.destroy();
  }
}
