// Two RTCPeerConnections in headless Chromium, both forced to relay-only ICE through the TURN
// server under test (turn:127.0.0.1:PORT?transport=udp|tcp), exchange a data-channel message.
// Prints one JSON object on the last stdout line; exits 0 only if the message crossed and the
// selected candidate pair is relay/relay.
//
//   node relay.mjs <port> <username> <password> [udp|tcp]
//
// CHROMIUM overrides the browser path (default /usr/bin/chromium). Never downloads a browser.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';

const [port, username, credential, transport = 'udp'] = process.argv.slice(2);
if (!port || !username || !credential || !['udp', 'tcp'].includes(transport)) {
  console.error('usage: node relay.mjs <port> <username> <password> [udp|tcp]');
  process.exit(2);
}
const url = `turn:127.0.0.1:${port}?transport=${transport}`;
const TOTAL_MS = Number(process.env.RELAY_TIMEOUT_MS || 30000);

const profile = mkdtempSync(join(tmpdir(), 'switchyard-chromium-'));
let browser;
let finished = false;

function finish(result, code) {
  if (finished) return;
  finished = true;
  console.log(JSON.stringify(result));
  const close = browser ? browser.close().catch(() => {}) : Promise.resolve();
  close.finally(() => {
    rmSync(profile, { recursive: true, force: true });
    process.exit(code);
  });
  // Never hang on a browser that refuses to close.
  setTimeout(() => process.exit(code), 5000).unref();
}

const watchdog = setTimeout(() => finish({ ok: false, url, error: `overall timeout ${TOTAL_MS} ms` }, 1), TOTAL_MS);
watchdog.unref();

try {
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true, // puppeteer passes --headless=new
    userDataDir: profile,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--allow-loopback-in-peer-connection',
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      '--use-fake-ui-for-media-stream',
    ],
  });
  const page = await browser.newPage();
  await page.goto('about:blank');
  const result = await page.evaluate(async ({ url, username, credential, stepMs }) => {
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const within = (p, ms, what) =>
      Promise.race([p, sleep(ms).then(() => { throw new Error(`timeout waiting for ${what}`); })]);
    const config = { iceServers: [{ urls: url, username, credential }], iceTransportPolicy: 'relay' };
    const a = new RTCPeerConnection(config);
    const b = new RTCPeerConnection(config);
    const out = { url, candidates: { a: [], b: [] }, iceErrors: [], states: {} };
    for (const [name, pc, other] of [['a', a, b], ['b', b, a]]) {
      pc.onicecandidate = (e) => {
        if (e.candidate && e.candidate.candidate) {
          out.candidates[name].push(e.candidate.candidate);
          other.addIceCandidate(e.candidate).catch((err) => out.iceErrors.push({ pc: name, addIceCandidate: String(err) }));
        }
      };
      pc.onicecandidateerror = (e) =>
        out.iceErrors.push({ pc: name, url: e.url, errorCode: e.errorCode, errorText: e.errorText });
    }
    try {
      const dc = a.createDataChannel('relay-test');
      const opened = new Promise((r) => { dc.onopen = r; });
      const received = new Promise((r) => {
        b.ondatachannel = (e) => { e.channel.onmessage = (m) => r(m.data); };
      });
      await a.setLocalDescription(await a.createOffer());
      await b.setRemoteDescription(a.localDescription);
      await b.setLocalDescription(await b.createAnswer());
      await a.setRemoteDescription(b.localDescription);
      await within(opened, stepMs, 'data channel open');
      const sent = `hello through ${url}`;
      dc.send(sent);
      out.message = await within(received, stepMs, 'data channel message');
      out.messageOk = out.message === sent;

      const stats = await a.getStats();
      let pair;
      stats.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
      });
      if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
      if (pair) {
        const pick = (c) => c && {
          candidateType: c.candidateType, protocol: c.protocol, relayProtocol: c.relayProtocol,
          address: c.address, port: c.port, url: c.url,
        };
        out.pair = {
          state: pair.state,
          bytesSent: pair.bytesSent,
          bytesReceived: pair.bytesReceived,
          local: pick(stats.get(pair.localCandidateId)),
          remote: pick(stats.get(pair.remoteCandidateId)),
        };
      }
    } catch (err) {
      out.error = String(err && err.message ? err.message : err);
    } finally {
      out.states = {
        a: { ice: a.iceConnectionState, conn: a.connectionState, gathering: a.iceGatheringState },
        b: { ice: b.iceConnectionState, conn: b.connectionState, gathering: b.iceGatheringState },
      };
      a.close();
      b.close();
    }
    return out;
  }, { url, username, credential, stepMs: Math.max(5000, TOTAL_MS - 10000) });

  result.browser = await browser.version();
  const relayPair = result.pair && result.pair.local && result.pair.remote &&
    result.pair.local.candidateType === 'relay' && result.pair.remote.candidateType === 'relay';
  result.ok = Boolean(result.messageOk && relayPair);
  finish(result, result.ok ? 0 : 1);
} catch (err) {
  finish({ ok: false, url, error: String(err && err.stack ? err.stack : err) }, 1);
}
