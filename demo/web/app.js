// The fleet demo's page: draws Italy, its roads and cities from the shipped GeoJSON, connects
// to a broker's WebSocket listener with MQTT.js as the read-only user, subscribes to fleet/#,
// moves markers for a sample of trucks and shows the stream job's counts.
// URL parameters: ws (comma-separated broker URLs, one is picked), user, password, sample.
'use strict';

const params = new URLSearchParams(location.search);
const urls = (params.get('ws') || `ws://${location.hostname || '127.0.0.1'}:8080/mqtt`).split(',');
const brokerUrl = urls[Math.floor(Math.random() * urls.length)];
const SAMPLE = Number(params.get('sample') || 15);

// Equirectangular projection around 42°N, 100 px per degree of latitude (viewBox 921 × 1080).
const WEST = 6.4, NORTH = 47.2, KX = Math.cos((42 * Math.PI) / 180) * 100, KY = 100;
const project = ([lon, lat]) => [(lon - WEST) * KX, (NORTH - lat) * KY];
const svgNs = 'http://www.w3.org/2000/svg';
const el = (name, attrs = {}, parent) => {
  const e = document.createElementNS(svgNs, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
};
const pathOf = (coords, close) =>
  coords.map((c, i) => (i ? 'L' : 'M') + project(c).map((v) => v.toFixed(1)).join(',')).join('') + (close ? 'Z' : '');

// What the browser test (e2e/browser/demo-test.mjs) watches.
const demo = (window.demo = { url: brokerUrl, state: 'connecting', messages: 0, markers: 0, moves: 0, statsUpdates: 0, stats: null });

async function drawMap() {
  const [italy, roads] = await Promise.all(['italy.geojson', 'roads.geojson'].map((f) => fetch(f).then((r) => r.json())));
  const land = document.getElementById('land');
  for (const f of italy.features) for (const ring of f.geometry.coordinates) el('path', { d: pathOf(ring, true) }, land);
  const roadLayer = document.getElementById('roads'), cities = document.getElementById('cities');
  for (const f of roads.features) {
    if (f.geometry.type === 'LineString') el('path', { d: pathOf(f.geometry.coordinates, false) }, roadLayer);
    if (f.geometry.type === 'Point') {
      const [x, y] = project(f.geometry.coordinates);
      el('circle', { cx: x, cy: y, r: 4 }, cities);
      el('text', { x: x + 6, y: y - 5 }, cities).textContent = f.properties.name;
    }
  }
}

// Sample trucks: the first SAMPLE plates seen, each a marker.
const markers = new Map();
const trucksLayer = document.getElementById('trucks');
function moveTruck(report) {
  let m = markers.get(report.plate);
  if (!m) {
    if (markers.size >= SAMPLE) return;
    const g = el('g', { class: 'truck' }, trucksLayer);
    el('circle', { r: 7 }, g);
    el('text', { x: 10, y: 4 }, g).textContent = report.plate;
    m = { g, x: null, y: null, report };
    markers.set(report.plate, m);
    demo.markers = markers.size;
  }
  const [x, y] = project([report.position.lon, report.position.lat]);
  if (m.x !== null && (Math.abs(m.x - x) > 1e-6 || Math.abs(m.y - y) > 1e-6)) demo.moves++;
  m.x = x; m.y = y; m.report = report;
  m.g.style.transform = `translate(${x.toFixed(2)}px, ${y.toFixed(2)}px)`;
  m.g.classList.toggle('parked', !report.nextWaypoint);
}

const text = (id, v) => { document.getElementById(id).textContent = v; };
const fmt = (n) => (n == null ? '–' : Number(n).toLocaleString('en-US'));
function showStats(s) {
  demo.stats = s;
  demo.statsUpdates++;
  const d = { ...s.directions, P: s.parked };
  const max = Math.max(1, ...Object.values(d));
  for (const [k, v] of Object.entries(d)) {
    text(`dir-${k}`, fmt(v));
    document.getElementById(`bar-${k}`).style.width = `${(100 * v) / max}%`;
  }
  text('connections', fmt(s.connections));
  text('kafka-rate', fmt(Math.round(s.messagesPerSecond)));
  text('trucks-count', fmt(s.trucks));
  text('window', `(last ${s.windowSeconds} s)`);
}

function showSample() {
  const rows = [...markers.values()].map(({ report: r }) =>
    `<tr><td>${r.plate}</td><td>${r.nextWaypoint ? '→ ' + r.nextWaypoint.city : 'resting'}</td><td>${Math.round(r.speed)} km/h</td></tr>`);
  document.getElementById('sample').innerHTML = rows.join('');
}

let counted = 0;
setInterval(() => {
  text('rate', fmt(demo.messages - counted));
  counted = demo.messages;
  showSample();
}, 1000);

function connect() {
  const client = mqtt.connect(brokerUrl, {
    clientId: `viewer-${Math.random().toString(16).slice(2, 10)}`,
    username: params.get('user') || 'viewer',
    password: params.get('password') || 'viewer',
    protocolVersion: 5,
    clean: true,
    reconnectPeriod: 2000,
  });
  const status = (s, on) => {
    demo.state = s;
    text('status', `${s} · ${brokerUrl}`);
    document.getElementById('status-dot').classList.toggle('on', on);
  };
  client.on('connect', () => client.subscribe('fleet/#', { qos: 0 }, (e) => status(e ? `error: ${e.message}` : 'connected', !e)));
  client.on('close', () => status('disconnected', false));
  client.on('error', (e) => status(`error: ${e.message}`, false));
  client.on('message', (topic, payload) => {
    demo.messages++;
    try {
      if (topic.startsWith('fleet/trucks/')) {
        // Only sample trucks are parsed: the fleet sends thousands of reports a second.
        const plate = topic.slice('fleet/trucks/'.length);
        if (markers.has(plate) || markers.size < SAMPLE) moveTruck(JSON.parse(payload.toString()));
      } else if (topic === 'fleet/stats/directions') {
        showStats(JSON.parse(payload.toString()));
      }
    } catch (e) {
      console.warn(`bad message on ${topic}: ${e}`);
    }
  });
}

drawMap().catch((e) => console.error(`map: ${e}`)).finally(connect);
