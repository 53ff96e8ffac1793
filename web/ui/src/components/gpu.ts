/**
 * GPU pieces: the card of one GPU on the host page (`.gpu-card[data-gpu-index]`, with its
 * error, health signals, MIG instances and process list) and the compact per-GPU glyphs of a
 * home-page row. Values a card does not report are shown as "—", never as 0; a GPU that could
 * not be read keeps its card with the reason.
 */
import { h, setText, setTitle, setAttr } from "../dom";
import { DASH, bytes, bytesOf, celsius, freq, num, pct, watts } from "../format";
import type { Gpu, GpuProcess, GpuSummary, MigInstance } from "../types";
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
  private readonly stats: Record<"temp" | "fan" | "power" | "membus" | "sm" | "memtemp" | "ecc" | "remap" | "throttle" | "xid", HTMLElement>;
  private readonly error = h("div", { class: "alert warn gpu-error", hidden: true, role: "status" });
  private readonly mode = h("span", { class: "chip gpu-mode" });
  private readonly mig = h("ul", { class: "gpu-mig", hidden: true });
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
    const sm = stat("SM clock");
    const memtemp = stat("Mem. temp.");
    const ecc = stat("ECC errors");
    const remap = stat("Remapped rows");
    const throttle = stat("Clocks held by");
    const xid = stat("Xid errors");
    this.stats = { temp: temp.v, fan: fan.v, power: power.v, membus: membus.v, sm: sm.v, memtemp: memtemp.v, ecc: ecc.v, remap: remap.v, throttle: throttle.v, xid: xid.v };
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
      h("header", { class: "card-head" }, h("span", { class: "gpu-index" }, `GPU ${index}`), this.title, this.mode, this.pstate),
      this.error,
      h("div", { class: "gpu-meters" }, h("div", null, h("span", { class: "label" }, "Utilisation"), this.util.el), h("div", null, h("span", { class: "label" }, "Memory"), this.mem.el)),
      h("dl", { class: "stats" }, temp.el, fan.el, power.el, membus.el, sm.el, memtemp.el, ecc.el, remap.el, throttle.el, xid.el),
      this.mig,
      h("div", { class: "subhead" }, "Processes ", this.procCount),
      this.procs.el,
    );
  }

  update(g: Gpu, withProcesses: boolean): void {
    setText(this.title, g.name || DASH);
    setTitle(this.title, [g.uuid, g.pci_bus_id && `PCI ${g.pci_bus_id}`].filter(Boolean).join(" · "));
    setText(this.error, g.error ? `Not read in full: ${g.error}` : "");
    this.error.hidden = !g.error;
    const modes = [g.mig_mode ? "MIG" : "", g.persistence_mode === false ? "persistence off" : ""].filter(Boolean);
    setText(this.mode, modes.join(" · "));
    this.mode.hidden = modes.length === 0;
    setTitle(this.mode, g.persistence_mode === false ? "Persistence mode is off: the driver tears the GPU down between clients, and every first call takes seconds" : "");
    setText(this.pstate, g.performance_state === null ? "P—" : `P${g.performance_state}`);
    this.util.set(g.utilization_percent, "", "GPU utilisation", 0);
    const mp = memPercent(g.memory_used_bytes, g.memory_total_bytes);
    this.mem.set(mp, bytesOf(g.memory_used_bytes, g.memory_total_bytes), "GPU memory in use", 0);
    setText(this.stats.temp, celsius(g.temperature_celsius));
    setText(this.stats.fan, pct(g.fan_percent, 0));
    setText(this.stats.power, g.power_limit_mw === null || g.power_mw === null ? watts(g.power_mw) : `${Math.round(g.power_mw / 1000)} / ${watts(g.power_limit_mw)}`);
    setTitle(this.stats.power, g.power_limit_mw === null ? "Power draw" : `Power draw / limit (${watts(g.power_limit_mw)})`);
    setText(this.stats.membus, pct(g.memory_utilization_percent, 0));
    setText(this.stats.sm, freq(g.sm_clock_mhz));
    setText(this.stats.memtemp, celsius(g.memory_temperature_celsius));
    setText(this.stats.ecc, g.ecc_corrected_errors == null && g.ecc_uncorrected_errors == null ? DASH : `${num(g.ecc_corrected_errors)} / ${num(g.ecc_uncorrected_errors)}`);
    setTitle(this.stats.ecc, "Corrected / uncorrected, since the driver loaded");
    const pending = g.remapping_failed ? " (remapping failed)" : g.remapping_pending ? " (reset pending)" : "";
    setText(this.stats.remap, g.remapped_rows_correctable == null && g.remapped_rows_uncorrectable == null ? DASH : `${num(g.remapped_rows_correctable)} / ${num(g.remapped_rows_uncorrectable)}${pending}`);
    setTitle(this.stats.remap, "After correctable / uncorrectable errors");
    const held = g.throttle_reasons ?? [];
    setText(this.stats.throttle, held.length ? held.join(", ").replace(/_/g, " ") : DASH);
    // Short enough for one line on a phone; the time of the last one is in the tooltip.
    setText(this.stats.xid, g.xid_errors == null ? DASH : `${num(g.xid_errors)}${g.last_xid == null ? "" : ` (last ${g.last_xid})`}`);
    const lastAt = g.last_xid_unix_ms == null ? "" : `; the last one at ${new Date(g.last_xid_unix_ms).toLocaleString()}`;
    setTitle(this.stats.xid, g.xid_errors == null ? "Xid events are not watched on this GPU" : `Critical Xid errors since the agent began watching (79: fallen off the bus, 48: double-bit ECC)${lastAt}`);
    this.setMig(g.mig_instances ?? []);
    const procs = g.processes ?? [];
    setText(this.procCount, g.processes_error ? `(left out: ${g.processes_error})` : withProcesses ? `(${procs.length})` : "(not collected)");
    this.procs.setData(procs);
  }

  private setMig(list: MigInstance[]): void {
    this.mig.hidden = list.length === 0;
    this.mig.replaceChildren(
      ...list.map((m) =>
        h(
          "li",
          { "data-mig-index": m.index, title: m.uuid },
          `MIG ${m.index} ${m.name.replace(/^.* MIG /, "")}: ${bytesOf(m.memory_used_bytes, m.memory_total_bytes)}, ${m.processes.length} process${m.processes.length === 1 ? "" : "es"}${m.error ? ` (${m.error})` : ""}`,
        ),
      ),
    );
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
      setAttr(gl.el, "data-error", g.error ? "1" : null);
      const use = g.util_percent === null && g.active_instances !== undefined ? `MIG, ${g.active_instances} instance(s) in use` : `${pct(g.util_percent, 0)} use`;
      tips.push(`GPU ${g.index} ${g.name}: ${use}, ${bytesOf(g.mem_used_bytes, g.mem_total_bytes)}${g.error ? ` (error: ${g.error})` : ""}`);
    });
    const avg = n > 0 ? `${num(sum / n)}%` : DASH;
    setText(this.label, list.length === 0 ? DASH : avg);
    setTitle(this.el, tips.join("\n"));
  }
}
