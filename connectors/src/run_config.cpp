// LoadRunConfig: the YAML file of `rapport run` -> RunConfig.
//
// The file is parsed once with yaml-cpp, then walked map by map. Every map's
// keys are checked against the keys it may hold (unknown and duplicate keys
// are errors, with a "did you mean" hint), and every problem is recorded with
// its position instead of stopping at the first, so that an operator fixes a
// broken config in one round. ${VAR} substitution runs on scalar values after
// parsing, so a variable's value is always plain text and can never change the
// structure of the file. yaml-cpp throws on malformed YAML; those exceptions
// stop here.
#include "rapport/connectors/run_config.h"

#include <librdkafka/rdkafka.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <set>
#include <sstream>
#include <string_view>
#include <tuple>

#include "rapport/rules/suggest.h"
#include "rapport/engine/time.h"

namespace rapport::connectors {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kDurationExamples = "durations look like 500ms, 1s, 5m, 2h, 1d";
constexpr std::string_view kSubstitutionHint = "write ${NAME} or ${NAME:-default}; `$$` is a literal `$`";

// Properties the daemon sets on its consumer itself; a config that set them
// would silently break the delivery guarantee or the group membership.
struct Reserved {
  std::string_view name;
  std::string_view why;
};
constexpr Reserved kReservedConsumerProperties[] = {
    {"group.id", "the daemon sets it from `application_id`; set `application_id` instead"},
    {"enable.auto.commit",
     "the daemon commits source offsets itself, in the same batch as the state, so that no event is applied twice "
     "or lost"},
    {"enable.auto.offset.store",
     "the daemon stores an offset only once the event's effects are committed, so that no event is lost"},
};

// Property names that have no default and so are missing from
// rd_kafka_conf_dump(), but are the ones people misspell; used for hints only.
constexpr std::string_view kCommonKafkaProperties[] = {
    "bootstrap.servers",
    "sasl.mechanism",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "acks",
    "compression.type",
    "linger.ms",
    "auto.offset.reset",
    "enable.idempotence",
    "message.timeout.ms",
    "request.timeout.ms",
    "isolation.level",
    "max.poll.interval.ms",
    "fetch.max.bytes",
    "group.instance.id",
    "client.rack",
};

struct Entry {
  YAML::Node key;
  YAML::Node value;
};
using Entries = std::map<std::string, Entry, std::less<>>;

// A `properties:` (or top-level `kafka:`) map as read, plus the keys whose
// value could not be read, so that a later "needs bootstrap.servers" does not
// repeat an error already reported on that very key.
struct Properties {
  KafkaProperties values;
  std::set<std::string, std::less<>> failed;
};

bool IsVariableName(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// Letters, digits, '.', '_' and '-': what Kafka allows in a topic name, and
// what we allow in application_id because it becomes the consumer group id
// and names the state.
bool IsIdentifierLike(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

std::string Quote(std::string_view s) { return "`" + std::string(s) + "`"; }

std::string Join(std::string_view parent, std::string_view key) {
  return parent.empty() ? std::string(key) : std::string(parent) + "." + std::string(key);
}

class Parser {
 public:
  Parser(std::string name, std::string text, std::string base_dir, const EnvironmentLookup& environment)
      : name_(std::move(name)), text_(std::move(text)), base_dir_(std::move(base_dir)), environment_(environment) {}

  Result<RunConfig> Run();

 private:
  struct Problem {
    int line;
    int column;
    std::string text;
  };

  // --- diagnostics ---
  void Error(const YAML::Mark& mark, std::string_view message, std::string_view hint = "");
  static YAML::Mark ValueMark(const Entry& e);
  YAML::Mark MarkInside(const YAML::Node& scalar, size_t offset) const;

  // --- generic readers; each reports its own errors and returns nullopt ---
  Entries Keys(const YAML::Node& map, std::string_view where, std::initializer_list<std::string_view> allowed,
               std::string_view dotted_hint = "");
  bool ExpectMap(const Entry& e, std::string_view what);
  std::optional<std::string> Substitute(const YAML::Node& scalar);
  std::optional<std::string> String(const Entry& e, std::string_view what);
  std::optional<std::string> NonEmptyString(const Entry& e, std::string_view what);
  std::optional<std::chrono::milliseconds> Duration(const Entry& e, std::string_view what);
  std::optional<uint64_t> PositiveInteger(const Entry& e, std::string_view what);
  std::optional<uint64_t> NonNegativeInteger(const Entry& e, std::string_view what);
  std::optional<bool> Bool(const Entry& e, std::string_view what);
  std::optional<std::string> Path(const Entry& e, std::string_view what, bool dash_allowed);
  std::string Resolve(const std::string& path) const;

  // --- Kafka ---
  Properties ReadProperties(const Entry& e, std::string_view what, bool consumer);
  // Returns the property meant by an unknown name ("" if none or if known).
  std::string CheckProperty(const YAML::Node& key, const YAML::Node& value, const std::string& name,
                            const std::string& text, std::string_view what);
  std::optional<std::string> Topic(const Entries& keys, const Entry& part, std::string_view what);
  // The top-level properties overlaid with the part's own `properties:`, and
  // the check that the result names the brokers.
  KafkaProperties Merge(const Entries& keys, const Entry& part, std::string_view what, bool consumer);

  std::string FlowHint(const YAML::Mark& mark) const;

  // --- sections ---
  void Build(const YAML::Node& root, RunConfig* config);
  void Source(const Entry& e, RunConfig* config);
  void Sinks(const Entry& e, RunConfig* config);
  std::optional<SinkConfig> Sink(const YAML::Node& item, std::string_view what);
  void DeadLetters(const Entry& e, RunConfig* config);
  // Returns the single part of a map that must hold exactly one of `allowed`.
  std::optional<std::pair<std::string, Entry>> OneOf(const Entry& e, std::string_view what,
                                                     std::initializer_list<std::string_view> allowed);

  const std::string name_;
  const std::string text_;
  const std::string base_dir_;
  const EnvironmentLookup& environment_;
  Properties top_kafka_;
  std::vector<Problem> problems_;
};

void Parser::Error(const YAML::Mark& mark, std::string_view message, std::string_view hint) {
  // yaml-cpp's marks are 0-based; a null mark (-1) has no position, so it is
  // shown at the start of the file rather than as line 0.
  int line = mark.line >= 0 ? mark.line + 1 : 1;
  int column = mark.column >= 0 ? mark.column + 1 : 1;
  std::string text = name_ + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + std::string(message);
  if (!hint.empty()) text += " (" + std::string(hint) + ")";
  problems_.push_back({line, column, std::move(text)});
}

// A key written without a value (`state_dir:`) gives a null node whose mark
// is not always set; the key's position is where the reader should look.
YAML::Mark Parser::ValueMark(const Entry& e) {
  if (!e.value || e.value.IsNull() || e.value.Mark().is_null()) return e.key.Mark();
  return e.value.Mark();
}

// The position of character `offset` of a scalar's value, so that an error in
// ${VAR} points at the `$`. Exact when the text before it is written as is
// (plain or simply quoted, on one line); otherwise the scalar's own position.
YAML::Mark Parser::MarkInside(const YAML::Node& scalar, size_t offset) const {
  YAML::Mark mark = scalar.Mark();
  if (mark.pos < 0 || static_cast<size_t>(mark.pos) >= text_.size()) return mark;
  size_t start = static_cast<size_t>(mark.pos);
  if (text_[start] == '"' || text_[start] == '\'') ++start;
  const std::string& value = scalar.Scalar();
  if (offset > value.size() || start + offset > text_.size()) return mark;
  std::string_view written(text_.data() + start, offset);
  if (written != std::string_view(value).substr(0, offset) || written.find('\n') != std::string_view::npos) {
    return mark;
  }
  mark.column += static_cast<int>(start - static_cast<size_t>(mark.pos) + offset);
  return mark;
}

Entries Parser::Keys(const YAML::Node& map, std::string_view where, std::initializer_list<std::string_view> allowed,
                     std::string_view dotted_hint) {
  Entries out;
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) {
      Error(kv.first.Mark(), "keys in " + std::string(where) + " must be plain names");
      continue;
    }
    const std::string& key = kv.first.Scalar();
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string hint;
      if (!dotted_hint.empty() && key.find('.') != std::string::npos) {
        hint = std::string(dotted_hint);
      } else if (std::string best = rules::Closest(key, allowed); !best.empty()) {
        hint = "did you mean " + Quote(best) + "?";
      } else {
        hint = "allowed keys:";
        for (std::string_view a : allowed) hint += " " + std::string(a);
      }
      Error(kv.first.Mark(), "unknown key " + Quote(key) + " in " + std::string(where), hint);
      continue;
    }
    if (!out.emplace(key, Entry{kv.first, kv.second}).second) {
      Error(kv.first.Mark(), "key " + Quote(key) + " appears twice in " + std::string(where));
    }
  }
  return out;
}

bool Parser::ExpectMap(const Entry& e, std::string_view what) {
  if (e.value.IsMap()) return true;
  if (e.value.IsNull()) {
    Error(ValueMark(e), Quote(what) + " has no value", "it must be a map of keys to values");
  } else {
    Error(ValueMark(e), Quote(what) + " must be a map of keys to values");
  }
  return false;
}

std::optional<std::string> Parser::Substitute(const YAML::Node& scalar) {
  const std::string& in = scalar.Scalar();
  std::string out;
  out.reserve(in.size());
  bool ok = true;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '$') {
      out += in[i];
      continue;
    }
    if (i + 1 < in.size() && in[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    // A `$` not followed by `{` is kept: passwords may contain one.
    if (i + 1 >= in.size() || in[i + 1] != '{') {
      out += '$';
      continue;
    }
    size_t close = in.find('}', i + 2);
    if (close == std::string::npos) {
      Error(MarkInside(scalar, i), "`${` is not closed", kSubstitutionHint);
      return std::nullopt;
    }
    std::string_view reference(in.data() + i + 2, close - i - 2);
    size_t separator = reference.find(":-");
    std::string_view variable = reference.substr(0, separator);
    if (!IsVariableName(variable)) {
      Error(MarkInside(scalar, i), Quote("${" + std::string(reference) + "}") + " is not a variable reference",
            kSubstitutionHint);
      ok = false;
      i = close;
      continue;
    }
    std::optional<std::string> value;
    if (environment_) value = environment_(std::string(variable));
    // As in the shell, `:-` also covers a variable that is set but empty:
    // an empty password or broker list is never what was meant.
    if (separator != std::string_view::npos && (!value || value->empty())) {
      value = std::string(reference.substr(separator + 2));
    }
    if (!value) {
      Error(MarkInside(scalar, i), "environment variable " + Quote(variable) + " is not set",
            "set it, or give a default: ${" + std::string(variable) + ":-value}");
      ok = false;
    } else {
      out += *value;
    }
    i = close;
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::string> Parser::String(const Entry& e, std::string_view what) {
  if (!e.value || e.value.IsNull()) {
    Error(ValueMark(e), Quote(what) + " has no value");
    return std::nullopt;
  }
  if (!e.value.IsScalar()) {
    Error(ValueMark(e), Quote(what) + " must be a single value, not a " + (e.value.IsMap() ? "map" : "list"));
    return std::nullopt;
  }
  return Substitute(e.value);
}

std::optional<std::string> Parser::NonEmptyString(const Entry& e, std::string_view what) {
  std::optional<std::string> s = String(e, what);
  if (s && s->empty()) {
    Error(ValueMark(e), Quote(what) + " is empty");
    return std::nullopt;
  }
  return s;
}

std::optional<std::chrono::milliseconds> Parser::Duration(const Entry& e, std::string_view what) {
  std::optional<std::string> s = String(e, what);
  if (!s) return std::nullopt;
  std::optional<rapport::Duration> d = ParseDuration(*s);
  if (!d) {
    bool digits = !s->empty() && std::all_of(s->begin(), s->end(), [](char c) { return c >= '0' && c <= '9'; });
    Error(ValueMark(e), Quote(what) + " " + Quote(*s) + " is not a duration",
          digits ? "a duration needs a unit: " + *s + "ms, " + *s + "s, " + *s + "m" : std::string(kDurationExamples));
    return std::nullopt;
  }
  if (d->ms <= 0) {
    Error(ValueMark(e), Quote(what) + " must be longer than zero");
    return std::nullopt;
  }
  return std::chrono::milliseconds(d->ms);
}

std::optional<uint64_t> Parser::PositiveInteger(const Entry& e, std::string_view what) {
  std::optional<uint64_t> n = NonNegativeInteger(e, what);
  if (n && *n == 0) {
    Error(ValueMark(e), Quote(what) + " must be greater than zero");
    return std::nullopt;
  }
  return n;
}

std::optional<uint64_t> Parser::NonNegativeInteger(const Entry& e, std::string_view what) {
  std::optional<std::string> s = String(e, what);
  if (!s) return std::nullopt;
  uint64_t n = 0;
  bool ok = !s->empty();
  for (char c : *s) {
    if (c < '0' || c > '9' || n > (UINT64_MAX - static_cast<uint64_t>(c - '0')) / 10) {
      ok = false;
      break;
    }
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  if (!ok) {
    Error(ValueMark(e), Quote(what) + " must be a whole number, not " + Quote(*s));
    return std::nullopt;
  }
  return n;
}

std::optional<bool> Parser::Bool(const Entry& e, std::string_view what) {
  std::optional<std::string> s = String(e, what);
  if (!s) return std::nullopt;
  if (*s == "true") return true;
  if (*s == "false") return false;
  Error(ValueMark(e), Quote(what) + " must be true or false, not " + Quote(*s));
  return std::nullopt;
}

std::string Parser::Resolve(const std::string& path) const {
  fs::path p(path);
  if (p.is_absolute() || base_dir_.empty()) return path;
  return (fs::path(base_dir_) / p).lexically_normal().string();
}

std::optional<std::string> Parser::Path(const Entry& e, std::string_view what, bool dash_allowed) {
  std::optional<std::string> s = NonEmptyString(e, what);
  if (!s) return std::nullopt;
  if (dash_allowed && *s == "-") return s;
  return Resolve(*s);
}

Properties Parser::ReadProperties(const Entry& e, std::string_view what, bool consumer) {
  Properties out;
  if (!ExpectMap(e, what)) {
    // So that the parts merging this map do not also report a missing broker list.
    out.failed.insert("bootstrap.servers");
    return out;
  }
  std::set<std::string, std::less<>> seen;
  for (const auto& kv : e.value) {
    if (!kv.first.IsScalar() || kv.first.Scalar().empty()) {
      Error(kv.first.Mark(), "keys in " + Quote(what) + " must be librdkafka property names");
      continue;
    }
    const std::string& name = kv.first.Scalar();
    if (!seen.insert(name).second) {
      Error(kv.first.Mark(), "property " + Quote(name) + " appears twice in " + Quote(what));
      continue;
    }
    if (consumer) {
      auto reserved = std::find_if(std::begin(kReservedConsumerProperties), std::end(kReservedConsumerProperties),
                                   [&name](const Reserved& r) { return r.name == name; });
      if (reserved != std::end(kReservedConsumerProperties)) {
        Error(kv.first.Mark(), "property " + Quote(name) + " cannot be set in " + Quote(what), reserved->why);
        out.failed.insert(name);
        continue;
      }
    }
    std::optional<std::string> value = String(Entry{kv.first, kv.second}, Join(what, name));
    if (!value) {
      out.failed.insert(name);
      continue;
    }
    // A misspelt broker list is one mistake, not also a missing one.
    if (CheckProperty(kv.first, kv.second, name, *value, what) == "bootstrap.servers") {
      out.failed.insert("bootstrap.servers");
    }
    out.values[name] = std::move(*value);
  }
  return out;
}

// Asks librdkafka itself whether it knows the property and accepts the value,
// so that a misspelt property or a bad enum value is reported here with its
// position rather than when the daemon starts its clients.
std::string Parser::CheckProperty(const YAML::Node& key, const YAML::Node& value, const std::string& name,
                                  const std::string& text, std::string_view what) {
  // Setting this one loads the plugins there and then; leave it to the clients.
  if (name == "plugin.library.paths") return "";
  std::string best;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char error[512] = "";
  rd_kafka_conf_res_t result = rd_kafka_conf_set(conf, name.c_str(), text.c_str(), error, sizeof error);
  if (result == RD_KAFKA_CONF_UNKNOWN) {
    std::vector<std::string> known(std::begin(kCommonKafkaProperties), std::end(kCommonKafkaProperties));
    size_t count = 0;
    const char** dump = rd_kafka_conf_dump(conf, &count);
    for (size_t i = 0; i + 1 < count; i += 2) known.emplace_back(dump[i]);
    rd_kafka_conf_dump_free(dump, count);
    best = rules::Closest(name, known);
    Error(key.Mark(), "unknown librdkafka property " + Quote(name) + " in " + Quote(what),
          best.empty() ? "see librdkafka's CONFIGURATION.md" : "did you mean " + Quote(best) + "?");
  } else if (result != RD_KAFKA_CONF_OK) {
    Error(value.Mark().is_null() ? key.Mark() : value.Mark(), Quote(Join(what, name)) + ": " + error);
  }
  rd_kafka_conf_destroy(conf);
  return best;
}

std::optional<std::string> Parser::Topic(const Entries& keys, const Entry& part, std::string_view what) {
  auto it = keys.find("topic");
  if (it == keys.end()) {
    Error(ValueMark(part), Quote(what) + " needs a `topic`");
    return std::nullopt;
  }
  std::string name = Join(what, "topic");
  std::optional<std::string> topic = NonEmptyString(it->second, name);
  if (!topic) return std::nullopt;
  if (!IsIdentifierLike(*topic) || topic->size() > 249) {
    Error(ValueMark(it->second), Quote(name) + " " + Quote(*topic) + " is not a valid Kafka topic name",
          "at most 249 letters, digits, `.`, `_` and `-`");
    return std::nullopt;
  }
  return topic;
}

KafkaProperties Parser::Merge(const Entries& keys, const Entry& part, std::string_view what, bool consumer) {
  KafkaProperties merged = top_kafka_.values;
  bool failed = top_kafka_.failed.contains("bootstrap.servers") || top_kafka_.failed.contains("metadata.broker.list");
  if (auto it = keys.find("properties"); it != keys.end()) {
    Properties own = ReadProperties(it->second, Join(what, "properties"), consumer);
    for (auto& [k, v] : own.values) merged[k] = std::move(v);
    failed = failed || own.failed.contains("bootstrap.servers") || own.failed.contains("metadata.broker.list");
  }
  // metadata.broker.list is librdkafka's older name for the same property.
  auto has = [&merged](const char* k) {
    auto it = merged.find(k);
    return it != merged.end() && !it->second.empty();
  };
  // A broker list written straight in the part, not under `properties:`, has
  // been reported as an unknown key already.
  bool misplaced = part.value.IsMap() && (part.value["bootstrap.servers"] || part.value["metadata.broker.list"]);
  if (!failed && !misplaced && !has("bootstrap.servers") && !has("metadata.broker.list")) {
    Error(ValueMark(part), Quote(what) + " needs `bootstrap.servers`",
          "set it under the top-level `kafka:` or in this part's `properties:`");
  }
  return merged;
}

std::optional<std::pair<std::string, Entry>> Parser::OneOf(const Entry& e, std::string_view what,
                                                           std::initializer_list<std::string_view> allowed) {
  if (!ExpectMap(e, what)) return std::nullopt;
  Entries parts = Keys(e.value, Quote(what), allowed);
  // "`kafka`, `file` or `webhook`"
  std::string names;
  size_t i = 0;
  for (std::string_view a : allowed) {
    names += (i == 0 ? "" : i + 1 == allowed.size() ? " or " : ", ") + Quote(a);
    ++i;
  }
  if (parts.size() > 1) {
    Error(ValueMark(e), Quote(what) + " may hold only one of " + names);
    return std::nullopt;
  }
  if (parts.empty()) {
    // An unknown key has been reported already; a second error would only repeat it.
    if (e.value.size() == 0) {
      Error(ValueMark(e), Quote(what) + " needs " + (allowed.size() > 2 ? "one of " : "") + names);
    }
    return std::nullopt;
  }
  return *parts.begin();
}

void Parser::Source(const Entry& e, RunConfig* config) {
  auto part = OneOf(e, "source", {"kafka", "file"});
  if (!part) return;
  const auto& [kind, entry] = *part;
  if (kind == "kafka") {
    if (!ExpectMap(entry, "source.kafka")) return;
    Entries keys =
        Keys(entry.value, "`source.kafka`", {"topic", "properties"}, "librdkafka properties go under `properties:`");
    KafkaSourceConfig source;
    std::optional<std::string> topic = Topic(keys, entry, "source.kafka");
    source.properties = Merge(keys, entry, "source.kafka", /*consumer=*/true);
    if (topic) source.topic = *topic;
    config->kafka_source = std::move(source);
  } else {
    if (!ExpectMap(entry, "source.file")) return;
    Entries keys = Keys(entry.value, "`source.file`", {"path"});
    FileSourceConfig source;
    if (auto it = keys.find("path"); it != keys.end()) {
      if (auto path = Path(it->second, "source.file.path", /*dash_allowed=*/true)) source.path = *path;
    } else {
      Error(ValueMark(entry), "`source.file` needs a `path`", "use \"-\" for stdin");
    }
    config->file_source = std::move(source);
  }
}

std::optional<SinkConfig> Parser::Sink(const YAML::Node& item, std::string_view what) {
  // The list item has no key of its own; its first key stands in for it.
  Entry whole{item, item};
  auto part = OneOf(whole, what, {"kafka", "file", "webhook"});
  if (!part) return std::nullopt;
  const auto& [kind, entry] = *part;
  std::string name = Join(what, kind);
  if (!ExpectMap(entry, name)) return std::nullopt;
  SinkConfig sink;
  auto held_out = [&](const Entries& keys, bool* out) {
    if (auto it = keys.find("deliver_held_out"); it != keys.end()) {
      if (auto b = Bool(it->second, Join(name, "deliver_held_out"))) *out = *b;
    }
  };
  if (kind == "kafka") {
    sink.kind = SinkConfig::Kind::kKafka;
    Entries keys = Keys(entry.value, Quote(name), {"topic", "properties", "delivery_timeout", "deliver_held_out"},
                        "librdkafka properties go under `properties:`");
    if (auto topic = Topic(keys, entry, name)) sink.kafka.topic = *topic;
    sink.kafka.properties = Merge(keys, entry, name, /*consumer=*/false);
    if (auto it = keys.find("delivery_timeout"); it != keys.end()) {
      if (auto d = Duration(it->second, Join(name, "delivery_timeout"))) sink.kafka.delivery_timeout = *d;
    }
    held_out(keys, &sink.kafka.deliver_held_out);
  } else if (kind == "file") {
    sink.kind = SinkConfig::Kind::kFile;
    Entries keys = Keys(entry.value, Quote(name), {"path", "deliver_held_out"});
    if (auto it = keys.find("path"); it != keys.end()) {
      if (auto path = Path(it->second, Join(name, "path"), /*dash_allowed=*/true)) sink.file.path = *path;
    } else {
      Error(ValueMark(entry), Quote(name) + " needs a `path`", "use \"-\" for stdout");
    }
    held_out(keys, &sink.file.deliver_held_out);
  } else {
    sink.kind = SinkConfig::Kind::kWebhook;
    WebhookOutputOptions& webhook = sink.webhook;
    Entries keys =
        Keys(entry.value, Quote(name),
             {"url", "headers", "timeout", "initial_backoff", "max_backoff", "retry_for", "deliver_held_out"});
    if (auto it = keys.find("url"); it != keys.end()) {
      if (auto url = NonEmptyString(it->second, Join(name, "url"))) {
        std::string_view u(*url);
        size_t scheme = u.starts_with("http://") ? 7 : u.starts_with("https://") ? 8 : 0;
        if (scheme == 0) {
          Error(ValueMark(it->second), Quote(Join(name, "url")) + " " + Quote(*url) + " is not an HTTP URL",
                "it starts with http:// or https://");
#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
          // Debian's libcpp-httplib is built with OpenSSL and its pkg-config
          // flags (which this target gets) define this; another build may not.
        } else if (scheme == 8) {
          Error(ValueMark(it->second), Quote(Join(name, "url")) + ": https is not supported by this build",
                "its cpp-httplib has no OpenSSL support; use http:// or a local TLS proxy");
#endif
        } else if (u.size() == scheme || u[scheme] == '/' || u[scheme] == ':') {
          Error(ValueMark(it->second), Quote(Join(name, "url")) + " " + Quote(*url) + " has no host");
        } else {
          webhook.url = *url;
        }
      }
    } else {
      Error(ValueMark(entry), Quote(name) + " needs a `url`");
    }
    if (auto it = keys.find("headers"); it != keys.end() && ExpectMap(it->second, Join(name, "headers"))) {
      for (const auto& kv : it->second.value) {
        if (!kv.first.IsScalar() || kv.first.Scalar().empty()) {
          Error(kv.first.Mark(), "header names in " + Quote(Join(name, "headers")) + " must be plain names");
          continue;
        }
        const std::string& header = kv.first.Scalar();
        if (webhook.headers.contains(header)) {
          Error(kv.first.Mark(), "header " + Quote(header) + " appears twice");
          continue;
        }
        if (auto v = String(Entry{kv.first, kv.second}, Join(Join(name, "headers"), header))) {
          webhook.headers[header] = *v;
        }
      }
    }
    struct {
      const char* key;
      std::chrono::milliseconds* out;
    } durations[] = {{"timeout", &webhook.timeout},
                     {"initial_backoff", &webhook.initial_backoff},
                     {"max_backoff", &webhook.max_backoff},
                     {"retry_for", &webhook.retry_for}};
    for (const auto& d : durations) {
      if (auto it = keys.find(d.key); it != keys.end()) {
        if (auto v = Duration(it->second, Join(name, d.key))) *d.out = *v;
      }
    }
    if (webhook.initial_backoff > webhook.max_backoff) {
      auto it = keys.find("initial_backoff");
      Error(it != keys.end() ? ValueMark(it->second) : ValueMark(entry),
            Quote(Join(name, "initial_backoff")) + " is longer than `max_backoff`");
    }
    held_out(keys, &webhook.deliver_held_out);
  }
  return sink;
}

void Parser::Sinks(const Entry& e, RunConfig* config) {
  if (!e.value.IsSequence()) {
    Error(ValueMark(e), e.value.IsNull() ? "`sinks` has no value" : "`sinks` must be a list",
          "for example `sinks: [{file: {path: \"-\"}}]`");
    return;
  }
  if (e.value.size() == 0) {
    Error(ValueMark(e), "`sinks` is empty; actions need at least one sink");
    return;
  }
  for (size_t i = 0; i < e.value.size(); ++i) {
    if (auto sink = Sink(e.value[i], "sinks[" + std::to_string(i) + "]")) config->sinks.push_back(std::move(*sink));
  }
}

void Parser::DeadLetters(const Entry& e, RunConfig* config) {
  auto part = OneOf(e, "dead_letter", {"kafka", "file"});
  if (!part) return;
  const auto& [kind, entry] = *part;
  DeadLetterConfig& dead = config->dead_letter;
  if (kind == "kafka") {
    if (!ExpectMap(entry, "dead_letter.kafka")) return;
    Entries keys = Keys(entry.value, "`dead_letter.kafka`", {"topic", "properties"},
                        "librdkafka properties go under `properties:`");
    dead.kind = DeadLetterConfig::Kind::kKafka;
    if (auto topic = Topic(keys, entry, "dead_letter.kafka")) dead.topic_or_path = *topic;
    dead.properties = Merge(keys, entry, "dead_letter.kafka", /*consumer=*/false);
  } else {
    if (!ExpectMap(entry, "dead_letter.file")) return;
    Entries keys = Keys(entry.value, "`dead_letter.file`", {"path"});
    dead.kind = DeadLetterConfig::Kind::kFile;
    if (auto it = keys.find("path"); it != keys.end()) {
      if (auto path = Path(it->second, "dead_letter.file.path", /*dash_allowed=*/true)) dead.topic_or_path = *path;
    } else {
      Error(ValueMark(entry), "`dead_letter.file` needs a `path`", "use \"-\" for stderr");
    }
  }
}

void Parser::Build(const YAML::Node& root, RunConfig* config) {
  if (!root || root.IsNull()) {
    Error(YAML::Mark(), "the config is empty",
          "it needs at least `rules`, `state_dir`, `source` and `sinks`; see deploy/rapport.yaml");
    return;
  }
  if (!root.IsMap()) {
    Error(root.Mark(), "a config is a map of keys to values; see deploy/rapport.yaml");
    return;
  }
  Entries top = Keys(root, "the config",
                     {"rules", "state_dir", "application_id", "clock", "commit_interval", "commit_max_events",
                      "cache_capacity", "standby_replicas", "coupon_secret", "kafka", "source", "sinks", "dead_letter"},
                     "librdkafka properties go under `kafka:`");
  // Missing keys have no position of their own; the top of the file is the
  // place to add them.
  const YAML::Mark top_mark = root.Mark();
  auto find = [&top](std::string_view key) -> const Entry* {
    auto it = top.find(key);
    return it == top.end() ? nullptr : &it->second;
  };

  if (const Entry* e = find("rules")) {
    if (auto p = Path(*e, "rules", /*dash_allowed=*/false)) config->rules = *p;
  } else {
    Error(top_mark, "the config needs `rules`", "a rule file or a directory of them");
  }
  if (const Entry* e = find("state_dir")) {
    if (auto p = Path(*e, "state_dir", /*dash_allowed=*/false)) config->state_dir = *p;
  } else {
    Error(top_mark, "the config needs `state_dir`", "the directory of the RocksDB state");
  }
  if (const Entry* e = find("application_id")) {
    if (auto s = NonEmptyString(*e, "application_id")) {
      if (IsIdentifierLike(*s)) {
        config->application_id = *s;
      } else {
        Error(ValueMark(*e), "`application_id` " + Quote(*s) + " may only hold letters, digits, `.`, `_` and `-`");
      }
    }
  }
  if (const Entry* e = find("clock")) {
    if (auto s = String(*e, "clock")) {
      if (*s == "wall") {
        config->clock = ClockMode::kWall;
      } else if (*s == "event") {
        config->clock = ClockMode::kEvent;
      } else {
        Error(ValueMark(*e), "`clock` must be `wall` or `event`, not " + Quote(*s),
              "wall: timers also fire on idle partitions; event: pure event time, for replays");
      }
    }
  }
  if (const Entry* e = find("commit_interval")) {
    if (auto d = Duration(*e, "commit_interval")) config->commit_interval = *d;
  }
  if (const Entry* e = find("commit_max_events")) {
    if (auto n = PositiveInteger(*e, "commit_max_events")) config->commit_max_events = *n;
  }
  if (const Entry* e = find("cache_capacity")) {
    if (auto n = PositiveInteger(*e, "cache_capacity")) config->cache_capacity = static_cast<size_t>(*n);
  }
  if (const Entry* e = find("standby_replicas")) {
    if (auto n = NonNegativeInteger(*e, "standby_replicas")) config->standby_replicas = static_cast<uint32_t>(*n);
  }
  if (const Entry* e = find("coupon_secret")) {
    if (auto s = String(*e, "coupon_secret")) config->coupon_secret = *s;
  }
  // Read before the parts, which overlay it, wherever it stands in the file.
  // It reaches the source's consumer too, hence consumer=true.
  if (const Entry* e = find("kafka")) top_kafka_ = ReadProperties(*e, "kafka", /*consumer=*/true);
  if (const Entry* e = find("source")) {
    Source(*e, config);
  } else {
    Error(top_mark, "the config needs a `source`",
          "`source: {kafka: {topic: events}}` or `source: {file: {path: \"-\"}}`");
  }
  if (const Entry* e = find("sinks")) {
    Sinks(*e, config);
  } else {
    Error(top_mark, "the config needs `sinks`", "at least one of kafka, file, webhook");
  }
  if (const Entry* e = find("dead_letter")) DeadLetters(*e, config);
  if (const Entry* e = find("standby_replicas"); e != nullptr && config->standby_replicas > 0 && config->file_source) {
    Error(ValueMark(*e), "`standby_replicas` needs a Kafka source: a file source has no changelog to follow");
  }
}

// `{topic: ${T}}` is broken YAML: in a flow map `{` and `}` are syntax. The
// parser's message says nothing of it, so point at the usual cause.
std::string Parser::FlowHint(const YAML::Mark& mark) const {
  if (mark.line < 0) return "";
  std::istringstream in(text_);
  std::string line;
  for (int i = 0; i <= mark.line && std::getline(in, line); ++i) {
    if (i + 1 >= mark.line && line.find("${") != std::string::npos) {
      return "inside { } or [ ], quote a value that uses a variable: \"${NAME}\"";
    }
  }
  return "";
}

Result<RunConfig> Parser::Run() {
  RunConfig config;
  config.path = name_;
  try {
    YAML::Node root;
    try {
      root = YAML::Load(text_);
    } catch (const YAML::ParserException& e) {
      Error(e.mark, e.msg, FlowHint(e.mark));
    }
    if (problems_.empty()) Build(root, &config);
  } catch (const YAML::Exception& e) {
    // Build() only reads nodes it has checked; this is a safety net so that
    // no yaml-cpp exception crosses the API.
    Error(e.mark, "cannot read the config: " + e.msg);
  }
  if (problems_.empty()) return config;
  std::stable_sort(problems_.begin(), problems_.end(), [](const Problem& a, const Problem& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  std::string message;
  for (const Problem& p : problems_) {
    if (!message.empty()) message += '\n';
    message += p.text;
  }
  return Status::InvalidArgument(std::move(message));
}

}  // namespace

Result<RunConfig> ParseRunConfig(const std::string& text, const std::string& name, const std::string& base_dir,
                                 const EnvironmentLookup& environment) {
  return Parser(name, text, base_dir, environment).Run();
}

Result<RunConfig> LoadRunConfig(const std::string& path, const EnvironmentLookup& environment) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return Status::NotFound("config file " + path + " does not exist");
  if (fs::is_directory(path, ec)) return Status::InvalidArgument("config " + path + " is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IoError("cannot read config file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::IoError("cannot read config file " + path);
  // Paths in the file are relative to the file, made absolute so that they
  // do not depend on the daemon's working directory.
  fs::path absolute = fs::absolute(path, ec);
  std::string base_dir = ec ? fs::path(path).parent_path().string() : absolute.parent_path().string();
  return ParseRunConfig(text.str(), path, base_dir, environment);
}

std::optional<std::string> ProcessEnvironment(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

}  // namespace rapport::connectors
