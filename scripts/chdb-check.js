#!/usr/bin/env node
// Runs everything the project ships for ClickHouse on a current engine (chdb, in-process),
// because the tests' server is 18.16 and users run a current one: every migration (and 0003 over
// a database that holds 0001/0002 data: metadata only, old rows valid), every query
// under docs/queries/ and every file named on the command line (e.g. Grafana panel queries),
// then the shipped users.d/config.d files, with the queries run again as the analyst profile.
//
//   node scripts/chdb-check.js [query.sql ...]       (scripts/chdb-check.sh installs chdb first)
//
// chdb is loaded from CHDB_MODULE, from node's usual lookup, or from <repo>/.tools/chdb.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const repo = path.resolve(__dirname, '..');

function loadChdb() {
  const candidates = [process.env.CHDB_MODULE, 'chdb', path.join(repo, '.tools/chdb/node_modules/chdb')];
  for (const c of candidates) {
    if (!c) continue;
    try {
      return require(c);
    } catch (e) {
      if (e.code !== 'MODULE_NOT_FOUND') throw e;
    }
  }
  console.error('chdb-check: chdb not found; run scripts/chdb-check.sh (it installs chdb into .tools/chdb)');
  process.exit(2);
}

// statements mirrors migrations/embed.go's Statements: split on ';' outside quotes and
// comments, drop empty and comment-only pieces. Keep the two in step.
function statements(sql) {
  const out = [];
  let cur = '';
  let inSingle = false, inDouble = false, inBack = false, inLine = false, inBlock = false;
  const flush = () => {
    const s = cur.trim();
    if (s !== '' && !onlyComments(s)) out.push(s);
    cur = '';
  };
  for (let i = 0; i < sql.length; i++) {
    let c = sql[i];
    const next = i + 1 < sql.length ? sql[i + 1] : '';
    if (inLine) {
      if (c === '\n') inLine = false;
    } else if (inBlock) {
      if (c === '*' && next === '/') {
        inBlock = false;
        cur += c;
        i++;
        c = next;
      }
    } else if (inSingle) {
      if (c === '\\' && next !== '') {
        cur += c;
        i++;
        c = next;
      } else if (c === "'") {
        inSingle = false;
      }
    } else if (inDouble) {
      if (c === '"') inDouble = false;
    } else if (inBack) {
      if (c === '`') inBack = false;
    } else if (c === '-' && next === '-') {
      inLine = true;
    } else if (c === '/' && next === '*') {
      inBlock = true;
    } else if (c === "'") {
      inSingle = true;
    } else if (c === '"') {
      inDouble = true;
    } else if (c === '`') {
      inBack = true;
    } else if (c === ';') {
      flush();
      continue;
    }
    cur += c;
  }
  flush();
  return out;
}

function onlyComments(s) {
  return s.split('\n').every((line) => {
    const t = line.trim();
    return t === '' || t.startsWith('--');
  });
}

// minServer mirrors migrations/embed.go: the last "-- adtracker:min-server X.Y" line wins.
function minServer(sql) {
  let min = '';
  const tag = '-- adtracker:min-server ';
  for (const line of sql.split('\n')) {
    const t = line.trim();
    if (t.startsWith(tag)) min = t.slice(tag.length).trim();
  }
  return min;
}

function splitVersion(v) {
  const out = [];
  for (const p of v.trim().split('.')) {
    if (!/^[0-9]+$/.test(p)) break;
    out.push(parseInt(p, 10));
  }
  return out;
}

// serverAtLeast mirrors migrations/embed.go's ServerAtLeast.
function serverAtLeast(version, min) {
  if (min === '') return true;
  const a = splitVersion(version), b = splitVersion(min);
  for (let i = 0; i < b.length; i++) {
    const x = i < a.length ? a[i] : 0;
    if (x !== b[i]) return x > b[i];
  }
  return true;
}

function rel(p) {
  const r = path.relative(repo, path.resolve(p));
  return r === '' || r.startsWith('..') ? path.resolve(p) : r;
}

function sqlFilesUnder(dir) {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sqlFilesUnder(p));
    else if (e.name.endsWith('.sql')) out.push(p);
  }
  return out.sort();
}

function migrationFiles() {
  const dir = path.join(repo, 'migrations/clickhouse');
  const files = fs.readdirSync(dir).filter((n) => n.endsWith('.sql'));
  for (const n of files) {
    if (!/^[0-9]+_/.test(n)) throw new Error(`migration ${n}: name must be NNNN_description.sql`);
  }
  files.sort((x, y) => parseInt(x, 10) - parseInt(y, 10));
  return files.map((n) => path.join(dir, n));
}

function message(e) {
  return String((e && e.message) || e).replace(/^Query failed: /, '').trim();
}

// runFile runs each statement of file; returns null or the failure text.
function runFile(session, file) {
  let stmts;
  try {
    stmts = statements(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    return message(e);
  }
  if (stmts.length === 0) return 'no statement in file';
  for (let i = 0; i < stmts.length; i++) {
    try {
      session.query(stmts[i], 'Null');
    } catch (e) {
      const where = stmts.length > 1 ? ` (statement ${i + 1} of ${stmts.length})` : '';
      return message(e) + where;
    }
  }
  return null;
}

function queryFiles(extra) {
  const files = sqlFilesUnder(path.join(repo, 'docs/queries'));
  for (const f of extra) {
    if (!fs.existsSync(f)) {
      console.error(`FAIL ${f}: no such file`);
      process.exit(1);
    }
    files.push(path.resolve(f));
  }
  return files;
}

// Sample rows so queries run over real parts and the materialized views have fired: a few
// exact rows plus a spread over the last days across ads and event types.
const SAMPLE_EVENTS = [
  `INSERT INTO events (event_id, type, ad_id, event_time, receive_time, ip, user_agent, playback_ms, viewer_id, session_id) VALUES
   ('6f1c2a4e-0b7d-4a53-9d6e-2f1b3c4d5e6f', 'impression', 1, now() - 120, now() - 119, toFixedString(unhex('00000000000000000000ffff7f000001'), 16), 'Mozilla/5.0 (check)', 0, 'viewer-1', 'session-1'),
   ('7a2d3b5f-1c8e-4b64-8e7f-3a2c4d5e6f70', 'click', 1, now() - 60, now() - 59, toFixedString(unhex('00000000000000000000ffff7f000001'), 16), 'Mozilla/5.0 (check)', 1500, 'viewer-1', 'session-1'),
   ('8b3e4c6a-2d9f-4c75-9f80-4b3d5e6f7081', 'complete', 2, now() - 30, now() - 29, toFixedString(unhex('20010db8000000000000000000000001'), 16), 'Mozilla/5.0 (check)', 30000, 'viewer-2', 'session-2')`,
  `INSERT INTO events (event_id, type, ad_id, event_time, receive_time, ip, user_agent, playback_ms, viewer_id, session_id)
   SELECT generateUUIDv4(),
          ['impression', 'impression', 'impression', 'start', 'first_quartile', 'midpoint', 'third_quartile', 'complete', 'click', 'skip'][number % 10 + 1],
          number % 7 + 1,
          now() - number * 173,
          now() - number * 173 + 1,
          toFixedString(unhex(concat('00000000000000000000ffff', lpad(hex(number % 65536), 8, '0'))), 16),
          'Mozilla/5.0 (check)',
          (number % 30) * 1000,
          concat('viewer-', toString(number % 97)),
          concat('session-', toString(number % 211))
   FROM numbers(3000)`,
  // Screened and enriched traffic (0003): every IVT reason, device classes, countries, and the viewability events.
  `INSERT INTO events (event_id, type, ad_id, event_time, receive_time, ip, user_agent, playback_ms, viewer_id, session_id,
                      ivt, device_type, os, browser, country)
   SELECT generateUUIDv4(),
          ['impression', 'impression', 'click', 'start', 'complete', 'viewable', 'not_viewable', 'view_undetermined', 'progress'][number % 9 + 1],
          number % 7 + 1,
          now() - number * 211,
          now() - number * 211 + 1,
          toFixedString(unhex(concat('00000000000000000000ffff', lpad(hex(number % 65536), 8, '0'))), 16),
          'Mozilla/5.0 (check)',
          (number % 30) * 1000,
          concat('viewer-', toString(number % 89)),
          '',
          ['none', 'none', 'none', 'none', 'crawler', 'prefetch', 'deny_ip', 'deny_user_agent', 'duplicate_click'][number % 9 + 1],
          ['desktop', 'mobile', 'tablet', 'tv', 'other', ''][number % 6 + 1],
          ['Windows', 'iOS', 'Android', ''][number % 4 + 1],
          ['Chrome', 'Safari', 'Firefox', ''][number % 4 + 1],
          ['DE', 'US', 'FR', ''][number % 4 + 1]
   FROM numbers(3000)`,
];

// upgradeCheck applies the migrations before 0003 to a database of its own, stores events, then applies the rest: the enum
// extension and the new columns must be metadata only on the current engine too (every part keeps its name and modification time,
// no mutation), old rows read as valid and not enriched, and 0003 runs a second time without error; then the later files, each
// twice, and the rollups and the breakdown of new events count each event once. Returns the failures.
function upgradeCheck(session, files) {
  const q = (sql) => session.query(sql, 'TSVRaw').trim();
  const failures = [];
  const at = files.findIndex((f) => /^0003_/.test(path.basename(f)));
  if (at < 0) return ['migrations/clickhouse: no 0003 file'];
  session.query('CREATE DATABASE upgrade_check');
  session.query('USE upgrade_check');
  try {
    for (const f of files.slice(0, at)) {
      const err = runFile(session, f);
      if (err) return [`${rel(f)} (upgrade check): ${err}`];
    }
    for (let i = 0; i < 2; i++) {
      session.query(`INSERT INTO events (event_id, type, ad_id, event_time, receive_time, ip, user_agent, playback_ms, viewer_id, session_id)
        SELECT generateUUIDv4(), ['impression', 'click', 'start', 'complete'][number % 4 + 1], 1, now() - 86400 + number,
               now() - 86400 + number, toFixedString(unhex('00000000000000000000ffff7f000001'), 16), 'old', 0, 'old', ''
        FROM numbers(1000)`, 'Null');
    }
    const parts = () => q(`SELECT table, name, modification_time FROM system.parts
      WHERE database = 'upgrade_check' AND active AND table != 'schema_migrations' ORDER BY table, name`);
    const before = parts();
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1100); // a rewritten part would show a later second
    {
      const err = runFile(session, files[at]);
      if (err) return [`${rel(files[at])} (upgrade check, over stored events): ${err}`];
    }
    const after = parts();
    if (after !== before) failures.push(`0003 rewrote parts on the current engine:\n${before}\n---\n${after}`);
    const mutations = q("SELECT count() FROM system.mutations WHERE database = 'upgrade_check'");
    if (mutations !== '0') failures.push(`0003 created ${mutations} mutations`);
    const old = q("SELECT count() FROM events WHERE ivt = 'none' AND device_type = '' AND os = '' AND browser = '' AND country = ''");
    if (old !== '2000') failures.push(`${old} of 2000 old rows read as valid and not enriched`);
    const err = runFile(session, files[at]);
    if (err) failures.push(`${rel(files[at])} run a second time: ${err}`);
    // The files after 0003 (0004 replaces its breakdown view), then each once more, as an interrupted run would repeat them.
    for (const f of files.slice(at + 1)) {
      const err = runFile(session, f);
      if (err) return [...failures, `${rel(f)} (upgrade check): ${err}`];
    }
    for (const f of files.slice(at + 1)) {
      const err = runFile(session, f);
      if (err) failures.push(`${rel(f)} run a second time: ${err}`);
    }
    session.query(`INSERT INTO events (event_id, type, ad_id, event_time, receive_time, ip, user_agent, playback_ms, viewer_id,
        session_id, ivt, device_type, os, browser, country)
      SELECT generateUUIDv4(), 'impression', 1, now(), now(), toFixedString(unhex('00000000000000000000ffff7f000001'), 16), 'new',
             0, 'new', '', ['none', 'crawler'][number % 2 + 1], 'mobile', 'iOS', 'Safari', 'DE'
      FROM numbers(10)`, 'Null');
    const got = q(`SELECT sum(impressions), sum(invalid_impressions), sum(events_total) FROM ad_stats_hour WHERE ad_id = 1`);
    if (got !== '505\t5\t10') failures.push(`rollups after the upgrade: impressions, invalid, events_total = ${got}, want 505 5 10`);
    const split = q(`SELECT dimension, value, sum(impressions) FROM ad_breakdown_hour WHERE ad_id = 1 GROUP BY dimension, value
      ORDER BY dimension, value FORMAT CSV`);
    const want = '"browser","Safari",5\n"country","DE",5\n"device_type","mobile",5\n"ivt","crawler",5\n"ivt","none",5\n"os","iOS",5';
    if (split !== want) failures.push(`breakdown after the upgrade:\n${split}\nwant\n${want}`);
  } finally {
    session.query('USE default');
    session.query('DROP DATABASE upgrade_check');
  }
  return failures;
}

function mainCheck(extra) {
  const chdb = loadChdb();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'adtracker-chdb-'));
  let failed = 0;
  try {
    const session = new chdb.Session(dir);
    try {
      const version = session.query('SELECT version()', 'TSVRaw').trim();
      console.log(`chdb ClickHouse ${version}`);
      const upgrade = upgradeCheck(session, migrationFiles());
      for (const f of upgrade) console.error(`FAIL ${f}`);
      if (upgrade.length) return 1;
      console.log('OK   migrations/clickhouse/0003 over stored events (metadata only: parts unchanged, no mutation; old rows valid; runs twice), then the later files twice, each event counted once');

      session.query('CREATE DATABASE IF NOT EXISTS adtracker');
      session.query('USE adtracker');

      for (const f of migrationFiles()) {
        const sql = fs.readFileSync(f, 'utf8');
        const min = minServer(sql);
        if (!serverAtLeast(version, min)) {
          console.log(`SKIP ${rel(f)} (needs ${min})`);
          continue;
        }
        const err = runFile(session, f);
        if (err) {
          // Later migrations and every query build on this one: stop here.
          console.error(`FAIL ${rel(f)}: ${err}`);
          return 1;
        }
        console.log(`OK   ${rel(f)}`);
      }

      // The cluster form of each migration cannot run here (no Keeper, no remote_servers), but it must parse on a current server;
      // it runs for real on 18.16 in make test's loopback-cluster tests.
      const clusterDir = path.join(repo, 'migrations/clickhouse/cluster');
      for (const f of sqlFilesUnder(clusterDir)) {
        const sql = fs.readFileSync(f, 'utf8').replaceAll('${CLUSTER}', 'adtracker').replaceAll('${DATABASE}', 'adtracker');
        const stmts = statements(sql);
        let err = stmts.length === 0 ? 'no statement in file' : null;
        for (let i = 0; i < stmts.length && !err; i++) {
          const lit = "'" + stmts[i].replaceAll('\\', '\\\\').replaceAll("'", "\\'") + "'";
          try {
            session.query(`SELECT formatQuery(${lit})`, 'Null');
          } catch (e) {
            err = `${message(e)} (statement ${i + 1} of ${stmts.length})`;
          }
        }
        if (err) {
          console.error(`FAIL ${rel(f)} (parse only): ${err}`);
          failed++;
        } else {
          console.log(`OK   ${rel(f)} (parse only)`);
        }
      }

      // A database the analyst must not read (allow_databases lists adtracker only).
      session.query('CREATE DATABASE chdb_check_other');
      session.query('CREATE TABLE chdb_check_other.t (x UInt8) ENGINE = MergeTree ORDER BY x');

      for (const q of SAMPLE_EVENTS) {
        try {
          session.query(q, 'Null');
        } catch (e) {
          console.error(`FAIL sample rows for events (scripts/chdb-check.js): ${message(e)}`);
          return 1;
        }
      }

      for (const f of queryFiles(extra)) {
        const err = runFile(session, f);
        if (err) {
          console.error(`FAIL ${rel(f)}: ${err}`);
          failed++;
        } else {
          console.log(`OK   ${rel(f)}`);
        }
      }
    } finally {
      session.close();
    }
    if (failed) return 1;

    // chdb binds one configuration per process, so the analyst check runs in a fresh one
    // over the same data directory.
    const r = spawnSync(process.execPath, [__filename, '--as-analyst', dir, ...extra], { stdio: 'inherit' });
    if (r.error) throw r.error;
    return r.status === 0 ? 0 : 1;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function copyXml(fromDir, toDir) {
  const out = [];
  if (!fs.existsSync(fromDir)) return out;
  for (const n of fs.readdirSync(fromDir).filter((x) => x.endsWith('.xml')).sort()) {
    fs.copyFileSync(path.join(fromDir, n), path.join(toDir, n));
    out.push(path.join(fromDir, n));
  }
  return out;
}

// analystCheck loads the shipped config.d and users.d files (plus the current-server-only
// users.d) into the engine with the session's user given the analyst profile and database
// list, then checks the promises analyst.xml makes and runs the queries again under them.
function analystCheck(dir, extra) {
  const cfg = fs.mkdtempSync(path.join(os.tmpdir(), 'adtracker-chdb-cfg-'));
  try {
    fs.mkdirSync(path.join(cfg, 'config.d'));
    fs.mkdirSync(path.join(cfg, 'users.d'));
    const shipped = [
      ...copyXml(path.join(repo, 'clickhouse/config.d'), path.join(cfg, 'config.d')),
      ...copyXml(path.join(repo, 'clickhouse/users.d'), path.join(cfg, 'users.d')),
      ...copyXml(path.join(repo, 'clickhouse/current/users.d'), path.join(cfg, 'users.d')),
    ];
    fs.writeFileSync(path.join(cfg, 'config.xml'),
      `<clickhouse>\n  <users_config>${path.join(cfg, 'users.xml')}</users_config>\n</clickhouse>\n`);
    // chdb runs every query as "default"; giving that user the analyst's profile and
    // databases is how the analyst's limits get exercised in-process.
    fs.writeFileSync(path.join(cfg, 'users.xml'), `<clickhouse>
  <profiles><default/></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>::/0</ip></networks>
      <profile>analyst</profile>
      <quota>default</quota>
      <allow_databases><database>adtracker</database></allow_databases>
    </default>
  </users>
  <quotas><default/></quotas>
</clickhouse>
`);
    process.env.CLICKHOUSE_ANALYST_PASSWORD = process.env.CLICKHOUSE_ANALYST_PASSWORD || 'analyst';
    const chdb = loadChdb();
    let session;
    try {
      session = new chdb.Session(dir, { connectionArgs: [`--config-file=${path.join(cfg, 'config.xml')}`] });
    } catch (e) {
      console.error(`FAIL ${shipped.map(rel).join(', ')}: the engine refused this configuration: ${message(e)}`);
      return 1;
    }
    let failed = 0;
    const expect = (what, sql, wantError) => {
      let err = null;
      try {
        session.query(sql, 'Null');
      } catch (e) {
        err = message(e);
      }
      if (wantError && err === null) {
        console.error(`FAIL clickhouse/users.d: as analyst, ${what} succeeded; it must be refused`);
        failed++;
      } else if (wantError && !wantError.test(err)) {
        console.error(`FAIL clickhouse/users.d: as analyst, ${what} failed for another reason than expected: ${err}`);
        failed++;
      } else if (!wantError && err !== null) {
        console.error(`FAIL clickhouse/users.d: as analyst, ${what} failed: ${err}`);
        failed++;
      }
    };
    try {
      session.query('USE adtracker');
      expect('SELECT from adtracker.events', 'SELECT count() FROM adtracker.events', null);
      expect('INSERT', "INSERT INTO adtracker.events (ad_id) VALUES (1)", /READONLY|readonly/);
      expect('CREATE TABLE', 'CREATE TABLE adtracker.analyst_probe (x UInt8) ENGINE = Memory', /READONLY|readonly/);
      expect('DROP TABLE', 'DROP TABLE adtracker.events', /READONLY|readonly/);
      expect('SET readonly = 0', 'SET readonly = 0', /READONLY|readonly/);
      expect('SET max_execution_time = 29 (what Grafana sends)', 'SET max_execution_time = 29', null);
      expect('SET max_memory_usage above the limit', 'SET max_memory_usage = 8000000000', /CONSTRAINT/);
      expect('SET max_result_rows above the limit', 'SET max_result_rows = 2000000', /CONSTRAINT/);
      expect('SET result_overflow_mode', "SET result_overflow_mode = 'break'", /CONSTRAINT/);
      expect('reading another database', 'SELECT count() FROM chdb_check_other.t', /ACCESS_DENIED|privileges/);
      if (failed === 0) console.log(`OK   ${shipped.map(rel).join(', ')} (analyst: reads allowed, writes and limit changes refused)`);
      for (const f of queryFiles(extra)) {
        const err = runFile(session, f);
        if (err) {
          console.error(`FAIL ${rel(f)} as analyst: ${err}`);
          failed++;
        } else {
          console.log(`OK   ${rel(f)} as analyst`);
        }
      }
    } finally {
      session.close();
    }
    return failed ? 1 : 0;
  } finally {
    fs.rmSync(cfg, { recursive: true, force: true });
  }
}

function main() {
  const args = process.argv.slice(2);
  if (args[0] === '--as-analyst') return analystCheck(args[1], args.slice(2));
  if (args.some((a) => a === '-h' || a === '--help')) {
    console.log('usage: node scripts/chdb-check.js [query.sql ...]');
    return 0;
  }
  return mainCheck(args);
}

if (require.main === module) {
  try {
    process.exitCode = main();
  } catch (e) {
    console.error(`chdb-check: ${e && e.stack ? e.stack : e}`);
    process.exitCode = 1;
  }
}

module.exports = { statements, minServer, serverAtLeast };
