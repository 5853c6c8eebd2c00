// The draw page's second back end, for the docs site: the packaged model, exported to ONNX
// (`mnist-export`), read in the browser by onnxruntime-web; nothing leaves the page. draw.js
// calls window.readDigit(file) instead of POSTing to a server when it is defined.
// The preparation is `mnist_nbdev.prediction.mnist_image`, step for step (the prediction page):
// grayscale, ink on black, background removed, cropped, fitted into 20x20, centred by mass.

ort.env.wasm.numThreads = 1;  // threads need cross-origin isolation, which a docs host lacks
const session = ort.InferenceSession.create("model.onnx", {executionProviders: ["wasm"]});
const BINS = 256, MIN_CONTRAST = 0.2, BOX = 20, SIDE = 28, NOT_A_DIGIT = 10;
const REFUSE_AT = 0.5;  // "not a digit" this likely is the answer; tools/docs.py writes the model's
const NO_INK = "no digit found: nothing stands out from the paper";

function grayOf(bitmap) {  // [0, 1] grayscale, transparent pixels as white paper
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const pen = canvas.getContext("2d");
  pen.fillStyle = "#fff";
  pen.fillRect(0, 0, canvas.width, canvas.height);
  pen.drawImage(bitmap, 0, 0);
  const rgba = pen.getImageData(0, 0, canvas.width, canvas.height).data;
  const gray = new Float32Array(canvas.width * canvas.height);
  for (let i = 0; i < gray.length; i++) {  // Pillow's "L": ITU-R 601-2 luma, rounded
    const [r, g, b] = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]];
    gray[i] = Math.round((r * 299 + g * 587 + b * 114) / 1000) / 255;
  }
  return {w: canvas.width, h: canvas.height, v: gray};
}

function median(values) {
  const sorted = Float32Array.from(values).sort();
  const n = sorted.length;
  return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

function inkOnBlack(img) {  // inverted when the border, the paper, is light
  const {w, h, v} = img, border = [];
  for (let x = 0; x < w; x++) border.push(v[x], v[(h - 1) * w + x]);
  for (let y = 0; y < h; y++) border.push(v[y * w], v[y * w + w - 1]);
  return median(border) > 0.5 ? {w, h, v: v.map(p => 1 - p)} : img;
}

function counts(values) {
  const c = new Float64Array(BINS);
  for (const p of values) c[Math.min(BINS - 1, Math.max(0, Math.floor(p * BINS)))]++;
  return c;
}

function quantile(c, q) {
  const total = c.reduce((a, b) => a + b, 0);
  let sum = 0;
  for (let i = 0; i < BINS; i++) { sum += c[i]; if (sum >= q * total) return (i + 0.5) / BINS; }
  return (BINS - 0.5) / BINS;
}

function otsu(c) {
  let best = 0, level = 0.5 / BINS, w0 = 0, m0 = 0;
  const total = c.reduce((a, b) => a + b, 0);
  const mass = c.reduce((a, n, i) => a + n * (i + 0.5) / BINS, 0);
  for (let i = 0; i < BINS; i++) {
    w0 += c[i]; m0 += c[i] * (i + 0.5) / BINS;
    const w1 = total - w0, mu0 = m0 / Math.max(w0, 1), mu1 = (mass - m0) / Math.max(w1, 1);
    const between = w0 * w1 * (mu0 - mu1) ** 2;
    if (between > best) { best = between; level = (i + 0.5) / BINS; }
  }
  return level;
}

function neighbours(i, w, h) {  // 4-connectivity, as scipy.ndimage's default
  const x = i % w, y = (i - x) / w, out = [];
  if (x > 0) out.push(i - 1);
  if (x < w - 1) out.push(i + 1);
  if (y > 0) out.push(i - w);
  if (y < h - 1) out.push(i + w);
  return out;
}

function dropSpecks(mask, w, h, share = 0.05) {  // blobs under 5% of the largest go
  const label = new Int32Array(mask.length), sizes = [0];
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i] || label[i]) continue;
    const id = sizes.length, stack = [i];
    label[i] = id; let size = 0;
    while (stack.length) {
      const j = stack.pop(); size++;
      for (const k of neighbours(j, w, h)) if (mask[k] && !label[k]) { label[k] = id; stack.push(k); }
    }
    sizes.push(size);
  }
  const largest = Math.max(...sizes);
  return mask.map((m, i) => m && sizes[label[i]] >= share * largest ? 1 : 0);
}

function removeBackground({w, h, v}) {  // paper to 0, ink stretched to 1; null: no ink
  const c = counts(v), paper = quantile(c, 0.5);
  if (quantile(c, 0.999) - paper < MIN_CONTRAST) return null;
  const threshold = Math.max(otsu(c), paper + MIN_CONTRAST / 2);
  const keep = dropSpecks(v.map(p => (p > threshold ? 1 : 0)), w, h);
  const inked = v.filter((_, i) => keep[i]).sort();
  if (!inked.length) return null;
  const rank = 0.9 * (inked.length - 1), low = Math.floor(rank);  // numpy's percentile
  const core = inked[low] + (inked[Math.min(low + 1, inked.length - 1)] - inked[low]) * (rank - low);
  let near = keep;
  for (let step = 0; step < 2; step++) {  // the strokes' soft edges: dilated twice
    const grown = Uint8Array.from(near);
    near.forEach((m, i) => { if (m) for (const k of neighbours(i, w, h)) grown[k] = 1; });
    near = grown;
  }
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    if (near[i]) out[i] = Math.min(1, Math.max(0, (v[i] - paper) / (core - paper)));
  }
  return out.some(p => p > 0) ? {w, h, v: out} : null;
}

function cropToInk({w, h, v}) {
  let [top, bottom, left, right] = [h, -1, w, -1];
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (v[y * w + x] > 0) {
    top = Math.min(top, y); bottom = Math.max(bottom, y);
    left = Math.min(left, x); right = Math.max(right, x);
  }
  const cw = right - left + 1, ch = bottom - top + 1, out = new Float32Array(cw * ch);
  for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) out[y * cw + x] = v[(y + top) * w + x + left];
  return {w: cw, h: ch, v: out};
}

function resizeByArea({w, h, v}, side) {  // Pillow's BOX filter: each output pixel an area mean
  const scale = side / Math.max(w, h);
  const W = Math.max(1, Math.round(w * scale)), H = Math.max(1, Math.round(h * scale));
  const pass = (src, n, m, N, along) => {  // resample one axis of an n x m grid to N
    const out = new Float32Array(N * m), ratio = n / N;
    for (let o = 0; o < N; o++) {
      const a = o * ratio, b = a + ratio;
      for (let k = 0; k < m; k++) {
        let sum = 0;
        for (let i = Math.floor(a); i < Math.min(Math.ceil(b), n); i++) {
          sum += (Math.min(b, i + 1) - Math.max(a, i)) * src[along(i, k)];
        }
        out[o * m + k] = sum / ratio;
      }
    }
    return out;
  };
  const rows = pass(v, w, h, W, (i, k) => k * w + i);  // out[x * h + y]
  const both = pass(rows, h, W, H, (i, k) => k * h + i);  // out[y * W + x]
  return {w: W, h: H, v: both.map(p => Math.round(Math.min(255, Math.max(0, p))))};
}

function centerByMass({w, h, v}) {
  let total = 0, cy = 0, cx = 0;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const p = v[y * w + x]; total += p; cy += p * y; cx += p * x;
  }
  const middle = (SIDE - 1) / 2;
  const top = Math.min(Math.max(Math.round(middle - cy / total), 0), SIDE - h);
  const left = Math.min(Math.max(Math.round(middle - cx / total), 0), SIDE - w);
  const out = new Uint8Array(SIDE * SIDE);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[(y + top) * SIDE + x + left] = v[y * w + x];
  return out;
}

function mnistImage(gray) {  // 28x28 bytes, or null when the image holds no digit
  const clean = removeBackground(inkOnBlack(gray));
  if (!clean) return null;
  const crop = cropToInk(clean);
  crop.v = crop.v.map(p => Math.floor(p * 255));  // as (crop * 255).astype(np.uint8)
  return centerByMass(resizeByArea(crop, BOX));
}

window.readDigit = async file => {
  const image = mnistImage(grayOf(await createImageBitmap(file)));
  if (!image) return {label: null, confidence: null, probabilities: null, image: null,
                      reason: NO_INK};
  const pixels = Float32Array.from(image, p => p / 255);
  const input = new ort.Tensor("float32", pixels, [1, 1, SIDE, SIDE]);
  const model = await session;
  const logits = (await model.run({[model.inputNames[0]]: input}))[model.outputNames[0]].data;
  const top = Math.max(...logits), exps = Array.from(logits, z => Math.exp(z - top));
  const probabilities = exps.map(e => e / exps.reduce((a, b) => a + b, 0));
  const label = probabilities.indexOf(Math.max(...probabilities));
  const rows = Array.from({length: SIDE}, (_, y) => Array.from(image.slice(y * SIDE, y * SIDE + SIDE)));
  const digits = probabilities.slice(0, NOT_A_DIGIT), none = probabilities[NOT_A_DIGIT] || 0;
  if (label === NOT_A_DIGIT || none >= REFUSE_AT) {  // `reading` in prediction.py
    const reason = `not a digit: it looks like none of 0-9 (${Math.round(100 * none)}% likely not one)`;
    return {label: null, confidence: none, probabilities: digits, image: rows, reason};
  }
  return {label, confidence: probabilities[label], probabilities: digits, image: rows};
};
