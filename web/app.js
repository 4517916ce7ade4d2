// Streams the shipped ETTh1 test series through an exported Aaren forecaster (scripts/export.py) in
// onnxruntime-web, one observation at a time, with the state fed back; draws the forecast and the state size.
// The raw CSV is prepared as tasks/forecasting/data.py prepares it, from <model>.json's "data": channels in the
// exported order (target last), the training rows' scaler, TSLib's timeF calendar features (time_features.py).
// For tests: window.aaren = {done, error, forecasts: [[H·C numbers] per step], stateBytes, horizon, channels}.
import * as ort from "/node_modules/onnxruntime-web/dist/ort.wasm.min.mjs";

const params = new URLSearchParams(location.search);
const MODEL = params.get("model") || "model/etth1.onnx";
const CSV = params.get("csv") || "/data/forecasting/ETTh1/ETTh1.csv";
const DELAY_MS = Number(params.get("delay") || 0);
const BYTES = { float32: 4, int64: 8 };
window.aaren = { done: false, error: null, forecasts: [] };

// calendar features in [-0.5, 0.5], as tasks/forecasting/time_features.py (pandas: Monday = 0)
const FEATURES = {
  hour_of_day: (d) => d.hour / 23 - 0.5,
  day_of_week: (d) => d.dayOfWeek / 6 - 0.5,
  day_of_month: (d) => (d.day - 1) / 30 - 0.5,
  day_of_year: (d) => (d.dayOfYear - 1) / 365 - 0.5,
  month_of_year: (d) => (d.month - 1) / 11 - 0.5,
  minute_of_hour: (d) => d.minute / 59 - 0.5,
  second_of_minute: (d) => d.second / 59 - 0.5,
};

function parseDate(text) {  // "YYYY-MM-DD HH:MM:SS", a wall-clock time (no time zone)
  const [y, mo, d, h = 0, mi = 0, s = 0] = text.split(/[- :T]/).map(Number);
  const utc = Date.UTC(y, mo - 1, d);
  return { month: mo, day: d, hour: h, minute: mi, second: s, dayOfWeek: (new Date(utc).getUTCDay() + 6) % 7,
           dayOfYear: Math.round((utc - Date.UTC(y, 0, 1)) / 86400000) + 1 };
}

function prepare(csvText, data) {  // → rows of the test split: {x: Float32Array(C), mark: Float32Array(F)}
  const lines = csvText.trim().split(/\r?\n/);
  const header = lines[0].split(",");
  const order = data.columns.map((name) => header.indexOf(name));
  if (order.includes(-1)) throw new Error(`${CSV}: columns ${header} lack one of ${data.columns}`);
  const [start, end] = data.test_rows;
  const rows = [];
  for (let i = start; i < end; i++) {
    const fields = lines[i + 1].split(",");
    const x = Float32Array.from(order, (col, c) => (Number(fields[col]) - data.scaler_mean[c]) / data.scaler_std[c]);
    const date = parseDate(fields[header.indexOf("date")]);
    rows.push({ x, mark: Float32Array.from(data.time_features, (name) => FEATURES[name](date)) });
  }
  return rows;
}

// onnxruntime-web 1.30's wasm kernels turn the −inf of Aaren's empty state (m = −inf) into NaN where the CPU
// build does not; the lowest float32 acts the same (e^{lowest − s} = 0 in float32 for any finite score s).
const LOWEST_FLOAT32 = -3.4028234663852886e38;

function emptyState(signature) {  // batch of one stream; "initial" is the constant each state tensor starts at
  const state = {};
  for (const input of signature.inputs.filter((i) => "initial" in i)) {
    const size = input.shape.reduce((a, b) => a * b, 1);
    const value = input.initial === "-inf" ? LOWEST_FLOAT32 : Number(input.initial);
    state[input.name] = input.dtype === "int64"
      ? new ort.Tensor("int64", BigInt64Array.from({ length: size }, () => BigInt(value)), input.shape)
      : new ort.Tensor("float32", new Float32Array(size).fill(value), input.shape);
  }
  return state;
}

function draw(history, forecast, horizon, channels) {
  const canvas = document.getElementById("plot"), g = canvas.getContext("2d");
  const past = history.slice(-192), target = channels - 1;
  const future = Array.from({ length: horizon }, (_, h) => forecast[h * channels + target]);
  const all = [...past, ...future], lo = Math.min(...all), hi = Math.max(...all);
  const n = past.length + horizon, X = (i) => (i / (n - 1)) * canvas.width;
  const Y = (v) => canvas.height - 10 - ((v - lo) / (hi - lo || 1)) * (canvas.height - 20);
  g.clearRect(0, 0, canvas.width, canvas.height);
  const line = (values, offset, color) => {
    g.strokeStyle = color; g.beginPath();
    values.forEach((v, i) => (i ? g.lineTo(X(i + offset), Y(v)) : g.moveTo(X(i + offset), Y(v))));
    g.stroke();
  };
  line(past, 0, "#000");
  line([past[past.length - 1], ...future], past.length - 1, "#1f6fd1");
}

async function main() {
  const status = document.getElementById("status");
  ort.env.wasm.wasmPaths = "/node_modules/onnxruntime-web/dist/";
  ort.env.wasm.numThreads = 1;
  const signature = await (await fetch(`${MODEL}.json`)).json();
  const session = await ort.InferenceSession.create(MODEL, { executionProviders: ["wasm"] });
  const rows = prepare(await (await fetch(CSV)).text(), signature.data);
  const steps = Math.min(Number(params.get("steps") || rows.length), rows.length);
  let state = emptyState(signature);
  const stateBytes = signature.inputs.filter((i) => "initial" in i)
    .reduce((sum, i) => sum + i.shape.reduce((a, b) => a * b, 1) * BYTES[i.dtype], 0);
  const [layers, , heads] = signature.inputs.find((i) => i.name === "m").shape;   // (L, B, H)
  const headDim = signature.inputs.find((i) => i.name === "a").shape[3];        // (L, B, H, Dh)
  const { horizon, columns } = signature.data, channels = columns.length;
  Object.assign(window.aaren, { stateBytes, horizon, channels });
  document.getElementById("state-bytes").textContent = stateBytes.toLocaleString();
  const history = [];
  for (let t = 0; t < steps; t++) {
    const { x, mark } = rows[t];
    const feeds = { ...state, x_t: new ort.Tensor("float32", x, [1, channels]),
                    mark_t: new ort.Tensor("float32", mark, [1, mark.length]) };
    const out = await session.run(feeds);
    for (const name of signature.state) state[name] = out[`${name}_next`];
    const forecast = Array.from(out.forecast.data);
    window.aaren.forecasts.push(forecast);
    history.push(x[channels - 1]);
    // a Transformer of the same size caches a key and a value (D = H · Dh floats each) per layer and token
    const kvBytes = 2 * layers * (t + 1) * heads * headDim * 4;
    document.getElementById("steps").textContent = t + 1;
    document.getElementById("kv-bytes").textContent = kvBytes.toLocaleString();
    if (t % 8 === 0 || t === steps - 1) draw(history, forecast, horizon, channels);
    if (DELAY_MS) await new Promise((resolve) => setTimeout(resolve, DELAY_MS));
  }
  status.textContent = `streamed ${steps} observations of the ETTh1 test split`;
  window.aaren.done = true;
}

main().catch((error) => {
  window.aaren.error = String(error && error.stack || error);
  document.getElementById("status").textContent = `error: ${error}`;
});
