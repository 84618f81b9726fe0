// Two pages of headless Chromium join one LiveKit room through the SFU under test with the real
// livekit-client (UMD build), publish fake camera (simulcast) + microphone, and check that each
// receives the other's audio and video (decoded frames and audio packets rise), that a mute and
// a reliable data packet cross, and that a leave is seen.
// Prints one JSON object on the last stdout line; exit 0 only if everything held.
//
//   node livekit_call.mjs <ws-url> <api-key> <api-secret> <room> <single-pc: true|false|default> [sdk-package]
//
// sdk-package: `livekit-client` (default) or `livekit-client-2-21` (Element Call's version).
// CHROMIUM overrides the browser path (default /usr/bin/chromium). Never downloads a browser.
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';

const [wsUrl, apiKey, apiSecret, roomName, singlePc = 'default', sdk = 'livekit-client'] = process.argv.slice(2);
if (!wsUrl || !apiKey || !apiSecret || !roomName) {
  console.error('usage: node livekit_call.mjs <ws-url> <api-key> <api-secret> <room> [true|false|default] [sdk-package]');
  process.exit(2);
}
const TOTAL_MS = Number(process.env.LK_TIMEOUT_MS || 60000);
// LK_ADAPTIVE=1: Element Call's room options (adaptiveStream + dynacast): the SDK sends
// UpdateTrackSettings from its <video> element sizes and visibility.
const ADAPTIVE = process.env.LK_ADAPTIVE === '1';
// LK_LAYERS=1 (needs adaptive stream off): bob picks alice's simulcast layers explicitly.
const LAYERS = process.env.LK_LAYERS === '1' && !ADAPTIVE;
// LK_DYNACAST=1 (with LK_LAYERS): dynacast on; alice must stop encoding the layers bob does
// not watch (subscribed_quality_update) and resume them when he asks again.
const DYNACAST = process.env.LK_DYNACAST === '1' && LAYERS;
// LK_RESUME=1: alice's signalling connection drops and resumes mid-call.
const RESUME = process.env.LK_RESUME === '1';
const here = dirname(fileURLToPath(import.meta.url));
const umd = readFileSync(join(here, 'node_modules', sdk, 'dist', 'livekit-client.umd.js'));
const sdkVersion = JSON.parse(readFileSync(join(here, 'node_modules', sdk, 'package.json'))).version;

// Test tokens are minted here (HS256 over the test's own dev secret).
function token(identity) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const head = b64({ alg: 'HS256', typ: 'JWT' });
  const body = b64({
    iss: apiKey, sub: identity, nbf: now - 5, exp: now + 600, name: identity,
    video: { roomJoin: true, room: roomName, canPublish: true, canSubscribe: true, canPublishData: true },
  });
  const sig = createHmac('sha256', apiSecret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

const profiles = [];
const browsers = [];
let http;
let finished = false;
const result = { ok: false, sdk: sdkVersion, singlePc, steps: {} };

function finish(code) {
  if (finished) return;
  finished = true;
  console.log(JSON.stringify(result));
  const close = Promise.all(browsers.map((b) => b.close().catch(() => {})));
  close.finally(() => {
    if (http) http.close();
    for (const p of profiles) rmSync(p, { recursive: true, force: true });
    process.exit(code);
  });
  setTimeout(() => process.exit(code), 5000).unref();
}
setTimeout(() => { result.error = `overall timeout ${TOTAL_MS} ms`; finish(1); }, TOTAL_MS).unref();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, fn, ms = 20000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// In-page code: join, publish, and expose probes.
async function joinInPage(url, tok, single, adaptive, dynacast) {
  const { Room, RoomEvent, VideoPresets } = window.LivekitClient;
  const opts = { adaptiveStream: adaptive, dynacast: adaptive || dynacast };
  if (single !== 'default') opts.singlePeerConnection = single === 'true';
  const room = new Room(opts);
  const ev = { muted: [], left: [], data: [], tracks: [], speakers: [], unpublished: [] };
  window.__room = room;
  window.__ev = ev;
  room.on(RoomEvent.TrackSubscribed, (track, pub, p) => {
    const el = track.attach();
    el.muted = true;
    if (track.kind === 'video') {
      el.style.width = '640px';
      el.style.height = '360px';
      window.__videoEl = el;
    }
    document.body.appendChild(el);
    ev.tracks.push({ track, kind: track.kind, from: p.identity });
  });
  room.on(RoomEvent.TrackMuted, (pub, p) => {
    if (p !== room.localParticipant) ev.muted.push(`${p.identity}:${pub.kind}`);
  });
  room.on(RoomEvent.ParticipantDisconnected, (p) => ev.left.push(p.identity));
  room.on(RoomEvent.TrackUnpublished, (pub, p) => ev.unpublished.push(`${p.identity}:${pub.kind}`));
  room.on(RoomEvent.ActiveSpeakersChanged, (speakers) => {
    for (const p of speakers) if (p !== room.localParticipant) ev.speakers.push(p.identity);
  });
  room.on(RoomEvent.DataReceived, (payload, p) => ev.data.push(`${p ? p.identity : '?'}:${new TextDecoder().decode(payload)}`));
  await room.connect(url, tok);
  await room.localParticipant.setCameraEnabled(
    true,
    { resolution: VideoPresets.h720.resolution },
    { simulcast: true, videoSimulcastLayers: [VideoPresets.h180, VideoPresets.h360] },
  );
  await room.localParticipant.setMicrophoneEnabled(true);
  return { sid: room.localParticipant.sid, serverVersion: room.serverInfo ? room.serverInfo.version : null };
}

async function mediaStats() {
  const out = { n: window.__ev.tracks.length, kinds: window.__ev.tracks.map((t) => t.kind + ':' + t.from) };
  for (const t of window.__ev.tracks) {
    if (!t.track.receiver) continue;
    (await t.track.receiver.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (t.kind === 'video') out.video = { framesDecoded: s.framesDecoded || 0, width: s.frameWidth || 0, packetsReceived: s.packetsReceived || 0 };
      else out.audio = { packetsReceived: s.packetsReceived || 0, bytesReceived: s.bytesReceived || 0 };
    });
  }
  return out;
}

try {
  http = createServer((req, res) => {
    if (req.url === '/lk.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(umd);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><html><body><script src="/lk.js"></script></body></html>');
    }
  });
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  const pageUrl = `http://127.0.0.1:${http.address().port}/`;

  // One browser per participant, as two people on two machines: each page is its own
  // foreground tab, so adaptive stream sees its video elements as visible.
  const launch = (profile) => puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    userDataDir: profile,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const pages = {};
  for (const who of ['alice', 'bob']) {
    const profile = mkdtempSync(join(tmpdir(), `switchyard-lk-${who}-`));
    profiles.push(profile);
    const browser = await launch(profile);
    browsers.push(browser);
    const page = (await browser.pages())[0] || (await browser.newPage());
    page.on('console', (m) => {
      const t = m.text();
      if (process.env.LK_VERBOSE || /error|fail/i.test(t)) console.error(`[${who}] ${t.slice(0, 400)}`);
    });
    page.on('pageerror', (e) => console.error(`[${who}] pageerror ${e}`));
    await page.goto(pageUrl);
    await page.waitForFunction(() => !!window.LivekitClient, { timeout: 10000 });
    pages[who] = page;
  }
  for (const who of ['alice', 'bob']) {
    result.steps[`join_${who}`] = await pages[who].evaluate(joinInPage, wsUrl, token(who), singlePc, ADAPTIVE, DYNACAST);
  }

  // Media both ways: two tracks subscribed, then counters rise.
  for (const who of ['alice', 'bob']) {
    await until(`${who} subscribed to 2 tracks`, () => pages[who].evaluate(() => window.__ev.tracks.length >= 2), 20000);
  }
  const first = {};
  for (const who of ['alice', 'bob']) {
    first[who] = await until(`${who} decoding`, async () => {
      const s = await pages[who].evaluate(mediaStats);
      result.steps[`last_stats_${who}`] = s;
      return s.video && s.video.framesDecoded > 0 && s.audio && s.audio.packetsReceived > 0 ? s : null;
    }, 20000);
  }
  await sleep(2000);
  for (const who of ['alice', 'bob']) {
    const later = await pages[who].evaluate(mediaStats);
    result.steps[`media_${who}`] = { first: first[who], later };
    if (!(later.video.framesDecoded > first[who].video.framesDecoded && later.audio.packetsReceived > first[who].audio.packetsReceived)) {
      throw new Error(`${who}: media stopped rising ${JSON.stringify(result.steps[`media_${who}`])}`);
    }
  }

  if (LAYERS) {
    // Bob asks for alice's low layer, then her high one (UpdateTrackSettings.quality); the
    // decoded width must drop to the low layer (h180: 320 wide) and then rise again, which
    // needs a keyframe on the new layer.
    const width = () => pages.bob.evaluate(async () => {
      let w = 0;
      for (const t of window.__ev.tracks) {
        if (t.kind !== 'video') continue;
        (await t.track.receiver.getStats()).forEach((s) => { if (s.type === 'inbound-rtp') w = s.frameWidth || 0; });
      }
      return w;
    });
    const quality = (q) => pages.bob.evaluate((q) => {
      const { VideoQuality } = window.LivekitClient;
      for (const p of window.__room.remoteParticipants.values()) {
        for (const pub of p.videoTrackPublications.values()) pub.setVideoQuality(VideoQuality[q]);
      }
    }, q);
    // Alice's simulcast encodings as `rid:active` (what dynacast switches).
    const encodings = () => pages.alice.evaluate(() => {
      for (const pub of window.__room.localParticipant.videoTrackPublications.values()) {
        const s = pub.videoTrack && pub.videoTrack.sender;
        if (s) return s.getParameters().encodings.map((e) => `${e.rid}:${e.active}`).sort();
      }
      return [];
    });
    const active = (list) => list.filter((e) => e.endsWith(':true')).length;
    const before = await width();
    await quality('LOW');
    const low = await until('low layer at bob', async () => { const w = await width(); return w > 0 && w <= 320 ? w : null; }, 20000);
    let lowOnly = null;
    if (DYNACAST) lowOnly = await until('alice encodes the low layer only', async () => { const e = await encodings(); return e.length === 3 && active(e) === 1 ? e : null; }, 15000);
    await quality('HIGH');
    const high = await until('higher layer at bob', async () => { const w = await width(); return w > low ? w : null; }, 20000);
    let all = null;
    if (DYNACAST) all = await until('alice encodes every layer again', async () => { const e = await encodings(); return e.length === 3 && active(e) === 3 ? e : null; }, 15000);
    result.steps.layers = { before, low, high, lowOnly, all };
  }

  if (RESUME) {
    // Alice's signalling WebSocket drops; the SDK resumes (reconnect=1&sid=) without leaving
    // the room, and media keeps flowing both ways.
    await pages.alice.evaluate(() => {
      const { RoomEvent } = window.LivekitClient;
      window.__resumed = false;
      window.__room.on(RoomEvent.SignalReconnecting, () => (window.__resuming = true));
      window.__room.on(RoomEvent.Reconnected, () => (window.__resumed = true));
      return window.__room.simulateScenario('signal-reconnect');
    });
    await until('alice resumed', () => pages.alice.evaluate(() => window.__resumed), 20000);
    const before = {};
    for (const who of ['alice', 'bob']) before[who] = await pages[who].evaluate(mediaStats);
    await sleep(2000);
    const after = {};
    for (const who of ['alice', 'bob']) {
      after[who] = await pages[who].evaluate(mediaStats);
      if (!(after[who].video.framesDecoded > before[who].video.framesDecoded && after[who].audio.packetsReceived > before[who].audio.packetsReceived)) {
        throw new Error(`${who}: media stopped after resume ${JSON.stringify({ before: before[who], after: after[who] })}`);
      }
    }
    result.steps.resume = { sid: await pages.alice.evaluate(() => window.__room.localParticipant.sid), before, after };
  }

  // Which transport carries the media (selected ICE candidate pair of each receiver).
  for (const who of ['alice', 'bob']) {
    result.steps[`transport_${who}`] = await pages[who].evaluate(() => {
      const protos = new Set();
      for (const t of window.__ev.tracks) {
        const ice = t.track.receiver && t.track.receiver.transport && t.track.receiver.transport.iceTransport;
        const pair = ice && ice.getSelectedCandidatePair();
        if (pair) protos.add(pair.local.protocol);
      }
      return [...protos];
    });
  }

  // Chromium's fake microphone beeps: the SFU reads the audio-level header extension and
  // tells bob that alice is speaking (speakers_changed → isSpeaking).
  result.steps.speaking = await until('alice speaking at bob', () => pages.bob.evaluate(() => window.__ev.speakers.includes('alice')), 15000);

  // Reliable data from alice reaches bob.
  await pages.alice.evaluate(() => window.__room.localParticipant.publishData(new TextEncoder().encode('hello-over-sfu'), { reliable: true }));
  result.steps.data = await until('data at bob', () => pages.bob.evaluate(() => window.__ev.data.find((d) => d.endsWith('hello-over-sfu'))), 10000);

  // Alice mutes her camera; bob sees it.
  await pages.alice.evaluate(() => window.__room.localParticipant.setCameraEnabled(false));
  result.steps.mute = await until('mute at bob', () => pages.bob.evaluate(() => window.__ev.muted.find((m) => m === 'alice:video')), 10000);

  // Alice stops publishing her microphone (renegotiation drops the m-line); bob sees it go.
  await pages.alice.evaluate(async () => {
    const lp = window.__room.localParticipant;
    for (const pub of lp.audioTrackPublications.values()) await lp.unpublishTrack(pub.track);
  });
  result.steps.unpublish = await until('unpublish at bob', () => pages.bob.evaluate(() => window.__ev.unpublished.find((u) => u === 'alice:audio')), 10000);

  // Alice leaves; bob sees it.
  await pages.alice.evaluate(() => window.__room.disconnect());
  result.steps.leave = await until('leave at bob', () => pages.bob.evaluate(() => window.__ev.left.includes('alice')), 10000);
  await pages.bob.evaluate(() => window.__room.disconnect());
  result.ok = true;
  finish(0);
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
  finish(1);
}
