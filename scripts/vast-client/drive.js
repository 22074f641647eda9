#!/usr/bin/env node
// Plays a VAST tag through the real web VAST client — npm @dailymotion/vast-client's VASTClient (fetch + parse) and VASTTracker
// (pixels) — the way a web player drives it, and prints as JSON on stdout every URL the library fired and what the server answered.
//
//   node scripts/vast-client/drive.js VAST_URL [SCENARIO...]       (default: full skip closed unused error)
//
// Scenarios, each on a serve of its own (VAST_URL is fetched again for each):
//   full    loaded, impression (+ creativeView), viewable, playback in 0.5 s steps to the end with pause/resume, mute/unmute,
//           fullscreen/exitFullscreen and playerExpand/playerCollapse on the way, a click (the player opens the ClickThrough URL it
//           is handed, without following the redirect), otherAdInteraction and a seek back (rewind) in the middle, complete, close
//   skip    impression, notViewable, playback to 1 s, skip
//   closed  impression, viewUndetermined, playback to 0.5 s, close
//   unused  notUsed: the player fetched the ad and did not play it
//   error   the player cannot play the media: the Error URL with [ERRORCODE] 405
// After a scenario, a second VASTTracker on the same parsed ad plays it again (a player re-firing the pixels of one serve, with new
// [CACHEBUSTING] and [TIMESTAMP]); its URLs are reported as "refired".
//
// The library fires pixels only in a browser: with `window` defined, through `new Image().src = url`. Here `window` is the global
// object, `Image` records the URL and GETs it with fetch (a browser's User-Agent, since players run in browsers), and DOMParser is
// the library's own @xmldom/xmldom, which it uses itself outside a browser. The library is loaded from ADTRACKER_VAST_CLIENT_DIR
// (default .tools/vast-client, where scripts/vast-client/install.sh puts it).
'use strict';

const path = require('path');
const { createRequire } = require('module');

const dir = process.env.ADTRACKER_VAST_CLIENT_DIR || path.join(__dirname, '..', '..', '.tools', 'vast-client');
const load = createRequire(path.join(dir, 'package.json'));
const { VASTClient, VASTTracker } = load('@dailymotion/vast-client');
const { DOMParser } = load('@xmldom/xmldom');

const USER_AGENT =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 adtracker-vast-client-check';

// The Content-Encoding of each VAST answer the library fetched (it fetches with the global fetch, which asks for gzip and
// decompresses as a browser does), so the test can see that the tag it parsed came compressed.
let vastEncodings = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, opts) => {
  const r = await realFetch(url, opts);
  if (String(url).includes('/vast')) vastEncodings.push(r.headers.get('content-encoding') || 'identity');
  return r;
};

// The pixels of the action running now, and the fetches not yet answered.
let current = null;
let pending = [];

function fire(url) {
  const rec = { action: current ? current.action : '(none)', url, status: 0 };
  if (current) current.list.push(rec);
  pending.push(
    fetch(url, { headers: { 'User-Agent': USER_AGENT }, redirect: 'manual' })
      .then(async (r) => {
        rec.status = r.status;
        await r.arrayBuffer();
      })
      .catch((e) => {
        rec.error = String(e && e.cause ? e.cause : e);
      }),
  );
}

class Image {
  set src(url) {
    this._src = url;
    fire(url);
  }
  get src() {
    return this._src;
  }
}

globalThis.window = globalThis;
globalThis.Image = Image;
globalThis.DOMParser = DOMParser;
if (!globalThis.location) globalThis.location = { protocol: 'http:', href: 'http://127.0.0.1/' };

// act runs one player action and waits for every pixel it fired to be answered, so the stored order is the fired order.
async function act(list, action, fn) {
  current = { action, list };
  try {
    fn();
  } finally {
    current = null;
  }
  const p = pending;
  pending = [];
  await Promise.all(p);
}

function linearCreative(ad) {
  return (ad.creatives || []).find((c) => c.type === 'linear');
}

async function play(name, ad, creative, list, out) {
  const tracker = new VASTTracker(null, ad, creative);
  tracker.on('TRACKER-error', (e) => out.trackerErrors.push(e && e.message ? e.message : String(e)));
  let clickthrough = null;
  tracker.on('clickthrough', (url) => {
    clickthrough = url;
  });
  const duration = creative.duration;
  const progress = async (t) => act(list, `setProgress(${t})`, () => tracker.setProgress(t));
  switch (name) {
    case 'full': {
      await act(list, 'load', () => tracker.load());
      await act(list, 'trackImpression', () => tracker.trackImpression());
      await act(list, 'trackViewableImpression', () => tracker.trackViewableImpression());
      for (let t = 0.5; t <= duration + 1e-9; t += 0.5) {
        await progress(t);
        if (t === 1) {
          await act(list, 'setPaused(true)', () => tracker.setPaused(true));
          await act(list, 'setPaused(false)', () => tracker.setPaused(false));
        }
        if (t === 1.5) {
          await act(list, 'setMuted(true)', () => tracker.setMuted(true));
          await act(list, 'setMuted(false)', () => tracker.setMuted(false));
        }
        if (t === 2) {
          await act(list, 'setFullscreen(true)', () => tracker.setFullscreen(true));
          await act(list, 'setFullscreen(false)', () => tracker.setFullscreen(false));
          await act(list, 'setExpand(true)', () => tracker.setExpand(true));
          await act(list, 'setExpand(false)', () => tracker.setExpand(false));
        }
        if (t === 2.5) {
          await act(list, 'click', () => tracker.click());
          await act(list, 'otherAdInteraction', () => tracker.otherAdInteraction());
          await progress(1.5); // the viewer seeks back: rewind
        }
      }
      await act(list, 'complete', () => tracker.complete());
      await act(list, 'close', () => tracker.close());
      break;
    }
    case 'skip':
      await act(list, 'trackImpression', () => tracker.trackImpression());
      await act(list, 'trackNotViewableImpression', () => tracker.trackNotViewableImpression());
      await progress(0.5);
      await progress(1);
      await act(list, 'skip', () => tracker.skip());
      break;
    case 'closed':
      await act(list, 'trackImpression', () => tracker.trackImpression());
      await act(list, 'trackUndeterminedImpression', () => tracker.trackUndeterminedImpression());
      await progress(0.5);
      await act(list, 'close', () => tracker.close());
      break;
    case 'unused':
      await act(list, 'notUsed', () => tracker.notUsed());
      break;
    case 'error':
      await act(list, 'error(405)', () => tracker.error({ ERRORCODE: 405 }));
      break;
    default:
      throw new Error(`unknown scenario ${name}`);
  }
  return clickthrough;
}

async function scenario(client, vastURL, name) {
  vastEncodings = [];
  const response = await client.get(vastURL, {
    timeout: 10000,
    withCredentials: true,
    fetchOptions: { headers: { 'User-Agent': USER_AGENT } },
  });
  const out = { name, vast_url: vastURL, vast_content_encodings: vastEncodings, version: response.version, fired: [], refired: [], tracker_errors: [] };
  out.trackerErrors = out.tracker_errors;
  const ad = response.ads[0];
  if (!ad) {
    out.empty = true;
    return out;
  }
  const creative = linearCreative(ad);
  if (!creative) throw new Error(`${vastURL}: the ad has no linear creative`);
  Object.assign(out, {
    ad_id: ad.id,
    ad_serving_id: ad.adServingId,
    duration: creative.duration,
    media_files: creative.mediaFiles.map((m) => ({ url: m.fileURL, mime_type: m.mimeType, width: m.width, height: m.height })),
    click_through: creative.videoClickThroughURLTemplate ? creative.videoClickThroughURLTemplate.url : null,
    tracking_events: Object.keys(creative.trackingEvents).sort(),
  });
  const clickthrough = await play(name, ad, creative, out.fired, out);
  if (clickthrough) {
    // The player opens the ClickThrough URL (a new window in a browser): one GET, the redirect's target not followed.
    const r = await fetch(clickthrough, { headers: { 'User-Agent': USER_AGENT }, redirect: 'manual' });
    out.clickthrough = { url: clickthrough, status: r.status, location: r.headers.get('location') };
    await r.arrayBuffer();
  }
  await play(name, ad, creative, out.refired, out);
  delete out.trackerErrors;
  return out;
}

async function main() {
  const [vastURL, ...names] = process.argv.slice(2);
  if (!vastURL) {
    process.stderr.write('usage: drive.js VAST_URL [full|skip|closed|unused|error]...\n');
    process.exit(2);
  }
  const client = new VASTClient();
  const scenarios = [];
  for (const name of names.length ? names : ['full', 'skip', 'closed', 'unused', 'error']) {
    scenarios.push(await scenario(client, vastURL, name));
  }
  process.stdout.write(JSON.stringify({ scenarios }, null, 1) + '\n');
}

main().catch((e) => {
  process.stderr.write(`drive.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
