#include "rapport/connectors/run_config.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "temp_dir.h"

using rapport::StatusCode;
using rapport::connectors::ClockMode;
using rapport::connectors::DeadLetterConfig;
using rapport::connectors::EnvironmentLookup;
using rapport::connectors::LoadRunConfig;
using rapport::connectors::ParseRunConfig;
using rapport::connectors::RunConfig;
using rapport::connectors::SinkConfig;
using rapport::testing::SourcePath;
using rapport::testing::TempDir;
using rapport::testing::WriteFile;
using namespace std::chrono_literals;

namespace {

EnvironmentLookup MapEnvironment(std::map<std::string, std::string> values) {
  return [values = std::move(values)](const std::string& name) -> std::optional<std::string> {
    auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

rapport::Result<RunConfig> Parse(const std::string& text, std::map<std::string, std::string> env = {}) {
  return ParseRunConfig(text, "rapport.yaml", "/etc/rapport", MapEnvironment(std::move(env)));
}

RunConfig ParseOk(const std::string& text, std::map<std::string, std::string> env = {}) {
  auto r = Parse(text, std::move(env));
  INFO(r.status().message());
  REQUIRE(r.ok());
  return std::move(r).value();
}

// The error message's lines; REQUIREs that parsing failed.
std::vector<std::string> Errors(const std::string& text, std::map<std::string, std::string> env = {}) {
  auto r = Parse(text, std::move(env));
  REQUIRE_FALSE(r.ok());
  REQUIRE(r.status().code() == StatusCode::kInvalidArgument);
  std::vector<std::string> lines;
  std::istringstream in(r.status().message());
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The single error of `text`.
std::string OneError(const std::string& text, std::map<std::string, std::string> env = {}) {
  std::vector<std::string> errors = Errors(text, std::move(env));
  INFO(Catch::Detail::stringify(errors));
  REQUIRE(errors.size() == 1);
  return errors[0];
}

// A minimal valid config that tests extend by appending top-level keys.
const char* kMinimal = R"(rules: rules
state_dir: state
source:
  file: {path: "-"}
sinks:
  - file: {path: "-"}
)";

}  // namespace

TEST_CASE("run config: a full config parses to the right struct", "[run_config]") {
  const std::string text = R"(rules: packs/relationship
state_dir: /var/lib/rapport
application_id: shop-eu.rapport_1
clock: event
commit_interval: 500ms
commit_max_events: 2000
cache_capacity: 300000
coupon_secret: s3cret
kafka:
  bootstrap.servers: broker-1:9092,broker-2:9092
  security.protocol: SASL_SSL
  sasl.mechanism: SCRAM-SHA-512
  sasl.username: rapport
  sasl.password: pw
  socket.keepalive.enable: true
  message.max.bytes: 2000000
source:
  kafka:
    topic: events
    properties:
      auto.offset.reset: earliest
sinks:
  - kafka:
      topic: actions
      delivery_timeout: 2m
      deliver_held_out: false
      properties:
        linger.ms: 5
  - file:
      path: out/actions.jsonl
  - webhook:
      url: http://crm.internal:8080/hooks/rapport
      timeout: 3s
      initial_backoff: 200ms
      max_backoff: 30s
      retry_for: 5m
      deliver_held_out: true
      headers:
        Authorization: Bearer abc
        X-Source: rapport
dead_letter:
  kafka:
    topic: events-dead
)";
  RunConfig c = ParseOk(text);
  CHECK(c.path == "rapport.yaml");
  CHECK(c.rules == "/etc/rapport/packs/relationship");
  CHECK(c.state_dir == "/var/lib/rapport");
  CHECK(c.application_id == "shop-eu.rapport_1");
  CHECK(c.clock == ClockMode::kEvent);
  CHECK(c.commit_interval == 500ms);
  CHECK(c.commit_max_events == 2000);
  CHECK(c.cache_capacity == 300000);
  CHECK(c.coupon_secret == "s3cret");

  REQUIRE(c.kafka_source.has_value());
  CHECK_FALSE(c.file_source.has_value());
  CHECK(c.kafka_source->topic == "events");
  const auto& props = c.kafka_source->properties;
  CHECK(props.size() == 8);
  CHECK(props.at("bootstrap.servers") == "broker-1:9092,broker-2:9092");
  CHECK(props.at("security.protocol") == "SASL_SSL");
  CHECK(props.at("sasl.password") == "pw");
  // YAML booleans and numbers are passed on as their text.
  CHECK(props.at("socket.keepalive.enable") == "true");
  CHECK(props.at("message.max.bytes") == "2000000");
  CHECK(props.at("auto.offset.reset") == "earliest");

  REQUIRE(c.sinks.size() == 3);
  CHECK(c.sinks[0].kind == SinkConfig::Kind::kKafka);
  CHECK(c.sinks[0].kafka.topic == "actions");
  CHECK(c.sinks[0].kafka.delivery_timeout == 2min);
  CHECK_FALSE(c.sinks[0].kafka.deliver_held_out);
  CHECK(c.sinks[0].kafka.properties.at("linger.ms") == "5");
  CHECK(c.sinks[0].kafka.properties.at("sasl.username") == "rapport");
  CHECK_FALSE(c.sinks[0].kafka.properties.contains("auto.offset.reset"));

  CHECK(c.sinks[1].kind == SinkConfig::Kind::kFile);
  CHECK(c.sinks[1].file.path == "/etc/rapport/out/actions.jsonl");
  CHECK(c.sinks[1].file.deliver_held_out);

  CHECK(c.sinks[2].kind == SinkConfig::Kind::kWebhook);
  const auto& w = c.sinks[2].webhook;
  CHECK(w.url == "http://crm.internal:8080/hooks/rapport");
  CHECK(w.timeout == 3s);
  CHECK(w.initial_backoff == 200ms);
  CHECK(w.max_backoff == 30s);
  CHECK(w.retry_for == 5min);
  CHECK(w.deliver_held_out);
  CHECK(w.headers == std::map<std::string, std::string>{{"Authorization", "Bearer abc"}, {"X-Source", "rapport"}});

  CHECK(c.dead_letter.kind == DeadLetterConfig::Kind::kKafka);
  CHECK(c.dead_letter.topic_or_path == "events-dead");
  CHECK(c.dead_letter.properties.at("bootstrap.servers") == "broker-1:9092,broker-2:9092");
}

TEST_CASE("run config: optional keys take their defaults", "[run_config]") {
  RunConfig c = ParseOk(kMinimal);
  CHECK(c.application_id == "rapport");
  CHECK(c.clock == ClockMode::kWall);
  CHECK(c.commit_interval == 1s);
  CHECK(c.commit_max_events == 50000);
  CHECK(c.cache_capacity == 1000000);
  CHECK(c.coupon_secret.empty());
  REQUIRE(c.file_source.has_value());
  CHECK(c.file_source->path == "-");
  REQUIRE(c.sinks.size() == 1);
  CHECK(c.sinks[0].file.path == "-");
  CHECK(c.dead_letter.kind == DeadLetterConfig::Kind::kNone);

  std::string webhook = std::string(kMinimal) + "  - webhook: {url: \"https://crm.example.com/hook\"}\n";
  RunConfig w = ParseOk(webhook);
  REQUIRE(w.sinks.size() == 2);
  CHECK(w.sinks[1].webhook.url == "https://crm.example.com/hook");
  CHECK(w.sinks[1].webhook.timeout == 5s);
  CHECK(w.sinks[1].webhook.retry_for == 60s);
  CHECK_FALSE(w.sinks[1].webhook.deliver_held_out);
}

TEST_CASE("run config: ${VAR} and ${VAR:-default} are substituted in every string", "[run_config]") {
  const std::string text = R"(rules: ${RULES_DIR}/packs
state_dir: ${STATE_DIR:-/var/lib/rapport}
application_id: rapport-${ENV_NAME:-dev}
commit_interval: ${COMMIT:-2s}
coupon_secret: "pa$$word-${SECRET}-$5"
kafka:
  bootstrap.servers: ${BROKERS}
  sasl.password: ${KAFKA_PASSWORD:-}
source:
  kafka: {topic: "${TOPIC_PREFIX}events"}
sinks:
  - webhook:
      url: http://${CRM_HOST}/hook
      headers: {Authorization: "Bearer ${TOKEN}"}
)";
  std::map<std::string, std::string> env = {
      {"RULES_DIR", "/opt/rules"},
      {"ENV_NAME", ""},
      {"SECRET", "${NOT_EXPANDED}"},
      {"BROKERS", "b1:9092"},
      {"TOPIC_PREFIX", "shop."},
      {"CRM_HOST", "crm:80"},
      {"TOKEN", "t0k"},
  };
  RunConfig c = ParseOk(text, env);
  CHECK(c.rules == "/opt/rules/packs");
  CHECK(c.state_dir == "/var/lib/rapport");
  // As in the shell, `:-` also replaces a variable that is set but empty.
  CHECK(c.application_id == "rapport-dev");
  CHECK(c.commit_interval == 2s);
  // `$$` is one dollar, a `$` without `{` stays, and a value is not expanded again.
  CHECK(c.coupon_secret == "pa$word-${NOT_EXPANDED}-$5");
  REQUIRE(c.kafka_source.has_value());
  CHECK(c.kafka_source->topic == "shop.events");
  CHECK(c.kafka_source->properties.at("bootstrap.servers") == "b1:9092");
  CHECK(c.kafka_source->properties.at("sasl.password").empty());
  REQUIRE(c.sinks.size() == 1);
  CHECK(c.sinks[0].webhook.url == "http://crm:80/hook");
  CHECK(c.sinks[0].webhook.headers.at("Authorization") == "Bearer t0k");
}

TEST_CASE("run config: an unset variable is an error naming it and its position", "[run_config]") {
  std::string text =
      std::string(kMinimal) + "coupon_secret: ${RAPPORT_COUPON_SECRET}\n" + "application_id: \"app-${APP}\"\n";
  std::vector<std::string> errors = Errors(text);
  REQUIRE(errors.size() == 2);
  CHECK(errors[0] ==
        "rapport.yaml:7:16: environment variable `RAPPORT_COUPON_SECRET` is not set (set it, or give a default: "
        "${RAPPORT_COUPON_SECRET:-value})");
  // Inside quotes the column still points at the `$`.
  CHECK_THAT(errors[1], Catch::StartsWith("rapport.yaml:8:22: environment variable `APP` is not set"));

  CHECK_THAT(OneError(std::string(kMinimal) + "coupon_secret: ${BROKEN\n"),
             Catch::StartsWith("rapport.yaml:7:16: `${` is not closed"));
  CHECK_THAT(OneError(std::string(kMinimal) + "coupon_secret: ${1X}\n"),
             Catch::StartsWith("rapport.yaml:7:16: `${1X}` is not a variable reference"));
  // A null lookup means an empty environment.
  auto r = ParseRunConfig(text, "x.yaml", "", EnvironmentLookup());
  CHECK_FALSE(r.ok());
}

TEST_CASE("run config: every error is reported, each with its position", "[run_config]") {
  const std::string text = R"(rules: rules
state_dir: state
clock: wal
commit_interval: 5 sec
source:
  file: {path: "-"}
sinks:
  - file: {path: "-"}
  - webhook: {url: ftp://crm/hook}
cache_capacity: 0
)";
  std::vector<std::string> errors = Errors(text);
  REQUIRE(errors.size() == 4);
  CHECK(errors[0] ==
        "rapport.yaml:3:8: `clock` must be `wall` or `event`, not `wal` (wall: timers also fire on idle partitions; "
        "event: pure event time, for replays)");
  CHECK(errors[1] ==
        "rapport.yaml:4:18: `commit_interval` `5 sec` is not a duration (durations look like 500ms, 1s, 5m, 2h, 1d)");
  CHECK(errors[2] ==
        "rapport.yaml:9:20: `sinks[1].webhook.url` `ftp://crm/hook` is not an HTTP URL (it starts with http:// or "
        "https://)");
  CHECK(errors[3] == "rapport.yaml:10:17: `cache_capacity` must be greater than zero");
}

TEST_CASE("run config: an unknown key gets a did-you-mean hint", "[run_config]") {
  CHECK(OneError(std::string(kMinimal) + "commit_intervall: 2s\n") ==
        "rapport.yaml:7:1: unknown key `commit_intervall` in the config (did you mean `commit_interval`?)");
  CHECK(OneError(std::string(kMinimal) + "bootstrap.servers: b:9092\n") ==
        "rapport.yaml:7:1: unknown key `bootstrap.servers` in the config (librdkafka properties go under `kafka:`)");
  CHECK_THAT(OneError(std::string(kMinimal) + "zzzzzzzz: 1\n"),
             Catch::Contains("(allowed keys: rules state_dir application_id"));
  CHECK(OneError("rules: r\nstate_dir: s\nsource: {fil: {path: x}}\nsinks: [{file: {path: \"-\"}}]\n") ==
        "rapport.yaml:3:10: unknown key `fil` in `source` (did you mean `file`?)");
  CHECK(OneError(std::string(kMinimal) + "kafka: {bootstrap.server: b:9092}\n") ==
        "rapport.yaml:7:9: unknown librdkafka property `bootstrap.server` in `kafka` (did you mean "
        "`bootstrap.servers`?)");
  // A misspelt broker list is not also reported as missing.
  CHECK_THAT(OneError("rules: r\nstate_dir: s\nkafka: {bootstrap.server: b}\nsource: {kafka: {topic: e}}\n"
                      "sinks: [{file: {path: x}}]\n"),
             Catch::StartsWith("rapport.yaml:3:9: unknown librdkafka property `bootstrap.server`"));
  CHECK_THAT(OneError(std::string(kMinimal) + "kafka: {bootstrap.servers: b, acks: maybe}\n"),
             Catch::StartsWith("rapport.yaml:7:37: `kafka.acks`: Invalid value"));
  CHECK(OneError(std::string(kMinimal) + "clock: wall\nclock: event\n") ==
        "rapport.yaml:8:1: key `clock` appears twice in the config");
}

TEST_CASE("run config: structural mistakes", "[run_config]") {
  CHECK(OneError("") ==
        "rapport.yaml:1:1: the config is empty (it needs at least `rules`, `state_dir`, `source` and `sinks`; see "
        "deploy/rapport.yaml)");
  CHECK_THAT(OneError("rules: [a\n"), Catch::StartsWith("rapport.yaml:2:1: "));
  std::vector<std::string> missing = Errors("clock: wall\n");
  CHECK(missing.size() == 4);
  for (const auto& e : missing) CHECK_THAT(e, Catch::StartsWith("rapport.yaml:1:1: the config needs "));

  CHECK(
      OneError("rules: r\nstate_dir: s\nsource: {file: {path: a}, kafka: {topic: e}}\nsinks: [{file: {path: b}}]\n") ==
      "rapport.yaml:3:9: `source` may hold only one of `kafka` or `file`");
  CHECK(OneError(std::string(kMinimal) + "  - {}\n") ==
        "rapport.yaml:7:5: `sinks[1]` needs one of `kafka`, `file` or `webhook`");
  CHECK(OneError(std::string(kMinimal) + "  - kafka: {topic: ${T}}\n") ==
        "rapport.yaml:7:21: end of map flow not found (inside { } or [ ], quote a value that uses a variable: "
        "\"${NAME}\")");
  CHECK(OneError("rules: r\nstate_dir: s\nsource: {file: {path: a}}\nsinks: []\n") ==
        "rapport.yaml:4:8: `sinks` is empty; actions need at least one sink");
  CHECK(OneError("rules: r\nstate_dir:\nsource: {file: {path: a}}\nsinks: [{file: {path: b}}]\n") ==
        "rapport.yaml:2:1: `state_dir` has no value");
  CHECK(OneError(std::string(kMinimal) + "application_id: shop/eu\n") ==
        "rapport.yaml:7:17: `application_id` `shop/eu` may only hold letters, digits, `.`, `_` and `-`");
  CHECK(OneError(std::string(kMinimal) + "application_id: ''\n") == "rapport.yaml:7:17: `application_id` is empty");
  CHECK(OneError(std::string(kMinimal) + "commit_interval: 0s\n") ==
        "rapport.yaml:7:18: `commit_interval` must be longer than zero");
  CHECK_THAT(OneError(std::string(kMinimal) + "commit_interval: 500\n"),
             Catch::EndsWith("(a duration needs a unit: 500ms, 500s, 500m)"));
  CHECK(OneError(std::string(kMinimal) + "commit_max_events: -5\n") ==
        "rapport.yaml:7:20: `commit_max_events` must be a whole number, not `-5`");
  CHECK(OneError(std::string(kMinimal) + "cache_capacity: {a: 1}\n") ==
        "rapport.yaml:7:17: `cache_capacity` must be a single value, not a map");
  CHECK(OneError(std::string(kMinimal) + "dead_letter: {file: {}}\n") ==
        "rapport.yaml:7:21: `dead_letter.file` needs a `path` (use \"-\" for stderr)");
  CHECK(OneError(std::string(kMinimal) + "  - webhook: {url: http://h/x, initial_backoff: 1m, max_backoff: 1s}\n") ==
        "rapport.yaml:7:49: `sinks[1].webhook.initial_backoff` is longer than `max_backoff`");
  CHECK(OneError(std::string(kMinimal) + "  - file: {path: x, deliver_held_out: yes}\n") ==
        "rapport.yaml:7:39: `sinks[1].file.deliver_held_out` must be true or false, not `yes`");
}

TEST_CASE("run config: Kafka parts need brokers and valid topics", "[run_config]") {
  const char* base = "rules: r\nstate_dir: s\nsinks: [{file: {path: \"-\"}}]\n";
  CHECK(OneError(std::string(base) + "source:\n  kafka: {topic: events}\n") ==
        "rapport.yaml:5:10: `source.kafka` needs `bootstrap.servers` (set it under the top-level `kafka:` or in this "
        "part's `properties:`)");
  CHECK(OneError(std::string(base) + "kafka: {bootstrap.servers: b}\nsource:\n  kafka: {topic: ''}\n") ==
        "rapport.yaml:6:18: `source.kafka.topic` is empty");
  CHECK_THAT(OneError(std::string(base) + "kafka: {bootstrap.servers: b}\nsource:\n  kafka: {topic: 'a b'}\n"),
             Catch::StartsWith("rapport.yaml:6:18: `source.kafka.topic` `a b` is not a valid Kafka topic name"));
  CHECK(OneError(std::string(base) + "kafka: {bootstrap.servers: b}\nsource:\n  kafka: {properties: {}}\n") ==
        "rapport.yaml:6:10: `source.kafka` needs a `topic`");
  // An unset variable in bootstrap.servers is reported once, not also as missing.
  CHECK_THAT(OneError(std::string(base) + "kafka: {bootstrap.servers: \"${B}\"}\nsource:\n  kafka: {topic: e}\n"),
             Catch::Contains("environment variable `B` is not set"));
  CHECK(OneError(std::string(kMinimal) + "  - kafka: {topic: actions}\n") ==
        "rapport.yaml:7:12: `sinks[1].kafka` needs `bootstrap.servers` (set it under the top-level `kafka:` or in "
        "this part's `properties:`)");
  CHECK(OneError(std::string(kMinimal) + "dead_letter:\n  kafka: {topic: dead, bootstrap.servers: b}\n") ==
        "rapport.yaml:8:24: unknown key `bootstrap.servers` in `dead_letter.kafka` (librdkafka properties go under "
        "`properties:`)");
}

TEST_CASE("run config: a part's own properties win over the top-level kafka map", "[run_config]") {
  const std::string text = R"(rules: r
state_dir: s
kafka:
  bootstrap.servers: shared:9092
  client.id: shared
  linger.ms: 10
source:
  kafka:
    topic: events
    properties:
      client.id: consumer
sinks:
  - kafka:
      topic: actions
      properties: {linger.ms: 0, bootstrap.servers: "other:9092"}
dead_letter:
  kafka: {topic: dead}
)";
  RunConfig c = ParseOk(text);
  REQUIRE(c.kafka_source.has_value());
  CHECK(c.kafka_source->properties == rapport::connectors::KafkaProperties{{"bootstrap.servers", "shared:9092"},
                                                                           {"client.id", "consumer"},
                                                                           {"linger.ms", "10"}});
  REQUIRE(c.sinks.size() == 1);
  CHECK(c.sinks[0].kafka.properties == rapport::connectors::KafkaProperties{{"bootstrap.servers", "other:9092"},
                                                                            {"client.id", "shared"},
                                                                            {"linger.ms", "0"}});
  CHECK(c.dead_letter.properties == rapport::connectors::KafkaProperties{{"bootstrap.servers", "shared:9092"},
                                                                         {"client.id", "shared"},
                                                                         {"linger.ms", "10"}});
}

TEST_CASE("run config: the daemon's own consumer properties are refused", "[run_config]") {
  const std::string text = R"(rules: r
state_dir: s
kafka:
  bootstrap.servers: b:9092
  group.id: mine
source:
  kafka:
    topic: events
    properties:
      enable.auto.commit: true
      enable.auto.offset.store: "false"
sinks:
  - kafka:
      topic: actions
      properties: {enable.auto.commit: false}
)";
  std::vector<std::string> errors = Errors(text);
  REQUIRE(errors.size() == 3);
  CHECK(errors[0] ==
        "rapport.yaml:5:3: property `group.id` cannot be set in `kafka` (the daemon sets it from `application_id`; set "
        "`application_id` instead)");
  CHECK_THAT(errors[1], Catch::StartsWith("rapport.yaml:10:7: property `enable.auto.commit` cannot be set in "
                                          "`source.kafka.properties` (the daemon commits source offsets itself"));
  CHECK_THAT(errors[2], Catch::StartsWith("rapport.yaml:11:7: property `enable.auto.offset.store` cannot be set in "
                                          "`source.kafka.properties` (the daemon stores an offset only once"));
}

TEST_CASE("run config: paths resolve against the config file's directory", "[run_config]") {
  const std::string text = R"(rules: ../rules/packs/relationship
state_dir: ./state
source:
  file: {path: events/today.jsonl}
sinks:
  - file: {path: "-"}
  - file: {path: /abs/actions.jsonl}
  - file: {path: out.jsonl}
dead_letter:
  file: {path: "-"}
)";
  RunConfig c = ParseOk(text);
  CHECK(c.rules == "/etc/rules/packs/relationship");
  CHECK(c.state_dir == "/etc/rapport/state");
  REQUIRE(c.file_source.has_value());
  CHECK(c.file_source->path == "/etc/rapport/events/today.jsonl");
  REQUIRE(c.sinks.size() == 3);
  CHECK(c.sinks[0].file.path == "-");
  CHECK(c.sinks[1].file.path == "/abs/actions.jsonl");
  CHECK(c.sinks[2].file.path == "/etc/rapport/out.jsonl");
  CHECK(c.dead_letter.kind == DeadLetterConfig::Kind::kFile);
  CHECK(c.dead_letter.topic_or_path == "-");

  // From a file: relative to the file's own directory, whatever the cwd.
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "conf");
  WriteFile(dir.File("conf/run.yaml"), "rules: rules\nstate_dir: /data\n" + text.substr(text.find("source:")));
  auto loaded = LoadRunConfig(dir.File("conf/run.yaml"), MapEnvironment({}));
  INFO(loaded.status().message());
  REQUIRE(loaded.ok());
  CHECK(loaded->path == dir.File("conf/run.yaml"));
  CHECK(loaded->rules == (dir.path() / "conf" / "rules").string());
  CHECK(loaded->state_dir == "/data");
  CHECK(loaded->file_source->path == (dir.path() / "conf" / "events" / "today.jsonl").string());

  auto absent = LoadRunConfig(dir.File("nope.yaml"), MapEnvironment({}));
  REQUIRE_FALSE(absent.ok());
  CHECK(absent.status().code() == StatusCode::kNotFound);

  // Errors from a file name the file as given.
  WriteFile(dir.File("bad.yaml"), "rules: r\n");
  auto bad = LoadRunConfig(dir.File("bad.yaml"), MapEnvironment({}));
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.status().message(), Catch::StartsWith(dir.File("bad.yaml") + ":1:1: the config needs "));
}

TEST_CASE("run config: the deploy examples parse cleanly", "[run_config]") {
  // Only the variables without a default; the examples must not need more.
  auto env = MapEnvironment({{"RAPPORT_COUPON_SECRET", "s"}, {"KAFKA_USERNAME", "u"}, {"KAFKA_PASSWORD", "p"}});

  auto kafka = LoadRunConfig(SourcePath("deploy/rapport.yaml"), env);
  INFO(kafka.status().message());
  REQUIRE(kafka.ok());
  REQUIRE(kafka->kafka_source.has_value());
  CHECK(kafka->kafka_source->topic == "events");
  CHECK(kafka->kafka_source->properties.contains("bootstrap.servers"));
  CHECK_FALSE(kafka->sinks.empty());
  CHECK(kafka->dead_letter.kind == DeadLetterConfig::Kind::kKafka);

  auto file = LoadRunConfig(SourcePath("deploy/rapport-file.yaml"), env);
  INFO(file.status().message());
  REQUIRE(file.ok());
  REQUIRE(file->file_source.has_value());
  CHECK(file->file_source->path == "-");
  REQUIRE(file->sinks.size() == 1);
  CHECK(file->sinks[0].file.path == "-");

  auto compose = LoadRunConfig(SourcePath("deploy/compose-rapport.yaml"), env);
  INFO(compose.status().message());
  REQUIRE(compose.ok());
  REQUIRE(compose->kafka_source.has_value());
  CHECK(compose->kafka_source->properties.at("bootstrap.servers") == "kafka:9092");
  CHECK(compose->dead_letter.topic_or_path == "events-dead");
}

TEST_CASE("run config: the Kubernetes StatefulSet's config parses, with a standby", "[run_config]") {
  // The ConfigMap's `rapport.yaml: |` block, without its indentation.
  std::ifstream in(SourcePath("deploy/kubernetes/rapport.yaml"));
  REQUIRE(in.good());
  std::string line, config;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line.find("rapport.yaml: |") != std::string::npos) {
      inside = true;
      continue;
    }
    if (!inside) continue;
    if (line.rfind("    ", 0) != 0) break;
    config += line.substr(4) + "\n";
  }
  REQUIRE_FALSE(config.empty());
  auto parsed = ParseRunConfig(
      config, "deploy/kubernetes/rapport.yaml", "/",
      MapEnvironment({{"RAPPORT_COUPON_SECRET", "s"}, {"KAFKA_BOOTSTRAP_SERVERS", "k:9092"}, {"POD_NAME", "rapport-0"}}));
  INFO(parsed.status().message());
  REQUIRE(parsed.ok());
  CHECK(parsed->standby_replicas == 1);
  CHECK(parsed->kafka_source->properties.at("session.timeout.ms") == "15000");
}

TEST_CASE("run config: standby_replicas is a whole number and needs a Kafka source", "[run_config]") {
  const std::string kafka = "rules: r\nstate_dir: s\nkafka: {bootstrap.servers: k:9092}\n"
                            "source: {kafka: {topic: events}}\nsinks: [{file: {path: '-'}}]\n";
  auto none = ParseRunConfig(kafka, "c.yaml", "/", MapEnvironment({}));
  REQUIRE(none.ok());
  CHECK(none->standby_replicas == 0);
  auto two = ParseRunConfig(kafka + "standby_replicas: 2\n", "c.yaml", "/", MapEnvironment({}));
  REQUIRE(two.ok());
  CHECK(two->standby_replicas == 2);
  auto bad = ParseRunConfig(kafka + "standby_replicas: two\n", "c.yaml", "/", MapEnvironment({}));
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.status().message(), Catch::Contains("c.yaml:6:19: `standby_replicas` must be a whole number"));
  auto file = ParseRunConfig("rules: r\nstate_dir: s\nsource: {file: {path: '-'}}\nsinks: [{file: {path: '-'}}]\n"
                             "standby_replicas: 1\n",
                             "c.yaml", "/", MapEnvironment({}));
  REQUIRE_FALSE(file.ok());
  CHECK_THAT(file.status().message(), Catch::Contains("c.yaml:5:19: `standby_replicas` needs a Kafka source"));
}
