/**
 * GPU pieces: the card of one GPU on the host page (`.gpu-card[data-gpu-index]`, with its process
 * list) and the compact per-GPU glyphs of a home-page row. Values a card does not report are
 * shown as "—", never as 0.
 */
import { h, setText, setTitle, setAttr } from "../dom";
import { DASH, bytes, bytesOf, celsius, num, pct, watts } from "../format";
import type { Gpu, GpuProcess, GpuSummary } from "../types";
import { Meter, setVBar } from "./meter";
import { DataTable } from "./table";

function memPercent(used: number | null, total: number | null): number | null {
  return used !== null && total !== null && total > 0 ? (100 * used) / total : null;
}

export class GpuCard {
  readonly el: HTMLElement;
  private readonly title: HTMLElement;
  private readonly pstate: HTMLElement;
  private readonly util = new Meter("meter meter-lg neutral");
  private readonly mem = new Meter("meter meter-lg");
  private readonly stats: Record<"temp" | "fan" | "power" | "membus", HTMLElement>;
  private readonly procs: DataTable<GpuProcess>;
  private readonly procCount: HTMLElement;

  constructor(index: number) {
    this.title = h("span", { class: "gpu-name" });
    this.pstate = h("span", { class: "chip", title: "Performance state (P0 is the fastest)" });
    const stat = (label: string) => {
      const v = h("dd");
      return { v, el: h("div", null, h("dt", null, label), v) };
    };
    const temp = stat("Temperature");
    const fan = stat("Fan");
    const power = stat("Power");
    const membus = stat("Mem. bus");
    this.stats = { temp: temp.v, fan: fan.v, power: power.v, membus: membus.v };
    this.procs = new DataTable<GpuProcess>(
      [
        { key: "pid", label: "PID", cls: "num", text: (p) => String(p.pid), sort: (p) => p.pid },
        { key: "name", label: "Process", cls: "ellipsis", text: (p) => p.name || DASH, title: (p) => p.kind, sort: (p) => p.name },
        { key: "user", label: "User", text: (p) => p.user || DASH, sort: (p) => p.user },
        { key: "mem", label: "GPU mem", cls: "num", text: (p) => bytes(p.memory_used_bytes), sort: (p) => p.memory_used_bytes ?? -1, desc: true },
      ],
      {
        cls: "compact gpu-procs",
        sortKey: "mem",
        sortDesc: true,
        empty: "No processes",
        rowAttrs: (tr, p) => setAttr(tr, "data-pid", String(p.pid)),
      },
    );
    this.procCount = h("span", { class: "muted" });
    this.el = h(
      "section",
      { class: "card gpu-card", "data-gpu-index": index },
      h("header", { class: "card-head" }, h("span", { class: "gpu-index" }, `GPU ${index}`), this.title, this.pstate),
      h("div", { class: "gpu-meters" }, h("div", null, h("span", { class: "label" }, "Utilisation"), this.util.el), h("div", null, h("span", { class: "label" }, "Memory"), this.mem.el)),
      h("dl", { class: "stats" }, temp.el, fan.el, power.el, membus.el),
      h("div", { class: "subhead" }, "Processes ", this.procCount),
      this.procs.el,
    );
  }

  update(g: Gpu, withProcesses: boolean): void {
    setText(this.title, g.name || DASH);
    setTitle(this.title, g.uuid);
    setText(this.pstate, g.performance_state === null ? "P—" : `P${g.performance_state}`);
    this.util.set(g.utilization_percent, "", "GPU utilisation", 0);
    const mp = memPercent(g.memory_used_bytes, g.memory_total_bytes);
    this.mem.set(mp, bytesOf(g.memory_used_bytes, g.memory_total_bytes), "GPU memory in use", 0);
    setText(this.stats.temp, celsius(g.temperature_celsius));
    setText(this.stats.fan, pct(g.fan_percent, 0));
    setText(this.stats.power, g.power_limit_mw === null || g.power_mw === null ? watts(g.power_mw) : `${Math.round(g.power_mw / 1000)} / ${watts(g.power_limit_mw)}`);
    setTitle(this.stats.power, g.power_limit_mw === null ? "Power draw" : `Power draw / limit (${watts(g.power_limit_mw)})`);
    setText(this.stats.membus, pct(g.memory_utilization_percent, 0));
    const procs = g.processes ?? [];
    setText(this.procCount, withProcesses ? `(${procs.length})` : "(not collected)");
    this.procs.setData(procs);
  }
}

/** Compact per-GPU glyphs for a host row: two thin vertical bars per GPU (use, memory). */
export class GpuGlyphs {
  readonly el: HTMLElement;
  private readonly box: HTMLElement;
  private readonly label: HTMLElement;
  private glyphs: { el: HTMLElement; u: HTMLElement; m: HTMLElement }[] = [];

  constructor() {
    this.box = h("span", { class: "gpu-glyphs" });
    this.label = h("span", { class: "gpu-label" });
    this.el = h("span", { class: "gpu-cell" }, this.box, this.label);
  }

  set(gpus: GpuSummary[] | null): void {
    const list = gpus ?? [];
    while (this.glyphs.length < list.length) {
      const u = h("i", { class: "u" });
      const m = h("i", { class: "m" });
      const el = h("span", { class: "gpu-glyph" }, h("span", { class: "vbar" }, u), h("span", { class: "vbar" }, m));
      this.glyphs.push({ el, u, m });
      this.box.append(el);
    }
    while (this.glyphs.length > list.length) this.glyphs.pop()?.el.remove();
    let sum = 0;
    let n = 0;
    const tips: string[] = [];
    list.forEach((g, i) => {
      const gl = this.glyphs[i];
      if (!gl) return;
      const mp = memPercent(g.mem_used_bytes, g.mem_total_bytes);
      setVBar(gl.u, g.util_percent);
      setVBar(gl.m, mp);
      if (g.util_percent !== null) {
        sum += g.util_percent;
        n++;
      }
      tips.push(`GPU ${g.index} ${g.name}: ${pct(g.util_percent, 0)} use, ${bytesOf(g.mem_used_bytes, g.mem_total_bytes)}`);
    });
    const avg = n > 0 ? `${num(sum / n)}%` : DASH;
    setText(this.label, list.length === 0 ? DASH : avg);
    setTitle(this.el, tips.join("\n"));
  }
}
