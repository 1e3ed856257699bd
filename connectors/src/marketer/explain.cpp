#include "rapport/connectors/explain.h"

#include <simdjson.h>

#include <algorithm>

#include "rapport/connectors/jsonl_reader.h"
#include "rapport/connectors/replay.h"
#include "rapport/engine/json_writer.h"
#include "rapport/rules/expr.h"

namespace rapport::connectors {

std::string FormatOffset(Duration d) {
  if (d.ms == 0) return "+0";
  return d.ms > 0 ? "+" + FormatDuration(d) : FormatDuration(d);
}

namespace {

std::string StageName(const rules::RuleSet& rules, uint8_t stage) {
  return stage < rules.ladder.size() ? rules.ladder[stage].name : "stage " + std::to_string(stage);
}

void Describe(const rules::Value& v, ConditionPart* part) {
  using rules::Kind;
  switch (v.kind) {
    case Kind::kUnknown:
      part->value = "unknown";
      part->json = "null";
      return;
    case Kind::kBool:
      part->value = v.boolean ? "true" : "false";
      part->json = part->value;
      return;
    default: break;
  }
  rules::AppendAsText(v, &part->value);
  if (v.kind == Kind::kNull) part->value = "null";
  JsonWriter w(&part->json);
  if (v.kind == Kind::kNumber) {
    w.Number(v.number);
  } else if (v.kind == Kind::kNull) {
    w.Null();
  } else {
    w.String(part->value);
  }
}

// The limit behind a suppression, in words.
std::string SuppressionDetail(const rules::Campaign& c, Suppression why) {
  switch (why) {
    case Suppression::kOnce: return "once_per_customer: it fired for this customer before";
    case Suppression::kCooldown:
      return "cooldown " + (c.limits.cooldown ? FormatDuration(*c.limits.cooldown) : std::string("?")) +
             " since its last firing";
    case Suppression::kCap:
      return "at most " + std::to_string(c.limits.at_most_count) + " per " + FormatDuration(c.limits.at_most_per);
    case Suppression::kGroup:
      return "group " + c.group + ": a campaign with a higher priority (or the same and a smaller id) won";
    case Suppression::kRecheck: {
      std::string text = c.recheck ? std::string(rules::Explain(*c.recheck).front().text) : std::string();
      return "recheck `" + text + "` was not true when the delay ended";
    }
    case Suppression::kDelayPending: return "a delay of this campaign is already pending for the customer";
  }
  return {};
}

class DiscardSink : public ActionSink {
 public:
  void Deliver(const FiredAction&) override {}
};

}  // namespace

ExplainRecorder::ExplainRecorder(const rules::RuleSet& rules, std::set<std::string, std::less<>> customers)
    : rules_(rules), customers_(std::move(customers)) {}

bool ExplainRecorder::Watched(std::string_view customer) const {
  return customers_.empty() || customers_.find(customer) != customers_.end();
}

ExplainDecision* ExplainRecorder::Add(std::string_view customer, DecisionKind kind, std::string_view campaign) {
  // The processor reports a customer's decisions right after the event or
  // timer they belong to, so this is the latest step of the customer.
  auto step =
      std::find_if(steps_.rbegin(), steps_.rend(), [&](const ExplainStep& s) { return s.customer == customer; });
  if (step == steps_.rend()) return nullptr;
  ExplainDecision& d = step->decisions.emplace_back();
  d.kind = kind;
  d.campaign = campaign;
  return &d;
}

void ExplainRecorder::OnEvent(const Event& event, std::string_view customer, const Profile& profile,
                              uint8_t old_stage) {
  if (!Watched(customer)) return;
  ExplainStep& s = steps_.emplace_back();
  s.kind = ExplainStep::Kind::kEvent;
  s.time = event.ts;
  s.customer = customer;
  s.event_type = event.type;
  simdjson::dom::element root;
  if (event.Root().get(root) == simdjson::SUCCESS) s.event_json = simdjson::minify(root);
  s.stage_before = StageName(rules_, old_stage);
  s.stage_after = StageName(rules_, profile.stage);
}

void ExplainRecorder::OnOffered(const rules::Campaign& campaign, std::string_view customer, EventTime /*now*/,
                                const rules::EvalContext& context, bool condition_true) {
  if (!Watched(customer)) return;
  ExplainDecision* d = Add(customer, DecisionKind::kOffered, campaign.id);
  if (d == nullptr) return;
  d->condition_true = condition_true;
  if (!campaign.condition) return;
  for (const rules::SubExpression& sub : rules::Explain(*campaign.condition)) {
    ConditionPart& part = d->condition.emplace_back();
    part.text = sub.text;
    part.depth = sub.depth;
    scratch_.Clear();
    Describe(sub.expr->Eval(context, scratch_), &part);
  }
}

void ExplainRecorder::OnSuppressed(const rules::Campaign& campaign, std::string_view customer, EventTime /*now*/,
                                   Suppression why) {
  if (!Watched(customer)) return;
  ExplainDecision* d = Add(customer, DecisionKind::kSuppressed, campaign.id);
  if (d == nullptr) return;
  d->reason = SuppressionName(why);
  d->detail = SuppressionDetail(campaign, why);
}

void ExplainRecorder::OnTimerArmed(const rules::Campaign& campaign, std::string_view customer, EventTime due,
                                   std::optional<EventTime> replaced) {
  if (!Watched(customer)) return;
  ExplainDecision* d = Add(customer, DecisionKind::kTimerArmed, campaign.id);
  if (d == nullptr) return;
  d->due = due;
  d->replaced = replaced;
}

void ExplainRecorder::OnTimerFired(std::string_view campaign_id, std::string_view customer, EventTime due, bool stale) {
  if (!Watched(customer)) return;
  ExplainStep& s = steps_.emplace_back();
  s.kind = ExplainStep::Kind::kTimer;
  s.time = due;
  s.customer = customer;
  s.timer_campaign = campaign_id;
  s.stale = stale;
}

void ExplainRecorder::OnFired(const FiredAction& action) {
  if (!Watched(action.customer_id)) return;
  ExplainDecision* d = Add(action.customer_id, DecisionKind::kFired, action.campaign->id);
  if (d == nullptr) return;
  d->held_out = action.held_out;
  d->action_json = action.json;
  simdjson::dom::parser parser;
  simdjson::padded_string padded(action.json);
  simdjson::dom::element doc;
  if (parser.parse(padded).get(doc) != simdjson::SUCCESS) return;
  std::string_view s;
  if (doc["channel"].get(s) == simdjson::SUCCESS) d->channel = s;
  if (doc["template"].get(s) == simdjson::SUCCESS) d->template_name = s;
  simdjson::dom::element payload;
  if (doc["payload"].get(payload) == simdjson::SUCCESS) d->payload_json = simdjson::minify(payload);
}

namespace {

bool StepShown(const ExplainStep& s, const ExplainFormat& f) {
  if (!f.customer.empty() && s.customer != f.customer) return false;
  if (f.campaign.empty()) return true;
  if (s.kind == ExplainStep::Kind::kTimer && s.timer_campaign == f.campaign) return true;
  return std::any_of(s.decisions.begin(), s.decisions.end(),
                     [&](const ExplainDecision& d) { return d.campaign == f.campaign; });
}

bool DecisionShown(const ExplainDecision& d, const ExplainFormat& f) {
  return f.campaign.empty() || d.campaign == f.campaign;
}

std::string Time(EventTime t, const ExplainFormat& f) {
  std::string out = FormatRfc3339(t);
  if (f.origin) out += " (" + FormatOffset(t - *f.origin) + ")";
  return out;
}

void FormatDecision(const ExplainDecision& d, const ExplainFormat& f, std::string* out) {
  const std::string pre = f.indent + "  ";
  switch (d.kind) {
    case DecisionKind::kOffered: {
      *out += pre + "offered " + d.campaign;
      if (d.condition.empty()) {
        *out += ": no condition\n";
        break;
      }
      const std::string& whole = d.condition.front().value;
      *out += ": condition " + (whole == "unknown" ? std::string("unknown, which counts as false") : whole) + "\n";
      for (const ConditionPart& p : d.condition) {
        std::string value = p.value;
        value.resize(std::max<size_t>(value.size() + 1, 9), ' ');
        *out += pre + "  " + value + std::string(static_cast<size_t>(p.depth) * 2, ' ') + p.text + "\n";
      }
      break;
    }
    case DecisionKind::kSuppressed:
      *out += pre + "suppressed " + d.campaign + ": " + d.reason + " (" + d.detail + ")\n";
      break;
    case DecisionKind::kTimerArmed:
      *out += pre + "timer armed " + d.campaign + ": due " + Time(d.due, f);
      if (d.replaced) *out += ", replacing the one due " + Time(*d.replaced, f);
      *out += "\n";
      break;
    case DecisionKind::kFired:
      *out += pre + (d.held_out ? "held out " : "fired ") + d.campaign + ": " + d.channel + " " + d.template_name +
              " " + d.payload_json;
      if (d.held_out) *out += " (control group: counts as a firing, not delivered)";
      *out += "\n";
      break;
  }
}

void WriteDecisionJson(JsonWriter& w, const ExplainDecision& d) {
  w.BeginObject();
  w.Key("kind");
  switch (d.kind) {
    case DecisionKind::kOffered: w.String("offered"); break;
    case DecisionKind::kSuppressed: w.String("suppressed"); break;
    case DecisionKind::kTimerArmed: w.String("timer_armed"); break;
    case DecisionKind::kFired: w.String(d.held_out ? "held_out" : "fired"); break;
  }
  w.Key("campaign");
  w.String(d.campaign);
  switch (d.kind) {
    case DecisionKind::kOffered:
      w.Key("condition_true");
      w.Bool(d.condition_true);
      w.Key("condition");
      w.BeginArray();
      for (const ConditionPart& p : d.condition) {
        w.BeginObject();
        w.Key("text");
        w.String(p.text);
        w.Key("depth");
        w.Int(p.depth);
        w.Key("value");
        w.Raw(p.json);
        w.EndObject();
      }
      w.EndArray();
      break;
    case DecisionKind::kSuppressed:
      w.Key("reason");
      w.String(d.reason);
      w.Key("detail");
      w.String(d.detail);
      break;
    case DecisionKind::kTimerArmed:
      w.Key("due");
      w.String(FormatRfc3339(d.due));
      if (d.replaced) {
        w.Key("replaced");
        w.String(FormatRfc3339(*d.replaced));
      }
      break;
    case DecisionKind::kFired:
      w.Key("action");
      w.Raw(d.action_json);
      break;
  }
  w.EndObject();
}

}  // namespace

std::string FormatExplanation(std::span<const ExplainStep> steps, const ExplainFormat& format) {
  std::string out;
  for (const ExplainStep& s : steps) {
    if (!StepShown(s, format)) continue;
    out += format.indent + Time(s.time, format);
    if (format.customer.empty()) out += "  " + s.customer;
    if (s.kind == ExplainStep::Kind::kEvent) {
      out += "  event " + s.event_type + " " + s.event_json + "\n";
      if (s.stage_before != s.stage_after)
        out += format.indent + "  stage " + s.stage_before + " -> " + s.stage_after + "\n";
    } else {
      out += "  timer " + s.timer_campaign + " came due";
      if (s.stale) out += ": stale, it had been replaced or its campaign removed; nothing happens";
      out += "\n";
    }
    for (const ExplainDecision& d : s.decisions) {
      if (DecisionShown(d, format)) FormatDecision(d, format, &out);
    }
  }
  return out;
}

std::string ExplanationJson(std::span<const ExplainStep> steps, const ExplainFormat& format) {
  std::string out;
  JsonWriter w(&out);
  w.BeginArray();
  for (const ExplainStep& s : steps) {
    if (!StepShown(s, format)) continue;
    w.BeginObject();
    w.Key("ts");
    w.String(FormatRfc3339(s.time));
    w.Key("customer");
    w.String(s.customer);
    w.Key("kind");
    if (s.kind == ExplainStep::Kind::kEvent) {
      w.String("event");
      w.Key("event");
      w.Raw(s.event_json);
      w.Key("stage_before");
      w.String(s.stage_before);
      w.Key("stage_after");
      w.String(s.stage_after);
    } else {
      w.String("timer");
      w.Key("campaign");
      w.String(s.timer_campaign);
      w.Key("stale");
      w.Bool(s.stale);
    }
    w.Key("decisions");
    w.BeginArray();
    for (const ExplainDecision& d : s.decisions) {
      if (DecisionShown(d, format)) WriteDecisionJson(w, d);
    }
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  return out;
}

Result<ExplainRun> RunExplain(const ExplainOptions& options, std::shared_ptr<const rules::RuleSet> rules) {
  auto scratch = ScratchDirectory::Create("rapport-explain");
  if (!scratch.ok()) return scratch.status();
  auto store = StateStore::Open((*scratch)->path(), StateStoreOptions{});
  if (!store.ok()) return store.status();
  auto reader = JsonlReader::Open(options.events_path);
  if (!reader.ok()) return reader.status();

  ExplainRecorder recorder(*rules, {options.customer});
  DiscardSink sink;
  ProcessorOptions processor_options;
  processor_options.coupon_secret = options.coupon_secret;
  processor_options.tracer = &recorder;
  auto processor = Processor::Open(**store, rules, sink, processor_options);
  if (!processor.ok()) return processor.status();
  Processor& p = **processor;

  ExplainRun run;
  EventDecoder decoder;
  Event event;
  Rejection rejection;
  Line line;
  constexpr uint64_t kCommitEvery = 100000;  // bounds the dirty profiles held in memory
  while ((*reader)->Next(&line)) {
    ++run.lines;
    if (line.too_long || !decoder.Decode(line.text, &event, &rejection)) {
      ++run.rejected;
      continue;
    }
    ++run.accepted;
    if (event.customer_id == options.customer) ++run.customer_events;
    if (Status s = p.Apply(event); !s.ok()) return s;
    if (run.accepted % kCommitEvery == 0) {
      if (Status s = p.Commit("explain"); !s.ok()) return s;
    }
  }
  if (!(*reader)->status().ok()) return (*reader)->status();
  std::optional<EventTime> end = p.clock();
  if (options.until && (!end || *options.until > *end)) end = options.until;
  if (end) {
    if (Status s = p.AdvanceTo(*end); !s.ok()) return s;
  }
  run.final_clock = p.clock();
  run.steps = recorder.steps();
  return run;
}

}  // namespace rapport::connectors
