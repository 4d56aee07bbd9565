// The page: send a file (picked, dropped or recorded) to /v1/predict and /v1/timeline,
// then show the labels, the timeline picture, the tables and the downloads. No libraries.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_ROWS = 500;  // segments shown in the table; the downloads hold them all
let limits = null;
let downloadUrls = [];

function showError(message) {
  $("progress-box").hidden = true;
  $("error").textContent = message;
  $("error").hidden = false;
}

function setStatus(text, percent) {
  $("progress-box").hidden = false;
  $("status").textContent = text;
  const bar = $("progress");
  if (percent === null) bar.removeAttribute("value"); else bar.value = percent;
}

// POST the file as multipart field "file"; resolves with the parsed JSON, rejects with the
// server's {"error": ...} text. Upload progress drives the bar (XMLHttpRequest: fetch has none).
function send(url, file, name, label) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("file", file, name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) {
        const done = Math.round((100 * e.loaded) / e.total);
        if (done < 100) setStatus(`${label}: uploading ${done} %`, done);
        else setStatus(`${label}: analysing...`, null);
      }
    };
    xhr.upload.onload = () => setStatus(`${label}: analysing...`, null);
    xhr.onload = () => {
      const body = xhr.response;
      if (xhr.status >= 200 && xhr.status < 300 && body) resolve(body);
      else reject(new Error((body && (body.error || JSON.stringify(body.detail))) ||
                            `${url}: HTTP ${xhr.status}`));
    };
    xhr.onerror = () => reject(new Error(`${url}: the server did not answer`));
    xhr.send(form);
  });
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function showLabels(prediction) {
  const box = $("labels");
  box.replaceChildren();
  // A model trained on the synthetic demo voices: its labels say little about this audio.
  if (prediction.warning) box.append(element("p", `WARNING: ${prediction.warning}`, "warning"));
  for (const [task, result] of Object.entries(prediction.tasks)) {
    const div = element("div", undefined, "task");
    div.dataset.task = task;
    const head = element("p");
    head.append(`${task} (whole recording): `);
    if (result.label === null) {
      head.append(element("span", result.speech ? "no label" : "no speech", "label"));
      if (result.error) head.append(element("span", ` (${result.error})`, "hint"));
    } else {
      head.append(element("span", result.label, "label"));
      head.append(` (probability ${result.probability.toFixed(2)})`);
    }
    div.append(head);
    for (const [name, p] of Object.entries(result.probabilities)) {
      const row = element("div", undefined, "bar");
      row.append(element("span", name));
      const fill = element("span", undefined, "fill");
      fill.style.width = `${Math.round(p * 300)}px`;
      row.append(fill, element("span", p.toFixed(3)));
      div.append(row);
    }
    box.append(div);
  }
}

function download(name, data, type) {
  const url = URL.createObjectURL(new Blob([data], { type }));
  downloadUrls.push(url);
  const link = element("a", name);
  link.href = url;
  link.download = name;
  return link;
}

function base64Bytes(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

// The PNG's colours: matplotlib's tab10, in the sorted order of the labels present.
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

function labelOf(s) { return s.gender || s.age || null; }
function probabilityOf(s) {
  return s.gender ? s.gender_probability : (s.age ? s.age_probability : null);
}
function fixed(value, digits) { return value === null || value === undefined ? "" : value.toFixed(digits); }

function tableRows(id, rows) {
  const body = $(id).querySelector("tbody");
  body.replaceChildren();
  for (const cells of rows) {
    const row = element("tr");
    for (const cell of cells) row.append(element("td", cell));
    body.append(row);
  }
  return body;
}

// One lane per speaker; each turn a rect coloured by its label, with a hover <title>.
function drawLanes(result, colours) {
  const svg = $("lanes");
  const ns = svg.namespaceURI;  // the <svg> in the page: its own namespace, no URL here
  const make = (tag, attributes) => {
    const node = document.createElementNS(ns, tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    return node;
  };
  const speakers = result.speakers.map((row) => row.speaker);
  const lane = 26, left = 44, width = 1000, duration = Math.max(result.duration, 1e-3);
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${Math.max(1, speakers.length) * lane + 18}`);
  const x = (t) => left + ((width - left - 4) * t) / duration;
  speakers.forEach((speaker, index) => {
    const group = make("g", { class: "lane", "data-speaker": speaker });
    const name = make("text", { x: 4, y: index * lane + 17, class: "lane-name" });
    name.textContent = speaker;
    group.append(name);
    for (const s of result.segments.filter((seg) => seg.speaker === speaker)) {
      const rect = make("rect", { x: x(s.start), y: index * lane + 3,
                                  width: Math.max(1, x(s.end) - x(s.start)), height: lane - 6,
                                  fill: colours[labelOf(s)] || "#999", class: "turn" });
      const title = make("title", {});
      const p = probabilityOf(s);
      title.textContent = `${speaker} ${labelOf(s)}${p === null ? "" : ` p=${p.toFixed(2)}`}`
        + (s.age && s.gender ? `, ${s.age} p=${fixed(s.age_probability, 2)}` : "")
        + ` (${s.start.toFixed(2)}-${s.end.toFixed(2)} s)`;
      rect.append(title);
      group.append(rect);
    }
    svg.append(group);
  });
  const axis = make("text", { x: width - 4, y: Math.max(1, speakers.length) * lane + 14,
                              class: "lane-axis", "text-anchor": "end" });
  axis.textContent = `${duration.toFixed(1)} s`;
  svg.append(axis);
}

function showTimeline(result, stem) {
  const png = base64Bytes(result.files.png);
  $("timeline-img").src = `data:image/png;base64,${result.files.png}`;
  const labels = [...new Set(result.segments.map(labelOf).filter((l) => l))].sort();
  const colours = Object.fromEntries(labels.map((l, i) => [l, PALETTE[i % PALETTE.length]]));
  drawLanes(result, colours);
  const seconds = {};
  let speech = 0;
  for (const s of result.segments) {
    const label = labelOf(s);
    if (!label) continue;
    seconds[label] = (seconds[label] || 0) + (s.end - s.start);
    speech += s.end - s.start;
  }
  const totals = tableRows("totals", Object.entries(seconds).sort((a, b) => b[1] - a[1])
    .map(([label, value]) => [label, value.toFixed(1), `${((100 * value) / speech).toFixed(1)} %`]));
  if (!speech) totals.append(element("tr", "no speech found"));
  tableRows("speakers", result.speakers.map((r) => [
    r.speaker, r.speech_s.toFixed(1), r.gender || "", fixed(r.gender_probability, 2),
    r.age || "", fixed(r.age_probability, 2)]));
  const rows = tableRows("segments", result.segments.slice(0, MAX_ROWS).map((s) => [
    s.start.toFixed(2), s.end.toFixed(2), s.speaker || "no speech", s.gender || "",
    fixed(s.gender_probability, 2), s.age || ""]));
  if (result.segments.length > MAX_ROWS) {
    rows.append(element("tr", `... ${result.segments.length - MAX_ROWS} more in the downloads`));
  }
  downloadUrls.forEach((url) => URL.revokeObjectURL(url));
  downloadUrls = [];
  const links = $("downloads");
  links.replaceChildren(
    download(`${stem}.csv`, result.files.csv, "text/csv"),
    download(`${stem}_speakers.csv`, result.files.speakers, "text/csv"),
    download(`${stem}.json`, JSON.stringify({ ...result, files: undefined }, null, 2),
             "application/json"),
    download(`${stem}.rttm`, result.files.rttm, "text/plain"),
    download(`${stem}.TextGrid`, result.files.TextGrid, "text/plain"),
    download(`${stem}.png`, png, "image/png"));
}

async function analyse(file, name) {
  $("error").hidden = true;
  $("results").hidden = true;
  if (limits && file.size > limits.max_mb * 1024 * 1024) {
    showError(`${name}: larger than the ${limits.max_mb} MiB this server accepts`);
    return;
  }
  try {
    const prediction = await send("/v1/predict", file, name, "label");
    $("file-name").textContent = `${prediction.file} (${prediction.duration.toFixed(1)} s)`;
    showLabels(prediction);
    const timeline = await send("/v1/timeline?files=true", file, name, "timeline");
    showTimeline(timeline, name.replace(/\.[^.]*$/, ""));
    $("progress-box").hidden = true;
    $("results").hidden = false;
  } catch (err) {
    showError(err.message);
  }
}

// Microphone: MediaRecorder gives WebM/Ogg, which the server's decoder may not read, so the
// recording is decoded here (Web Audio) and sent as 16-bit mono WAV.
function wavBytes(buffer) {
  const channels = buffer.numberOfChannels;
  const length = buffer.length;
  const mono = new Float32Array(length);
  for (let c = 0; c < channels; c += 1) {
    const data = buffer.getChannelData(c);
    for (let i = 0; i < length; i += 1) mono[i] += data[i] / channels;
  }
  const view = new DataView(new ArrayBuffer(44 + 2 * length));
  const text = (offset, s) => {
    for (let i = 0; i < s.length; i += 1) view.setUint8(offset + i, s.charCodeAt(i));
  };
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * length, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true);
  view.setUint16(22, 1, true); view.setUint32(24, buffer.sampleRate, true);
  view.setUint32(28, 2 * buffer.sampleRate, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, 2 * length, true);
  for (let i = 0; i < length; i += 1) {
    const s = Math.max(-1, Math.min(1, mono[i]));
    view.setInt16(44 + 2 * i, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([view], { type: "audio/wav" });
}

let recorder = null;
async function toggleRecording() {
  const button = $("record");
  if (recorder) { recorder.stop(); return; }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    showError("recording: this browser (or a page not served from localhost/https) "
              + "has no microphone access");
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (e) => chunks.push(e.data);
    recorder.onstop = async () => {
      stream.getTracks().forEach((t) => t.stop());
      recorder = null;
      button.textContent = "\u25CF Record";
      button.classList.remove("recording");
      try {
        const context = new AudioContext();
        const decoded = await context.decodeAudioData(await new Blob(chunks).arrayBuffer());
        await analyse(wavBytes(decoded), "recording.wav");
      } catch (err) {
        showError(`recording: could not be decoded (${err.message})`);
      }
    };
    recorder.start();
    button.textContent = "\u25A0 Stop";
    button.classList.add("recording");
  } catch (err) {
    showError(`recording: no microphone (${err.message})`);
  }
}

function setUp() {
  const drop = $("drop");
  $("file-input").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) analyse(file, file.name);
    e.target.value = "";
  });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file) analyse(file, file.name);
  });
  $("record").addEventListener("click", toggleRecording);
  fetch("/healthz").then((r) => r.json()).then((health) => {
    limits = health.limits;
    $("limits").textContent = `Up to ${limits.max_mb} MiB and ${limits.max_minutes} minutes; `
      + `WAV, FLAC, MP3, OGG/Opus, AIFF. Models: ${health.tasks.join(", ")}.`;
  }).catch(() => {});
}

setUp();
