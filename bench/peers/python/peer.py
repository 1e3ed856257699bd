#!/usr/bin/python3
"""The Python baseline of `make bench`: the three campaigns of
rules/packs/relationship written by hand, the way a Python shop would build
them: the standard json module, a dict in front of LevelDB (plyvel) as the
customer store, a heap of timers, write batches every --commit-every events.

Semantics are those of docs/rule-language.md, "How campaigns run":
- the stream clock is the largest event time; before an event later than the
  clock, every timer due at or before it fires, in (due, customer, campaign)
  order; at the end of the input the clock's due timers fire;
- post-purchase-thank-you: on a purchase, if it is the customer's first
  (counted after the event) and it never fired for them, fire now;
- referral-request: on the third purchase, unless a delay is pending or it
  already fired, wait 2 days; then, if the customer still has no referral,
  fire (a failed recheck does not use up once_per_customer);
- lapsed-visitor: every visit (re)arms a timer due 30 days after the latest
  visit; when it comes due and the customer had 2 visits or more, fire.

Sources: --events FILE (JSON lines; what the benchmark uses) or --kafka
BOOTSTRAP --topic TOPIC (confluent-kafka consumer, until --max-events).
Actions are written as JSON lines to --out.
"""
import argparse
import datetime
import hashlib
import heapq
import hmac
import json
import shutil
import sys

import plyvel

DAY_MS = 86_400_000
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
ONE_MS = datetime.timedelta(milliseconds=1)

THANK_YOU = "post-purchase-thank-you"
REFERRAL = "referral-request"
LAPSED = "lapsed-visitor"
REFERRAL_DELAY_MS = 2 * DAY_MS
LAPSE_MS = 30 * DAY_MS

# The default loyalty ladder: the last stage whose condition holds.
LADDER = [
    ("prospect", lambda p: True),
    ("customer", lambda p: p["purchases"] >= 1),
    ("client", lambda p: p["purchases"] >= 2),
    ("supporter", lambda p: p["purchases"] >= 3),
    ("advocate", lambda p: p["referrals"] >= 1),
    ("partner", lambda p: p["referrals"] >= 3 and p["purchases"] >= 5),
]


def parse_ts(value):
    if isinstance(value, int):
        return value
    return (datetime.datetime.fromisoformat(value) - EPOCH) // ONE_MS


def format_ts(ms):
    return (EPOCH + ms * ONE_MS).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_profile():
    return {
        "visits": 0, "purchases": 0, "referrals": 0, "others": 0,
        "first_seen": None, "last_seen": None, "last_visit": None, "last_purchase": None,
        "spent_cents": 0, "stage": "prospect",
        "fired": [],       # campaigns limited to once per customer that fired
        "timers": {},      # campaign -> due (ms) of the pending timer
    }


class Store:
    """Profiles cached in a dict and written back to LevelDB in batches."""

    def __init__(self, path, cache_capacity):
        self.db = plyvel.DB(path, create_if_missing=True)
        self.cache = {}
        self.dirty = set()
        self.timer_writes = {}  # timer key -> True (put) / False (delete)
        self.capacity = cache_capacity

    def get(self, customer):
        p = self.cache.get(customer)
        if p is None:
            raw = self.db.get(b"p/" + customer.encode())
            p = json.loads(raw) if raw is not None else new_profile()
            self.cache[customer] = p
        return p

    def touch(self, customer):
        self.dirty.add(customer)

    @staticmethod
    def timer_key(due, customer, campaign):
        return b"t/%016x/%s/%s" % (due, customer.encode(), campaign.encode())

    def commit(self, clock, position):
        with self.db.write_batch() as batch:
            for customer in self.dirty:
                batch.put(b"p/" + customer.encode(), json.dumps(self.cache[customer]).encode())
            for key, put in self.timer_writes.items():
                if put:
                    batch.put(key, b"")
                else:
                    batch.delete(key)
            batch.put(b"m/clock", str(clock).encode())
            batch.put(b"m/position", str(position).encode())
        self.dirty.clear()
        self.timer_writes.clear()
        if len(self.cache) > self.capacity:
            self.cache.clear()  # everything is clean now

    def close(self):
        self.db.close()


class Engine:
    def __init__(self, store, out, secret):
        self.store = store
        self.out = out
        self.secret = secret.encode()
        self.timers = []  # heap of (due, customer, campaign)
        self.clock = None
        self.actions = 0

    def coupon(self, prefix, campaign, customer, ts):
        digest = hmac.new(self.secret, f"{campaign}|{customer}|{ts}|{prefix}".encode(), hashlib.sha256).hexdigest()
        return f"{prefix}-{digest[:10].upper()}"

    def emit(self, campaign, customer, ts, channel, template, payload, trigger):
        action = {"campaign": campaign, "customer_id": customer, "ts": format_ts(ts), "channel": channel,
                  "template": template, "payload": payload, "trigger": trigger, "held_out": False}
        self.out.write(json.dumps(action, separators=(",", ":")))
        self.out.write("\n")
        self.actions += 1

    def arm(self, profile, customer, campaign, due):
        old = profile["timers"].get(campaign)
        if old is not None:
            self.store.timer_writes[Store.timer_key(old, customer, campaign)] = False
        profile["timers"][campaign] = due
        self.store.timer_writes[Store.timer_key(due, customer, campaign)] = True
        heapq.heappush(self.timers, (due, customer, campaign))

    def fire_due(self, t):
        while self.timers and self.timers[0][0] <= t:
            due, customer, campaign = heapq.heappop(self.timers)
            profile = self.store.get(customer)
            if profile["timers"].get(campaign) != due:
                continue  # replaced by a later visit
            del profile["timers"][campaign]
            self.store.timer_writes[Store.timer_key(due, customer, campaign)] = False
            self.store.touch(customer)
            if campaign == LAPSED:
                if profile["visits"] >= 2:
                    self.emit(LAPSED, customer, due, "email", "we-miss-you",
                              {"visits": profile["visits"], "last_visit": format_ts(profile["last_visit"]),
                               "stage": profile["stage"]},
                              {"kind": "inactivity", "event_type": "visit",
                               "inactive_since": format_ts(profile["last_visit"])})
            elif campaign == REFERRAL:
                if profile["referrals"] != 0:
                    continue  # recheck failed
                if REFERRAL in profile["fired"]:
                    continue
                profile["fired"].append(REFERRAL)
                self.emit(REFERRAL, customer, due, "email", "refer-a-friend",
                          {"referral_code": self.coupon("REFER", REFERRAL, customer, due),
                           "reward_for_you": "15% off your next order",
                           "reward_for_your_friend": "15% off their first order",
                           "purchases": profile["purchases"]},
                          {"kind": "delay", "armed_at": format_ts(due - REFERRAL_DELAY_MS)})

    def apply(self, event):
        ts = parse_ts(event["ts"])
        if self.clock is None or ts > self.clock:
            self.fire_due(ts)
            self.clock = ts
        customer = event["customer_id"]
        kind = event["type"]
        profile = self.store.get(customer)
        self.store.touch(customer)
        if profile["first_seen"] is None or ts < profile["first_seen"]:
            profile["first_seen"] = ts
        if profile["last_seen"] is None or ts > profile["last_seen"]:
            profile["last_seen"] = ts
        if kind == "visit":
            profile["visits"] += 1
            if profile["last_visit"] is None or ts > profile["last_visit"]:
                profile["last_visit"] = ts
        elif kind == "purchase":
            profile["purchases"] += 1
            if profile["last_purchase"] is None or ts > profile["last_purchase"]:
                profile["last_purchase"] = ts
            profile["spent_cents"] += round(event["amount"] * 100)
        elif kind == "referral":
            profile["referrals"] += 1
        else:
            profile["others"] += 1
        for stage, holds in LADDER:
            if holds(profile):
                current = stage
        profile["stage"] = current

        if kind == "visit":
            self.arm(profile, customer, LAPSED, profile["last_visit"] + LAPSE_MS)
        elif kind == "purchase":
            trigger = {"kind": "event", "event_type": "purchase"}
            if "event_id" in event:
                trigger["event_id"] = event["event_id"]
            if profile["purchases"] == 1 and THANK_YOU not in profile["fired"]:
                profile["fired"].append(THANK_YOU)
                self.emit(THANK_YOU, customer, ts, "email", "thank-you-first-order",
                          {"order_id": event.get("order_id"), "order_amount": event["amount"],
                           "discount_code": self.coupon("THANKS", THANK_YOU, customer, ts),
                           "discount_percent": 10,
                           "valid_until": format_ts(ts + 30 * DAY_MS)[:10]},
                          trigger)
            if (profile["purchases"] == 3 and REFERRAL not in profile["timers"]
                    and REFERRAL not in profile["fired"]):
                self.arm(profile, customer, REFERRAL, ts + REFERRAL_DELAY_MS)


def file_lines(path):
    with open(path, "rb") as f:
        for line in f:
            yield line


def kafka_lines(bootstrap, topic, max_events):
    from confluent_kafka import Consumer
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "python-peer",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen = 0
    try:
        while max_events is None or seen < max_events:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            seen += 1
            yield msg.value()
    finally:
        consumer.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", help="JSON lines of events")
    ap.add_argument("--kafka", help="bootstrap servers (instead of --events)")
    ap.add_argument("--topic", default="events")
    ap.add_argument("--max-events", type=int)
    ap.add_argument("--state", required=True, help="LevelDB directory (created; replaced when --fresh)")
    ap.add_argument("--fresh", action="store_true", help="remove --state first")
    ap.add_argument("--out", required=True)
    ap.add_argument("--commit-every", type=int, default=100_000)
    ap.add_argument("--cache-capacity", type=int, default=1 << 20)
    ap.add_argument("--coupon-secret", default="python-peer-secret")
    args = ap.parse_args()
    if (args.events is None) == (args.kafka is None):
        ap.error("give exactly one of --events and --kafka")
    if args.fresh:
        shutil.rmtree(args.state, ignore_errors=True)

    store = Store(args.state, args.cache_capacity)
    lines = file_lines(args.events) if args.events else kafka_lines(args.kafka, args.topic, args.max_events)
    applied = rejected = 0
    with open(args.out, "w", buffering=1 << 20) as out:
        engine = Engine(store, out, args.coupon_secret)
        for line in lines:
            try:
                event = json.loads(line)
                if not isinstance(event.get("customer_id"), str) or not isinstance(event.get("type"), str):
                    raise ValueError("missing customer_id or type")
                if event["type"] == "purchase" and not isinstance(event.get("amount"), (int, float)):
                    raise ValueError("purchase without amount")
                engine.apply(event)
                applied += 1
            except (ValueError, KeyError, TypeError):
                rejected += 1
                continue
            if applied % args.commit_every == 0:
                store.commit(engine.clock, applied + rejected)
        if engine.clock is not None:
            engine.fire_due(engine.clock)
        store.commit(engine.clock, applied + rejected)
    store.close()
    print(f"python peer: {applied} events applied, {rejected} rejected, {engine.actions} actions", file=sys.stderr)


if __name__ == "__main__":
    main()
