// Small SVG line charts (sparklines) for the live counters. sparkline_path() is pure (tested with node); sparkline()
// builds the SVG element on the browser's main thread.
import { s } from './dom.js';

// Values -> SVG path "M x y L x y ..." scaled into width x height (y grows downwards), the newest value at the right
// edge, `capacity` points across. Empty string when there are fewer than two values.
export function sparkline_path(values, width, height, capacity = values.length, max = undefined) {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length < 2) return '';
  const top = max !== undefined && max > 0 ? max : Math.max(...v, 0);
  const n = Math.max(capacity, v.length);
  const step = width / (n - 1);
  const x0 = width - step * (v.length - 1);
  const pad = 1;
  const y = (val) => {
    const frac = top > 0 ? Math.min(Math.max(val, 0), top) / top : 0;
    return (height - pad - frac * (height - 2 * pad)).toFixed(1);
  };
  return v.map((val, i) => `${i === 0 ? 'M' : 'L'}${(x0 + i * step).toFixed(1)} ${y(val)}`).join(' ');
}

// One chart with up to a few series: [{values, cls}]. Series share the y scale (their common maximum).
export function sparkline(series, { width = 160, height = 36, capacity = 30, label = '' } = {}) {
  const max = Math.max(0, ...series.flatMap((x) => x.values.filter((v) => Number.isFinite(v))));
  const svg = s('svg', {
    class: 'spark', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': label,
  });
  svg.append(s('rect', { class: 'spark-bg', x: 0, y: 0, width, height }));
  for (const ser of series) {
    const d = sparkline_path(ser.values, width, height, capacity, max);
    if (d) svg.append(s('path', { class: `spark-line ${ser.cls || ''}`, d }));
  }
  return svg;
}
