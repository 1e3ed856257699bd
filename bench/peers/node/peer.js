#!/usr/bin/env node
// The Node.js baseline of `make bench`: the three campaigns of
// rules/packs/relationship, built the way a Node shop would: conditions as
// json-rules-engine rules, customer profiles in a Map in front of LevelDB
// (classic-level) written back in batches, a heap of timers, and kafkajs for
// a live source.
//
// Semantics are those of docs/rule-language.md, "How campaigns run" (see
// bench/peers/python/peer.py for the same in Python): timers fire in
// (due, customer, campaign) order before an event later than the stream
// clock, and at the end of the input up to the final clock.
//
// Usage: node peer.js --events FILE --state DIR --out FILE [--fresh]
//        node peer.js --kafka BOOTSTRAP --topic T --max-events N --state DIR --out FILE
'use strict';

const fs = require('fs');
const readline = require('readline');
const crypto = require('crypto');
const { Engine } = require('json-rules-engine');
const { ClassicLevel } = require('classic-level');

const DAY_MS = 86400000;
const THANK_YOU = 'post-purchase-thank-you';
const REFERRAL = 'referral-request';
const LAPSED = 'lapsed-visitor';
const REFERRAL_DELAY_MS = 2 * DAY_MS;
const LAPSE_MS = 30 * DAY_MS;

function parseArgs(argv) {
  const args = { commitEvery: 100000, cacheCapacity: 1 << 20, topic: 'events', secret: 'node-peer-secret' };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--events') args.events = next();
    else if (a === '--kafka') args.kafka = next();
    else if (a === '--topic') args.topic = next();
    else if (a === '--max-events') args.maxEvents = Number(next());
    else if (a === '--state') args.state = next();
    else if (a === '--out') args.out = next();
    else if (a === '--commit-every') args.commitEvery = Number(next());
    else if (a === '--cache-capacity') args.cacheCapacity = Number(next());
    else if (a === '--fresh') args.fresh = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!args.state || !args.out || !!args.events === !!args.kafka) {
    throw new Error('usage: peer.js (--events FILE | --kafka BOOTSTRAP --topic T) --state DIR --out FILE [--fresh]');
  }
  return args;
}

function parseTs(v) {
  if (typeof v === 'number') return v;
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new Error(`bad ts ${v}`);
  return ms;
}

const formatTs = (ms) => new Date(ms).toISOString();

// The default loyalty ladder: the last stage whose condition holds.
function stageOf(p) {
  let stage = 'prospect';
  if (p.purchases >= 1) stage = 'customer';
  if (p.purchases >= 2) stage = 'client';
  if (p.purchases >= 3) stage = 'supporter';
  if (p.referrals >= 1) stage = 'advocate';
  if (p.referrals >= 3 && p.purchases >= 5) stage = 'partner';
  return stage;
}

// A binary min-heap of [due, customer, campaign].
class TimerHeap {
  constructor() {
    this.items = [];
  }
  static less(a, b) {
    if (a[0] !== b[0]) return a[0] < b[0];
    if (a[1] !== b[1]) return a[1] < b[1];
    return a[2] < b[2];
  }
  get size() {
    return this.items.length;
  }
  peek() {
    return this.items[0];
  }
  push(item) {
    const h = this.items;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!TimerHeap.less(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }
  pop() {
    const h = this.items;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && TimerHeap.less(h[l], h[m])) m = l;
        if (r < h.length && TimerHeap.less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

function newProfile() {
  return {
    visits: 0, purchases: 0, referrals: 0, others: 0,
    firstSeen: null, lastSeen: null, lastVisit: null, lastPurchase: null,
    spentCents: 0, stage: 'prospect', fired: [], timers: {},
  };
}

class Store {
  constructor(path, capacity) {
    this.db = new ClassicLevel(path, { valueEncoding: 'json' });
    this.cache = new Map();
    this.dirty = new Set();
    this.timerWrites = new Map(); // key -> true (put) / false (delete)
    this.capacity = capacity;
  }
  async get(customer) {
    let p = this.cache.get(customer);
    if (p === undefined) {
      p = (await this.db.get(`p/${customer}`)) ?? newProfile();
      this.cache.set(customer, p);
    }
    return p;
  }
  static timerKey(due, customer, campaign) {
    return `t/${due.toString(16).padStart(16, '0')}/${customer}/${campaign}`;
  }
  async commit(clock, position) {
    const ops = [];
    for (const customer of this.dirty) ops.push({ type: 'put', key: `p/${customer}`, value: this.cache.get(customer) });
    for (const [key, put] of this.timerWrites) ops.push(put ? { type: 'put', key, value: '' } : { type: 'del', key });
    ops.push({ type: 'put', key: 'm/clock', value: clock });
    ops.push({ type: 'put', key: 'm/position', value: position });
    await this.db.batch(ops);
    this.dirty.clear();
    this.timerWrites.clear();
    if (this.cache.size > this.capacity) this.cache.clear(); // all clean now
  }
}

// The campaigns' conditions and rechecks, as json-rules-engine rules.
function makeEngines() {
  const onPurchase = new Engine([], { allowUndefinedFacts: true });
  onPurchase.addRule({
    name: THANK_YOU,
    conditions: { all: [{ fact: 'purchases', operator: 'equal', value: 1 }] },
    event: { type: THANK_YOU },
  });
  onPurchase.addRule({
    name: REFERRAL,
    conditions: { all: [{ fact: 'purchases', operator: 'equal', value: 3 }] },
    event: { type: REFERRAL },
  });
  const lapsed = new Engine([], { allowUndefinedFacts: true });
  lapsed.addRule({
    conditions: { all: [{ fact: 'visits', operator: 'greaterThanInclusive', value: 2 }] },
    event: { type: LAPSED },
  });
  const referralRecheck = new Engine([], { allowUndefinedFacts: true });
  referralRecheck.addRule({
    conditions: { all: [{ fact: 'referrals', operator: 'equal', value: 0 }] },
    event: { type: REFERRAL },
  });
  return { onPurchase, lapsed, referralRecheck };
}

class Runner {
  constructor(store, out, secret) {
    this.store = store;
    this.out = out;
    this.secret = secret;
    this.engines = makeEngines();
    this.timers = new TimerHeap();
    this.clock = null;
    this.actions = 0;
    this.buffer = [];
  }

  coupon(prefix, campaign, customer, ts) {
    const digest = crypto.createHmac('sha256', this.secret).update(`${campaign}|${customer}|${ts}|${prefix}`).digest('hex');
    return `${prefix}-${digest.slice(0, 10).toUpperCase()}`;
  }

  emit(campaign, customer, ts, channel, template, payload, trigger) {
    this.buffer.push(JSON.stringify({
      campaign, customer_id: customer, ts: formatTs(ts), channel, template, payload, trigger, held_out: false,
    }));
    this.actions++;
    if (this.buffer.length >= 4096) this.flushOut();
  }

  flushOut() {
    if (this.buffer.length === 0) return;
    fs.writeSync(this.out, this.buffer.join('\n') + '\n');
    this.buffer = [];
  }

  arm(profile, customer, campaign, due) {
    const old = profile.timers[campaign];
    if (old !== undefined) this.store.timerWrites.set(Store.timerKey(old, customer, campaign), false);
    profile.timers[campaign] = due;
    this.store.timerWrites.set(Store.timerKey(due, customer, campaign), true);
    this.timers.push([due, customer, campaign]);
  }

  async fireDue(t) {
    while (this.timers.size > 0 && this.timers.peek()[0] <= t) {
      const [due, customer, campaign] = this.timers.pop();
      const profile = await this.store.get(customer);
      if (profile.timers[campaign] !== due) continue; // replaced by a later visit
      delete profile.timers[campaign];
      this.store.timerWrites.set(Store.timerKey(due, customer, campaign), false);
      this.store.dirty.add(customer);
      if (campaign === LAPSED) {
        const { events } = await this.engines.lapsed.run({ visits: profile.visits });
        if (events.length === 0) continue;
        this.emit(LAPSED, customer, due, 'email', 'we-miss-you',
          { visits: profile.visits, last_visit: formatTs(profile.lastVisit), stage: profile.stage },
          { kind: 'inactivity', event_type: 'visit', inactive_since: formatTs(profile.lastVisit) });
      } else if (campaign === REFERRAL) {
        const { events } = await this.engines.referralRecheck.run({ referrals: profile.referrals });
        if (events.length === 0 || profile.fired.includes(REFERRAL)) continue;
        profile.fired.push(REFERRAL);
        this.emit(REFERRAL, customer, due, 'email', 'refer-a-friend', {
          referral_code: this.coupon('REFER', REFERRAL, customer, due),
          reward_for_you: '15% off your next order',
          reward_for_your_friend: '15% off their first order',
          purchases: profile.purchases,
        }, { kind: 'delay', armed_at: formatTs(due - REFERRAL_DELAY_MS) });
      }
    }
  }

  async apply(event) {
    const ts = parseTs(event.ts);
    if (this.clock === null || ts > this.clock) {
      await this.fireDue(ts);
      this.clock = ts;
    }
    const customer = event.customer_id;
    const profile = await this.store.get(customer);
    this.store.dirty.add(customer);
    if (profile.firstSeen === null || ts < profile.firstSeen) profile.firstSeen = ts;
    if (profile.lastSeen === null || ts > profile.lastSeen) profile.lastSeen = ts;
    switch (event.type) {
      case 'visit':
        profile.visits++;
        if (profile.lastVisit === null || ts > profile.lastVisit) profile.lastVisit = ts;
        break;
      case 'purchase':
        profile.purchases++;
        if (profile.lastPurchase === null || ts > profile.lastPurchase) profile.lastPurchase = ts;
        profile.spentCents += Math.round(event.amount * 100);
        break;
      case 'referral':
        profile.referrals++;
        break;
      default:
        profile.others++;
    }
    profile.stage = stageOf(profile);

    if (event.type === 'visit') {
      this.arm(profile, customer, LAPSED, profile.lastVisit + LAPSE_MS);
    } else if (event.type === 'purchase') {
      const { events } = await this.engines.onPurchase.run({ purchases: profile.purchases });
      for (const { type } of events) {
        if (type === THANK_YOU && !profile.fired.includes(THANK_YOU)) {
          profile.fired.push(THANK_YOU);
          const trigger = { kind: 'event', event_type: 'purchase' };
          if (event.event_id !== undefined) trigger.event_id = event.event_id;
          this.emit(THANK_YOU, customer, ts, 'email', 'thank-you-first-order', {
            order_id: event.order_id,
            order_amount: event.amount,
            discount_code: this.coupon('THANKS', THANK_YOU, customer, ts),
            discount_percent: 10,
            valid_until: formatTs(ts + 30 * DAY_MS).slice(0, 10),
          }, trigger);
        } else if (type === REFERRAL && profile.timers[REFERRAL] === undefined && !profile.fired.includes(REFERRAL)) {
          this.arm(profile, customer, REFERRAL, ts + REFERRAL_DELAY_MS);
        }
      }
    }
  }
}

async function* fileLines(path) {
  const rl = readline.createInterface({ input: fs.createReadStream(path), crlfDelay: Infinity });
  for await (const line of rl) yield line;
}

async function* kafkaLines(bootstrap, topic, maxEvents) {
  const { Kafka, logLevel } = require('kafkajs');
  const kafka = new Kafka({ clientId: 'node-peer', brokers: bootstrap.split(','), logLevel: logLevel.WARN });
  const consumer = kafka.consumer({ groupId: 'node-peer' });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const queue = [];
  let wake = null;
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ message }) => {
      queue.push(message.value.toString());
      if (wake) wake();
    },
  });
  let seen = 0;
  try {
    while (maxEvents === undefined || seen < maxEvents) {
      if (queue.length === 0) await new Promise((resolve) => { wake = resolve; });
      wake = null;
      while (queue.length > 0 && (maxEvents === undefined || seen < maxEvents)) {
        seen++;
        yield queue.shift();
      }
    }
  } finally {
    await consumer.disconnect();
  }
}

async function main() {
  const args = parseArgs(process.argv);
  if (args.fresh) fs.rmSync(args.state, { recursive: true, force: true });
  const store = new Store(args.state, args.cacheCapacity);
  await store.db.open();
  const out = fs.openSync(args.out, 'w');
  const runner = new Runner(store, out, args.secret);
  const lines = args.events ? fileLines(args.events) : kafkaLines(args.kafka, args.topic, args.maxEvents);
  let applied = 0;
  let rejected = 0;
  for await (const line of lines) {
    let event;
    try {
      event = JSON.parse(line);
      if (typeof event.customer_id !== 'string' || typeof event.type !== 'string') throw new Error('no customer or type');
      if (event.type === 'purchase' && typeof event.amount !== 'number') throw new Error('no amount');
      parseTs(event.ts);
    } catch (e) {
      rejected++;
      continue;
    }
    await runner.apply(event);
    applied++;
    if (applied % args.commitEvery === 0) await store.commit(runner.clock, applied + rejected);
  }
  if (runner.clock !== null) await runner.fireDue(runner.clock);
  await store.commit(runner.clock, applied + rejected);
  runner.flushOut();
  fs.closeSync(out);
  await store.db.close();
  process.stderr.write(`node peer: ${applied} events applied, ${rejected} rejected, ${runner.actions} actions\n`);
}

main().catch((e) => {
  process.stderr.write(`node peer: ${e.stack || e}\n`);
  process.exit(2);
});
