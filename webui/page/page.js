// The rescue's recovery page. Everything it shows comes from the device's
// event stream (api/events): no polling. docs/web.md says what it does.
'use strict';
const $ = id => document.getElementById(id);
let signedIn = false, password = false, status = {}, job = null;
let mine = null; // this page's upload: {xhr, ended}
let weights = [], done = [], step = 0, frac = 0;

function text(el, s, cls) { el.textContent = s || ''; el.className = 'msg ' + (cls || ''); }
function size(n) {
  if (n >= 1e9) return (n / 1e9).toFixed(2) + ' GB';
  if (n >= 1e6) return (n / 1e6).toFixed(1) + ' MB';
  if (n >= 1e3) return (n / 1e3).toFixed(1) + ' kB';
  return n + ' B';
}
function row(id, v) {
  const dd = $(id);
  dd.textContent = v || '';
  dd.hidden = dd.previousElementSibling.hidden = !v;
}
function busy() { return !!job && job.state === 'running'; }

function render() {
  $('board').textContent = status.board || 'Unknown board';
  row('serial', status.serial);
  row('reason', status.reason);
  row('installed', [status.product, status.version].filter(Boolean).join(' '));
  row('last-error', status.last_error);
  row('now', status.activity);
  $('signin').hidden = signedIn;
  $('signin-help').textContent = password ? 'Type the device\'s password.' : 'Type the code shown on the device\'s console.';
  $('code').type = password ? 'password' : 'text';
  $('install-box').hidden = !signedIn;
  $('reset-box').hidden = !signedIn || !status.can_reset;
  $('install').disabled = !!mine;
  $('reset').disabled = $('reset-yes').disabled = busy();
  const over = job && job.state === 'done' && job.kind !== 'reboot';
  $('reboot').hidden = !(signedIn && over);
}

// Progress: each step weighs its image's size (all alike when none has
// one), so the bar moves as the bytes do.
function setInstall(pct, what) {
  $('install-bar').value = pct;
  $('install-text').textContent = Math.floor(pct) + '%' + (what ? ' · ' + what : '');
}
function overall() {
  const total = weights.reduce((a, b) => a + b, 0) || 1;
  let sum = 0;
  weights.forEach((w, i) => { if (done[i]) sum += w; else if (i + 1 === step) sum += w * frac; });
  return Math.min(100, 100 * sum / total);
}
function resetProgress() {
  weights = []; done = []; step = 0; frac = 0;
  $('upload-bar').value = 0; $('upload-text').textContent = '';
  setInstall(0, 'waiting for the bundle');
}

function onJob(m) {
  job = m;
  const res = m.kind === 'factory-reset' ? $('reset-msg') : $('result');
  if (m.state === 'running') {
    if (m.kind === 'install') {
      resetProgress();
      $('progress').hidden = false;
      text($('result'), 'Installing the bundle uploaded ' + m.from + '…');
    } else if (m.kind === 'factory-reset') {
      text(res, 'Erasing the data…');
    } else {
      text($('result'), 'Rebooting: the device is starting the installed system. This page stops here.', 'ok');
    }
    return;
  }
  if (m.state === 'done') {
    if (m.kind === 'install') {
      setInstall(100, 'done');
      text(res, 'Installed ' + [m.product, m.version].filter(Boolean).join(' ') + '. Reboot into it when you are ready.', 'ok');
    } else if (m.kind === 'factory-reset') {
      text(res, 'Factory reset done: the device\'s data is erased.', 'ok');
    }
  } else {
    let s = m.error;
    if (m.cut) s += '. The connection dropped after ' + size(m.received) + (m.size > 0 ? ' of ' + size(m.size) : '') +
      ': nothing unverified was written, and the device is waiting for the next try.';
    text(res, s, 'err');
  }
  if (mine && m.kind === 'install') { mine.ended = true; if (m.state === 'failed') mine.xhr.abort(); mine = null; }
}

function onInstall(m) {
  if (job && job.kind === 'factory-reset' && busy()) {
    if (m.event === 'step-start') text($('reset-msg'), 'Erasing ' + m.target + '…');
    return;
  }
  switch (m.event) {
  case 'start':
    if (!busy()) { resetProgress(); $('progress').hidden = false; }
    text($('result'), 'Installing ' + m.product + ' ' + m.version + (busy() ? ' uploaded ' + job.from : ' from ' + m.bundle) + '…');
    setInstall(0, 'signature verified');
    break;
  case 'plan':
    weights = m.steps.map(s => s.type === 'image' ? (s.image_size || 0) : 0);
    if (!weights.some(w => w > 0)) weights = m.steps.map(() => 1);
    done = m.steps.map(() => false);
    setInstall(0, 'checked: ' + m.steps.length + ' steps');
    break;
  case 'step-start':
    step = m.step; frac = 0;
    setInstall(overall(), 'step ' + m.step + ' of ' + m.steps + ': ' + m.type + ' ' + m.target);
    break;
  case 'progress':
    step = m.step; frac = m.percent / 100;
    setInstall(overall(), 'step ' + m.step + ' of ' + m.steps + ', ' + size(m.bytes_per_second) + '/s');
    break;
  case 'step-done':
    done[m.step - 1] = true; frac = 0;
    setInstall(overall(), 'step ' + m.step + ' of ' + m.steps + ' done');
    break;
  case 'done':
    setInstall(100, 'written and verified');
    break;
  case 'error':
    if (!busy()) text($('result'), m.reason, 'err');
    break;
  }
}

function handle(m) {
  switch (m.event) {
  case 'hello':
    signedIn = m.authorized; password = m.password;
  // fall through
  case 'status':
    status = m.status || {}; job = m.job;
    break;
  case 'job': onJob(m); break;
  case 'received':
    $('upload-bar').value = m.size > 0 ? 100 * m.received / m.size : 0;
    $('upload-text').textContent = size(m.received) + (m.size > 0 ? ' of ' + size(m.size) : '');
    break;
  default: onInstall(m);
  }
  render();
}

function connect() {
  const es = new EventSource('api/events');
  es.onopen = () => { $('conn').textContent = 'live'; $('conn').className = 'live'; };
  es.onerror = () => { $('conn').textContent = 'reconnecting…'; $('conn').className = ''; };
  es.onmessage = e => { let m; try { m = JSON.parse(e.data); } catch (x) { return; } handle(m); };
}

async function post(path, body) {
  const r = await fetch(path, {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body || {})});
  let j = {};
  try { j = await r.json(); } catch (x) { /* no body */ }
  return {ok: r.ok, status: r.status, error: j.error || ('HTTP ' + r.status), retry: j.retry_after || 0};
}

$('login-form').onsubmit = async e => {
  e.preventDefault();
  const r = await post('api/login', {code: $('code').value}).catch(x => ({error: 'the device does not answer: ' + x.message}));
  if (r.ok) { signedIn = true; $('code').value = ''; text($('login-msg'), ''); render(); return; }
  text($('login-msg'), r.error, 'err');
  if (r.retry) {
    $('login').disabled = true;
    setTimeout(() => { $('login').disabled = false; }, r.retry * 1000);
  }
};

$('upload-form').onsubmit = e => {
  e.preventDefault();
  const f = $('file').files[0];
  if (!f || mine) return;
  const xhr = new XMLHttpRequest();
  mine = {xhr, ended: false};
  const me = mine;
  text($('result'), 'Uploading ' + f.name + ' (' + size(f.size) + ')…');
  xhr.open('PUT', 'api/bundle');
  xhr.setRequestHeader('Content-Type', 'application/octet-stream');
  xhr.onload = () => {
    let j = {};
    try { j = JSON.parse(xhr.responseText); } catch (x) { /* no body */ }
    if (xhr.status === 401) signedIn = false;
    if (xhr.status >= 400 && !me.ended) text($('result'), j.error || ('HTTP ' + xhr.status), 'err');
    if (mine === me) mine = null;
    render();
  };
  xhr.onerror = () => {
    if (!me.ended) text($('result'), 'The connection to the device was lost during the upload: nothing unverified was written, and the device is waiting for the next try.', 'err');
    if (mine === me) mine = null;
    render();
  };
  xhr.send(f); // the browser streams the file from disk
  render();
};

$('reset').onclick = () => { $('reset-confirm').hidden = false; };
$('reset-no').onclick = () => { $('reset-confirm').hidden = true; };
$('reset-yes').onclick = async () => {
  $('reset-confirm').hidden = true;
  const r = await post('api/factory-reset', {confirm: true}).catch(x => ({error: x.message}));
  if (!r.ok && !(job && job.kind === 'factory-reset' && job.state === 'failed')) text($('reset-msg'), r.error, 'err');
};
$('reboot').onclick = async () => {
  const r = await post('api/reboot').catch(x => ({error: x.message}));
  if (!r.ok) text($('result'), r.error, 'err');
};

render();
connect();
