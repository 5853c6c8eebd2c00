// The draw page's behaviour (served by mnist_nbdev.serving; nbs/05a_serving.ipynb
// explains it). It talks to one address only: POST predict, on the same server.

// The answer's place: the digit, its probability, and ten bars, one per class.
const pad = document.getElementById("pad");
const pen = pad.getContext("2d");
const shown = document.getElementById("prediction");
const sure = document.getElementById("confidence");
const note = document.getElementById("status");
const seen = document.getElementById("seen").getContext("2d");
const bars = [];
for (let digit = 0; digit < 10; digit++) {
  const row = document.createElement("div");
  row.className = "bar";
  row.innerHTML = `<span>${digit}</span><div class="track"><div class="fill"></div>`
    + "</div><span></span>";
  document.getElementById("bars").append(row);
  bars.push(row);
}
function show(answer) {
  const found = answer.label !== null && answer.label !== undefined;
  shown.textContent = found ? answer.label : (answer.label === null ? "?" : "");
  sure.textContent = found ? `${(100 * answer.confidence).toFixed(1)}% sure`
    : (answer.label === null ? answer.reason || "no digit found" : "");
  note.textContent = answer.error || "";
  showSeen(answer.image);
  bars.forEach((row, digit) => {
    const p = answer.probabilities ? answer.probabilities[digit] : 0;
    row.querySelector(".fill").style.width = `${100 * p}%`;
    row.lastChild.textContent = answer.probabilities ? `${(100 * p).toFixed(1)}%` : "";
  });
}

// The 28x28 image the model read (white digit on black, as MNIST's), one byte a pixel.
function showSeen(image) {
  const pixels = seen.createImageData(28, 28);
  (image || []).flat().forEach((value, i) => {
    pixels.data.set([value, value, value, 255], 4 * i);
  });
  if (!image) pixels.data.fill(0);
  for (let i = 3; i < pixels.data.length; i += 4) pixels.data[i] = 255;
  seen.putImageData(pixels, 0, 0);
}
showSeen(null);

// Drawing: a line from each pointer position to the next, with round ends and
// joins, so that a quick stroke is as smooth as a slow one.
function blank() {
  pen.fillStyle = "#fff";
  pen.fillRect(0, 0, pad.width, pad.height);
}
blank();
Object.assign(pen, {lineWidth: pad.width / 14, lineCap: "round", lineJoin: "round"});
let last = null;
function at(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width,
          (event.clientY - box.top) * pad.height / box.height];
}
function line(from, to) {
  pen.strokeStyle = "#000";
  pen.beginPath();
  pen.moveTo(...from);
  pen.lineTo(...to);
  pen.stroke();
}
pad.addEventListener("pointerdown", event => {
  pad.setPointerCapture(event.pointerId);
  last = at(event);
  line(last, last);
  soon();
});
pad.addEventListener("pointermove", event => {
  if (last === null) return;
  const next = at(event);
  line(last, next);
  last = next;
  soon();
});
for (const end of ["pointerup", "pointercancel"]) {
  pad.addEventListener(end, () => { last = null; soon(); });
}

// Asking the server: a request when the pen pauses for 150 ms, not at every
// pixel; each request is numbered, and only the newest one's answer is shown.
let timer = null, asked = 0;
function soon() {
  clearTimeout(timer);
  timer = setTimeout(() => pad.toBlob(png => send(png, "drawing.png")), 150);
}
async function send(file, name) {
  const number = ++asked;
  try {
    // the docs site's page reads the digit in the browser (window.readDigit, its
    // onnx-backend.js); mnist-serve's page asks the server
    const answer = window.readDigit ? await window.readDigit(file) : await ask(file, name);
    if (number !== asked) return;  // a newer request overtook this one
    show(answer);
  } catch (error) {
    if (number === asked) show({error: `could not read the digit: ${error.message}`});
  }
}
async function ask(file, name) {
  const form = new FormData();
  form.append("files", file, name);
  const reply = await fetch("predict", {method: "POST", body: form});
  const body = await reply.json();
  if (!reply.ok) throw new Error(body.detail || reply.statusText);
  return body[0];
}
document.getElementById("clear").addEventListener("click", () => {
  clearTimeout(timer);
  asked++;
  blank();
  show({});
});

// A photo: drawn on the canvas, scaled to fit, so the person sees what was
// read; the file itself is sent at full size.
const photo = document.getElementById("photo");
photo.addEventListener("change", async () => {
  const file = photo.files[0];
  if (!file) return;
  clearTimeout(timer);
  blank();
  try {
    const image = await createImageBitmap(file);
    const scale = Math.min(pad.width / image.width, pad.height / image.height);
    const [w, h] = [image.width * scale, image.height * scale];
    pen.drawImage(image, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
  } catch (error) {}  // a format the browser cannot show: the server still reads it
  send(file, file.name);
});
