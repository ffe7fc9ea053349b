// The fer browser page: sends an image (or webcam frames) to /v1/predict and draws the answer.
// Plain JS, no libraries, nothing from a CDN. Boxes come back in the pixels of the image as sent.
"use strict";

const EMOTION_COLORS = {
  angry: "#d62728", disgust: "#8c564b", fear: "#9467bd", happy: "#2ca02c",
  sad: "#1f77b4", surprise: "#ff7f0e", neutral: "#7f7f7f",
};
const WEBCAM_INTERVAL_MS = 250;

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const context = canvas.getContext("2d");
let webcamStream = null;
let webcamBusy = false;

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function requestHeaders() {
  const key = $("api-key").value.trim();
  return key ? { "X-API-Key": key } : {};
}

function predictUrl() {
  const params = new URLSearchParams({ detect: $("detect").checked });
  if ($("tta").value) params.set("tta", $("tta").value);
  return `/v1/predict?${params}`;
}

async function predict(blob) {
  const form = new FormData();
  form.append("file", blob, "image");
  const response = await fetch(predictUrl(), { method: "POST", body: form, headers: requestHeaders() });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
    throw new Error(message);
  }
  return body;
}

// ---- drawing ---------------------------------------------------------------------------------------

function drawImage(source, width, height) {
  canvas.width = width;
  canvas.height = height;
  context.drawImage(source, 0, 0, width, height);
  $("hint").classList.add("hidden");
}

function drawFaces(faces) {
  const lineWidth = Math.max(2, Math.round(canvas.width / 300));
  const fontSize = Math.max(14, Math.round(canvas.width / 40));
  context.font = `${fontSize}px system-ui, sans-serif`;
  context.textBaseline = "bottom";
  faces.forEach((face, index) => {
    const [x, y, w, h] = face.box;
    const color = EMOTION_COLORS[face.emotion] || "#2457d6";
    context.strokeStyle = color;
    context.lineWidth = lineWidth;
    context.strokeRect(x, y, w, h);
    const label = `${index + 1}. ${face.emotion} ${Math.round(face.score * 100)}%`;
    const textWidth = context.measureText(label).width;
    const top = y > fontSize + 4 ? y : y + h + fontSize + 4;
    context.fillStyle = color;
    context.fillRect(x, top - fontSize - 4, textWidth + 8, fontSize + 4);
    context.fillStyle = "#fff";
    context.fillText(label, x + 4, top - 2);
  });
}

function listFaces(result) {
  const list = $("faces");
  list.replaceChildren();
  result.faces.forEach((face, index) => {
    const item = document.createElement("li");
    item.className = "face";
    item.dataset.emotion = face.emotion;
    const title = document.createElement("h2");
    title.textContent = `Face ${index + 1}: ${face.emotion} (${Math.round(face.score * 100)}%)`;
    item.append(title);
    for (const [emotion, probability] of Object.entries(face.scores)) {
      const bar = document.createElement("div");
      bar.className = emotion === face.emotion ? "bar top" : "bar";
      const name = document.createElement("span");
      name.textContent = emotion;
      const track = document.createElement("div");
      track.className = "track";
      const fill = document.createElement("div");
      fill.className = "fill";
      fill.style.width = `${(probability * 100).toFixed(1)}%`;  // CSSOM: allowed by the page's CSP
      track.append(fill);
      const value = document.createElement("span");
      value.textContent = `${(probability * 100).toFixed(1)}%`;
      bar.append(name, track, value);
      item.append(bar);
    }
    list.append(item);
  });
  const dropped = result.dropped_faces ? `, ${result.dropped_faces} more not classified` : "";
  const count = result.faces.length === 1 ? "1 face" : `${result.faces.length} faces`;
  setStatus(`${count}${dropped} in ${result.elapsed_ms} ms (${result.model})`);
}

// ---- images ----------------------------------------------------------------------------------------

async function showFile(file) {
  if (!file) return;
  stopWebcam();
  setStatus("Working...");
  try {
    // The server applies EXIF orientation; createImageBitmap does the same, so boxes line up.
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    drawImage(bitmap, bitmap.width, bitmap.height);
    const result = await predict(file);
    drawFaces(result.faces);
    listFaces(result);
  } catch (error) {
    $("faces").replaceChildren();
    setStatus(`Could not read this image: ${error.message}`, true);
  }
}

$("file").addEventListener("change", (event) => showFile(event.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  showFile(event.dataTransfer.files[0]);
});

// ---- webcam ----------------------------------------------------------------------------------------

async function startWebcam() {
  try {
    webcamStream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
  } catch (error) {
    setStatus(`No webcam: ${error.message}`, true);
    return;
  }
  const video = $("video");
  video.srcObject = webcamStream;
  await video.play();
  $("webcam").textContent = "Stop webcam";
  $("webcam").classList.add("on");
  webcamLoop();
}

function stopWebcam() {
  if (!webcamStream) return;
  webcamStream.getTracks().forEach((track) => track.stop());
  webcamStream = null;
  $("webcam").textContent = "Start webcam";
  $("webcam").classList.remove("on");
}

async function webcamLoop() {
  const video = $("video");
  while (webcamStream) {
    const started = performance.now();
    if (!webcamBusy && video.videoWidth) {
      webcamBusy = true;  // one frame in flight at a time: never queue stale frames
      drawImage(video, video.videoWidth, video.videoHeight);
      const frame = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
      try {
        const result = await predict(frame);
        if (webcamStream) {
          drawImage(video, video.videoWidth, video.videoHeight);
          drawFaces(result.faces);
          listFaces(result);
        }
      } catch (error) {
        setStatus(`Webcam frame failed: ${error.message}`, true);
      }
      webcamBusy = false;
    }
    const wait = Math.max(0, WEBCAM_INTERVAL_MS - (performance.now() - started));
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

$("webcam").addEventListener("click", () => (webcamStream ? stopWebcam() : startWebcam()));

// ---- model card ------------------------------------------------------------------------------------

async function showModel() {
  const response = await fetch("/v1/model", { headers: requestHeaders() }).catch(() => null);
  if (!response || !response.ok) {
    setStatus(response && response.status === 401 ? "Enter the server's API key above." : "Server not ready.");
    return;
  }
  const card = await response.json();
  const accuracy = card.metrics?.validation?.[card.default_tta]?.accuracy;
  const measured = accuracy ? `, ${(accuracy * 100).toFixed(1)}% on FER2013 validation` : "";
  setStatus(`Model ${card.id} (${card.arch}) on ${card.device}${measured}. Choose an image.`);
}

showModel();
