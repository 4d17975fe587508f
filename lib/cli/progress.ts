// A small progress bar on stderr: redrawn in place on a terminal, a line per 25% otherwise.
import { formatBytes } from '../model/inspect';

export class ProgressBar {
  private t0 = performance.now();
  private lastDraw = 0;
  private lastQuarter = -1;
  private readonly tty: boolean;

  constructor(private readonly label: string, private readonly out: NodeJS.WriteStream = process.stderr) {
    this.tty = !!out.isTTY;
  }

  /** Shows `done` of `total` bytes. */
  update(done: number, total: number, detail = ''): void {
    const now = performance.now();
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    if (this.tty) {
      if (now - this.lastDraw < 80 && frac < 1) return;
      this.lastDraw = now;
      const width = 30;
      const fill = Math.round(frac * width);
      const rate = done / Math.max((now - this.t0) / 1000, 1e-3);
      const cols = this.out.columns || 100;
      let line = `${this.label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}% ${formatBytes(done)} / ${formatBytes(total)} ${formatBytes(rate)}/s ${detail}`;
      if (line.length > cols - 1) line = line.slice(0, cols - 1);
      this.out.write(`\r${line}\x1b[K`);
    } else {
      const q = Math.floor(frac * 4);
      if (q > this.lastQuarter && q > 0 && q < 4) {
        this.lastQuarter = q;
        this.out.write(`${this.label}: ${q * 25}% (${formatBytes(done)} of ${formatBytes(total)})\n`);
      }
    }
  }

  /** Ends the bar with a summary line. */
  done(msg: string): void {
    const s = ((performance.now() - this.t0) / 1000).toFixed(1);
    this.out.write(`${this.tty ? '\r\x1b[K' : ''}${this.label}: ${msg} in ${s} s\n`);
  }
}
